"""`stepgate policy check`: one PATH:LINE:COL: message per problem, exit 1; 0 when valid."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gateway.cli import app
from gateway.policy.loader import PolicyLoadError, load_policy

HERE = Path(__file__).resolve().parents[1] / "data" / "policies"

# fixture -> (line, column, substrings the message must contain)
BAD = {
    "unknown_key.yaml": (5, 5, ["unknown key 'modle'", "did you mean 'model'"]),
    "unknown_backend_ref.yaml": (
        9,
        13,
        ["unknown backend 'ar-mian'", "did you mean 'ar-main'", "known: ar-main"],
    ),
    "wrong_type.yaml": (6, 27, ["timeouts.connect_s", "valid number", "'fast'"]),
    "duplicate_route.yaml": (11, 11, ["duplicate route name 'deep'", "unique"]),
    "unreachable_route.yaml": (
        10,
        5,
        ["'classify' is unreachable", "'everything'", "move the catch-all last"],
    ),
    "bad_var_syntax.yaml": (6, 15, ["bad ${VAR} syntax", "never closed"]),
    "bad_var_name.yaml": (6, 15, ["bad ${VAR} syntax", "${NAME:-default}"]),
    "unset_var.yaml": (
        5,
        12,
        ["STEPGATE_TEST_SURELY_UNSET_VAR is not set", "${STEPGATE_TEST_SURELY_UNSET_VAR:-default}"],
    ),
    "unknown_backend_type.yaml": (4, 11, ["type: dllm", "type: litellm"]),
    "bad_engine.yaml": (5, 13, ["'tgi'", "vllm", "sglang"]),
    "unknown_default_route.yaml": (9, 16, ["unknown route 'dep'", "did you mean 'deep'"]),
    "bad_kind.yaml": (9, 20, ["'clasify'", "classify"]),
    "escalation_without_target.yaml": (10, 5, ["on_low: escalate needs `to:"]),
    "bad_range.yaml": (10, 19, ["min (0.8) is greater than max (0.2)"]),
    "duplicate_key.yaml": (7, 1, ["duplicate key 'baseline'"]),
    "yaml_syntax.yaml": (5, 4, ["YAML syntax error"]),
    "engine_only_field.yaml": (8, 23, ["`reasoning_effort`", "engine: mercury", "'vllm'"]),
}

LINE = re.compile(r"^(?P<path>.+?):(?P<line>\d+):(?P<col>\d+): (?P<msg>.+)$")


def test_shipped_and_good_policies_pass() -> None:
    runner = CliRunner()
    # sglang_knobs.yaml: a `diffusion` block is valid on every engine (for sglang it records
    # the server's launch settings), so switching engines never invalidates a policy.
    for path in (Path("policies/support.yaml"), HERE / "good.yaml", HERE / "sglang_knobs.yaml"):
        result = runner.invoke(app, ["policy", "check", str(path)])
        assert result.exit_code == 0, result.output
        assert "ok" in result.output


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_policy_reports_file_line_col_and_fix(name: str) -> None:
    line, col, needles = BAD[name]
    path = HERE / name
    result = CliRunner().invoke(app, ["policy", "check", str(path)])
    assert result.exit_code == 1
    problems = [LINE.match(row) for row in result.output.strip().splitlines()]
    assert problems and all(problems), result.output
    assert all(p is not None and p["path"] == str(path) for p in problems)
    at = [p["msg"] for p in problems if p and (int(p["line"]), int(p["col"])) == (line, col)]
    assert at, f"no problem reported at {line}:{col}:\n{result.output}"
    assert any(all(n in msg for n in needles) for msg in at), result.output


def test_every_problem_is_reported_not_just_the_first(tmp_path: Path) -> None:
    path = tmp_path / "many.yaml"
    path.write_text(
        "version: 1\nbackends:\n  ar:\n    type: litellm\n    model: openai/x\n"
        "baseline: nope\nroutes:\n  - {name: a, target: nope2}\n  - {name: a, target: ar}\n"
        "default_route: zz\n"
    )
    with pytest.raises(PolicyLoadError) as info:
        load_policy(path)
    messages = [p.message for p in info.value.problems]
    assert len(messages) == 5, messages  # baseline, target, duplicate, unreachable, default


def test_env_substitution_with_default_and_value(tmp_path: Path) -> None:
    policy = load_policy(HERE / "good.yaml", env={})
    assert policy.backends["dllm"].base_url == "http://127.0.0.1:8100/v1"  # type: ignore[union-attr]
    policy = load_policy(HERE / "good.yaml", env={"TEST_DLLM_URL": "http://10.1.2.3:9000/v1"})
    assert policy.backends["dllm"].base_url == "http://10.1.2.3:9000/v1"  # type: ignore[union-attr]


def test_shipped_policy_reads_dllm_url_and_model_from_env() -> None:
    env = {"STEPGATE_DLLM_BASE_URL": "http://gpu-box:8000/v1", "STEPGATE_DLLM_MODEL": "llada-8b"}
    policy = load_policy("policies/support.yaml", env=env)
    dllm = policy.backends["dllm"]
    assert dllm.base_url == "http://gpu-box:8000/v1"  # type: ignore[union-attr]
    assert dllm.model == "llada-8b"
