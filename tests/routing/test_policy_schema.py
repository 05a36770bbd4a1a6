"""policies/policy.schema.json: generated from the models, committed, and it validates policies."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from gateway.policy.loader import _Document, load_policy
from gateway.policy.schema import SHIPPED, main, policy_schema, render, same_meaning

ROOT = Path(__file__).resolve().parents[2]
SUPPORT = ROOT / "policies" / "support.yaml"


def validator() -> jsonschema.Draft202012Validator:
    schema = policy_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def substituted(path: Path) -> Any:
    """The YAML document after ${VAR:-default} substitution, as the loader validates it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STEPGATE_")}
    doc = _Document(str(path))
    data = doc.parse(path.read_text(encoding="utf-8"), env)
    assert not doc.problems, doc.problems
    return data


def test_committed_schema_says_what_the_models_say() -> None:
    assert same_meaning(SHIPPED.read_text(encoding="utf-8")), (
        "policies/policy.schema.json is stale: run "
        "`python -m gateway.policy.schema > policies/policy.schema.json`"
    )
    assert main(["--check", str(SHIPPED)]) == 0


def _drop_decimal_patterns(node: Any) -> Any:
    """The committed schema as pydantic 2.14 renders it: no `pattern` on a Decimal's string."""
    if isinstance(node, list):
        return [_drop_decimal_patterns(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _drop_decimal_patterns(v) for k, v in node.items()}
    if out.get("type") == "string" and str(out.get("pattern", "")).startswith("^(?!^[-+.]"):
        del out["pattern"]
    return out


def test_another_pydantic_rendering_of_the_same_models_is_not_stale(tmp_path: Path) -> None:
    committed = json.loads(SHIPPED.read_text(encoding="utf-8"))
    other = _drop_decimal_patterns(committed)
    assert other != committed  # the difference is real ...
    path = tmp_path / "policy.schema.json"
    path.write_text(json.dumps(other, indent=4))  # ... and so is a different layout
    assert main(["--check", str(path)]) == 0


def test_a_changed_constraint_is_stale(tmp_path: Path) -> None:
    committed = json.loads(SHIPPED.read_text(encoding="utf-8"))
    text = json.dumps(committed).replace('"exclusiveMinimum": 0.0', '"exclusiveMinimum": 1.0', 1)
    assert text != json.dumps(committed)
    path = tmp_path / "policy.schema.json"
    path.write_text(text)
    assert main(["--check", str(path)]) == 1


def test_check_flags_a_stale_file(tmp_path: Path) -> None:
    stale = tmp_path / "policy.schema.json"
    stale.write_text(render().replace("Stepgate routing policy", "old title"))
    assert main(["--check", str(stale)]) == 1


def test_module_prints_the_schema() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "gateway.policy.schema"],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    ).stdout
    assert out == render()
    assert same_meaning(out)


def test_support_policy_references_the_schema() -> None:
    first = SUPPORT.read_text(encoding="utf-8").splitlines()[0]
    assert first == "# yaml-language-server: $schema=./policy.schema.json"


def test_support_policy_validates_after_substitution() -> None:
    load_policy(SUPPORT)  # the loader agrees it is valid
    validator().validate(substituted(SUPPORT))


def test_support_policy_validates_raw_with_var_references() -> None:
    """What the editor sees: `${STEPGATE_DLLM_ENGINE:-vllm}` where an engine name goes."""
    raw = yaml.safe_load(SUPPORT.read_text(encoding="utf-8"))
    assert raw["backends"]["dllm"]["engine"].startswith("${")
    validator().validate(raw)


def test_var_reference_does_not_excuse_a_wrong_value() -> None:
    raw = yaml.safe_load(SUPPORT.read_text(encoding="utf-8"))
    raw["backends"]["dllm"]["engine"] = "tgi"
    errors = list(validator().iter_errors(raw))
    assert errors


@pytest.mark.parametrize(
    ("mutate", "path_part"),
    [
        (lambda d: d["backends"]["dllm"].update(modle="x"), "modle"),
        (lambda d: d["routes"][0]["match"].update(kind=["clasify"]), "clasify"),
        (lambda d: d["backends"]["ar-main"].update(type="grpc"), "grpc"),
        (lambda d: d["routes"][0]["match"].update(difficulty={"max": "hard"}), "hard"),
        (lambda d: d["backends"]["dllm"].update(base_url="ftp://x"), "ftp://x"),
        (lambda d: d.pop("baseline"), "baseline"),
    ],
)
def test_schema_rejects_what_the_loader_rejects(mutate: Any, path_part: str) -> None:
    data = substituted(SUPPORT)
    mutate(data)
    errors = list(validator().iter_errors(data))
    assert errors, f"schema accepted a policy with {path_part!r}"
    assert any(path_part in str(e) for e in errors)


def test_schema_has_editor_metadata() -> None:
    schema = policy_schema()
    assert schema["$schema"].endswith("2020-12/schema")
    assert schema["title"].startswith("Stepgate routing policy")
    assert set(schema["properties"]) >= {"backends", "baseline", "routes", "default_route"}
    assert schema["additionalProperties"] is False
    match = schema["$defs"]["Match"]["properties"]
    assert set(match) == {
        "kind",
        "difficulty",
        "max_p_deep",
        "latency_budget_ms",
        "prompt_tokens",
        "has_tools",
        "expects_json",
        "language",
        "team",
        "metadata",
    }
