"""policies/policy.schema.json: generated from the models, committed, and it validates policies."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from gateway.policy.loader import _Document, load_policy
from gateway.policy.schema import SHIPPED, main, policy_schema, render

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


def test_committed_schema_is_the_generated_one() -> None:
    assert SHIPPED.read_text(encoding="utf-8") == render(), (
        "policies/policy.schema.json is stale: run "
        "`python -m gateway.policy.schema > policies/policy.schema.json`"
    )
    assert main(["--check", str(SHIPPED)]) == 0


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
