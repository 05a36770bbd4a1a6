"""`stepgate simulate`: replay recorded traffic through classifier and router, priced, no calls."""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from gateway.classify.classifier import Classifier
from gateway.ingress.openai import parse_chat
from gateway.simulate.commands import register

ROOT = Path(__file__).resolve().parents[2]
SUPPORT = ROOT / "policies" / "support.yaml"
SAMPLE = Path(__file__).resolve().parents[1] / "data" / "traffic" / "support_sample.jsonl"

# litellm's cost map for openai/gpt-4.1-mini, nano-dollars per token (ar-main in support.yaml)
AR_IN, AR_OUT, AR_CACHED = 400, 1600, 100
DLLM_GPU_HOUR_NANOS = 2_500_000_000  # support.yaml: gpu_hour_usd 2.50


def cli() -> typer.Typer:
    app = typer.Typer()
    register(app)

    @app.callback()
    def _root() -> None:  # keep `simulate` a subcommand
        pass

    return app


def run(*args: str) -> Any:
    return CliRunner().invoke(cli(), ["simulate", *[str(a) for a in args]])


def run_json(*args: str) -> dict[str, Any]:
    result = run(*args, "--format", "json")
    assert result.exit_code == 0, result.output
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def no_summary_policy(tmp_path: Path) -> Path:
    """support.yaml without the `fast-summary` route: summaries go to the AR model."""
    text = SUPPORT.read_text()
    start = text.index("  - name: fast-summary")
    end = text.index("  - name: deep")
    path = tmp_path / "no-summary.yaml"
    path.write_text(text[:start] + text[end:])
    return path


def share_nanos(prompt: int, completion: int) -> int:
    """support.yaml's dLLM price: its share of a $2.50 GPU-hour at 10,000 prompt and 1,000
    answer tokens per second."""
    per_s = Decimal(DLLM_GPU_HOUR_NANOS) / Decimal(3600)
    exact = per_s / 10_000 * prompt + per_s / 1_000 * completion
    return int(exact.to_integral_value(rounding=ROUND_HALF_EVEN))


def gpu_time_policy(tmp_path: Path) -> Path:
    """support.yaml with the dLLM billed by wall time (a GPU-hour price, no throughput)."""
    text = SUPPORT.read_text()
    start = text.index("    pricing:\n      gpu_hour_usd:")
    end = text.index("  ar-main:")
    path = tmp_path / "gpu-time.yaml"
    path.write_text(text[:start] + "    pricing: {gpu_hour_usd: 2.50}\n" + text[end:])
    return path


def gpu_nanos(prompt: int, completion: int, *, concurrency: int = 1) -> int:
    elapsed = (0.03 + prompt / 10_000 + completion / 500) / concurrency
    exact = Decimal(DLLM_GPU_HOUR_NANOS) * Decimal(str(elapsed)) / Decimal(3600)
    return int(exact.to_integral_value(rounding=ROUND_HALF_EVEN))


# --- totals ----------------------------------------------------------------------------------


def test_totals_add_up_and_match_the_out_lines(tmp_path: Path) -> None:
    out = tmp_path / "decisions.jsonl"
    report = run_json("--policy", SUPPORT, "--traffic", SAMPLE, "--out", out)
    traffic = read_jsonl(SAMPLE)
    lines = read_jsonl(out)

    assert report["steps"] == len(traffic) == len(lines) == 224
    assert report["skipped"] == 0 and report["errors"] == []
    recorded = sum(1 for t in traffic if t.get("response", {}).get("usage"))
    assert report["usage"] == {"recorded": recorded, "estimated": 224 - recorded}
    assert 0 < recorded < 224

    (summary,) = report["policies"]
    routes, total = summary["routes"], summary["total"]
    assert [r["route"] for r in routes] == ["fast-structured", "fast-summary", "deep"]
    for key in ("steps", "cost_nanos", "baseline_cost_nanos", "savings_nanos"):
        assert sum(r[key] for r in routes) == total[key], key
    assert total["steps"] == 224
    assert sum(r["share"] for r in routes) == pytest.approx(1.0, abs=1e-5)
    assert total["savings_nanos"] == total["baseline_cost_nanos"] - total["cost_nanos"]
    assert total["cost_nanos"] < total["baseline_cost_nanos"]  # the dLLM routes save money
    deep = routes[2]
    assert deep["backend"] == "ar-main" and deep["savings_nanos"] == 0  # baseline is ar-main

    # The --out lines carry every step and add up to the same totals.
    assert [line["id"] for line in lines] == [t["id"] for t in traffic]
    assert sum(line["cost_nanos"] for line in lines) == total["cost_nanos"]
    assert sum(line["baseline_cost_nanos"] for line in lines) == total["baseline_cost_nanos"]
    for route in routes:
        mine = [line for line in lines if line["route"] == route["route"]]
        assert len(mine) == route["steps"]
        assert sum(line["cost_nanos"] for line in mine) == route["cost_nanos"]
    fields = {"id", "kind", "difficulty", "route", "backend", "backend_type", "cost_usd"}
    fields |= {"baseline_cost_usd", "classify_us"}
    for line in lines:
        assert fields <= set(line)
        assert line["classify_us"] > 0
        assert Decimal(line["cost_usd"]) * 10**9 == line["cost_nanos"]
        assert line["backend_type"] == ("dllm" if line["backend"] == "dllm" else "litellm")


def test_recorded_usage_is_priced_exactly(tmp_path: Path) -> None:
    out = tmp_path / "decisions.jsonl"
    run_json("--policy", SUPPORT, "--traffic", SAMPLE, "--out", out)
    by_id = {t["id"]: t for t in read_jsonl(SAMPLE)}
    checked = {"dllm": 0, "ar-main": 0}
    for line in read_jsonl(out):
        usage = by_id[line["id"]].get("response", {}).get("usage")
        if usage is None:
            assert line["usage_source"] == "estimated"
            continue
        assert line["usage_source"] == "recorded"
        p, c = usage["prompt_tokens"], usage["completion_tokens"]
        cached = usage.get("prompt_tokens_details", {}).get("cached_tokens", 0)
        ar = AR_IN * (p - cached) + AR_CACHED * cached + AR_OUT * c
        assert line["baseline_cost_nanos"] == ar
        if line["backend"] == "dllm":
            assert line["cost_nanos"] == share_nanos(p, c)
        else:
            assert line["cost_nanos"] == ar
        checked[line["backend"]] += 1
    assert checked["dllm"] > 20 and checked["ar-main"] > 20


def test_missing_usage_is_estimated_from_the_profile(tmp_path: Path) -> None:
    out = tmp_path / "decisions.jsonl"
    run_json("--policy", SUPPORT, "--traffic", SAMPLE, "--out", out)
    by_id = {t["id"]: t for t in read_jsonl(SAMPLE)}
    classifier = Classifier.load()
    estimated = [line for line in read_jsonl(out) if line["usage_source"] == "estimated"]
    assert estimated
    for line in estimated[:25]:
        step = by_id[line["id"]]
        headers = {k.lower(): v for k, v in step.get("headers", {}).items()}
        profile = classifier.classify(parse_chat(step["request"]), headers)
        assert (line["prompt_tokens"], line["completion_tokens"]) == (
            profile.prompt_tokens,
            profile.expected_output_tokens,
        )
        assert line["kind"] == profile.kind
        if line["backend"] == "ar-main":
            assert line["cost_nanos"] == AR_IN * profile.prompt_tokens + AR_OUT * (
                profile.expected_output_tokens
            )


def test_gpu_time_assumption_is_configurable(tmp_path: Path) -> None:
    base, fast = tmp_path / "base.jsonl", tmp_path / "fast.jsonl"
    policy = gpu_time_policy(tmp_path)
    run_json("--policy", policy, "--traffic", SAMPLE, "--out", base)
    report = run_json(
        "--policy", policy, "--traffic", SAMPLE, "--out", fast, "--gpu-concurrency", "4"
    )
    assert "4 request(s) per GPU" in report["assumption"]
    for a, b in zip(read_jsonl(base), read_jsonl(fast), strict=True):
        if a["backend"] == "dllm":
            assert b["cost_nanos"] == gpu_nanos(
                a["prompt_tokens"], a["completion_tokens"], concurrency=4
            )
            assert b["cost_nanos"] < a["cost_nanos"]
        else:
            assert b["cost_nanos"] == a["cost_nanos"]
        assert b["baseline_cost_nanos"] == a["baseline_cost_nanos"]


def test_table_report(tmp_path: Path) -> None:
    result = run("--policy", SUPPORT, "--traffic", SAMPLE)
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert "simulated 224 steps" in text and "no lines skipped" in text
    # The shipped dLLM price is its GPU share: no wall-time assumption, each backend's basis.
    assert "GPU-hour backends: 30 ms" not in text
    assert "dllm: gpu-share" in text and "ar-main: list" in text
    timed = run("--policy", gpu_time_policy(tmp_path), "--traffic", SAMPLE).stdout
    assert "GPU-hour backends: 30 ms" in timed and "dllm: gpu-time" in timed
    header = next(line for line in text.splitlines() if line.startswith("route "))
    for column in ("backend", "steps", "share", "cost", "baseline", "savings"):
        assert column in header
    total = next(line for line in text.splitlines() if line.startswith("total "))
    assert "224" in total and "100.0%" in total
    for route in ("fast-structured", "fast-summary", "deep"):
        assert any(line.startswith(route) for line in text.splitlines())


# --- compare ---------------------------------------------------------------------------------


def test_compare_shows_both_policies_and_the_differing_steps(tmp_path: Path) -> None:
    variant = no_summary_policy(tmp_path)
    out = tmp_path / "decisions.jsonl"
    report = run_json("--policy", SUPPORT, "--traffic", SAMPLE, "--compare", variant, "--out", out)
    a, b = report["policies"]
    assert (a["policy"], b["policy"]) == (str(SUPPORT), str(variant))
    assert [r["route"] for r in b["routes"]] == ["fast-structured", "deep"]
    a_routes = {r["route"]: r for r in a["routes"]}
    b_routes = {r["route"]: r for r in b["routes"]}
    moved = a_routes["fast-summary"]["steps"]
    assert moved > 0
    assert b_routes["deep"]["steps"] == a_routes["deep"]["steps"] + moved
    assert b_routes["fast-structured"]["steps"] == a_routes["fast-structured"]["steps"]
    assert b["total"]["cost_nanos"] > a["total"]["cost_nanos"]
    assert b["total"]["baseline_cost_nanos"] == a["total"]["baseline_cost_nanos"]

    lines = read_jsonl(out)
    summaries = {line["id"] for line in lines if line["route"] == "fast-summary"}
    differing = report["differing"]
    assert {d["id"] for d in differing} == summaries
    for d in differing:
        assert (d["a"]["route"], d["b"]["route"]) == ("fast-summary", "deep")
        assert (d["a"]["backend"], d["b"]["backend"]) == ("dllm", "ar-main")
    for line in lines:
        assert line["compare"]["route"] == ("deep" if line["id"] in summaries else line["route"])
        assert line["compare"]["baseline_cost_nanos"] == line["baseline_cost_nanos"]

    text = run("--policy", SUPPORT, "--traffic", SAMPLE, "--compare", variant).stdout
    assert f"A = {SUPPORT}" in text and f"B = {variant}" in text
    assert f"{moved} steps route differently" in text
    assert "fast-summary (dllm)  deep (ar-main)" in text
    assert any(line.startswith("savings ") for line in text.splitlines())


def test_compare_with_itself_differs_nowhere(tmp_path: Path) -> None:
    result = run("--policy", SUPPORT, "--traffic", SAMPLE, "--compare", SUPPORT)
    assert result.exit_code == 0
    assert "no step routes differently" in result.stdout


# --- malformed input -------------------------------------------------------------------------

GOOD = {
    "id": "ok",
    "request": {"model": "auto", "messages": [{"role": "user", "content": "Where is my parcel?"}]},
}


def test_malformed_lines_are_reported_by_number_and_skipped(tmp_path: Path) -> None:
    rows = [
        json.dumps({**GOOD, "id": "ok-1"}),  # 1
        "{not json",  # 2
        json.dumps({**GOOD, "id": "ok-3"}),  # 3
        json.dumps([1, 2]),  # 4
        json.dumps({"id": "no-request"}),  # 5
        json.dumps({"id": "empty", "request": {"model": "auto", "messages": []}}),  # 6
        json.dumps({**GOOD, "response": {"usage": {"prompt_tokens": "many"}}}),  # 7
        json.dumps({**GOOD, "headers": {"X-Step-Kind": "ponder"}}),  # 8
        json.dumps({**GOOD, "request": {**GOOD["request"], "model": "gpt-3"}}),  # 9
        "",  # 10: blank lines are not steps
        json.dumps({**GOOD, "id": "ok-11", "headers": {"X-Step-Kind": "classify"}}),  # 11
    ]
    traffic = tmp_path / "traffic.jsonl"
    traffic.write_text("\n".join(rows) + "\n")
    result = run("--policy", SUPPORT, "--traffic", traffic, "--format", "json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["steps"] == 3
    assert report["skipped"] == 7
    assert [e["line"] for e in report["errors"]] == [2, 4, 5, 6, 7, 8, 9]
    err = result.stderr
    expected = {
        2: "not valid JSON",
        4: "must be a JSON object",
        5: "missing `request`",
        6: "request: messages",
        7: "response.usage.prompt_tokens must be a whole number",
        8: "is not a step kind",
        9: "'gpt-3' is not a route or alias",
    }
    for line, message in expected.items():
        assert any(
            row.startswith(f"{traffic}:{line}: ") and message in row for row in err.splitlines()
        ), (line, message, err)
    assert f"{traffic}: skipped 7 malformed lines" in err

    # --auto routes traffic that names provider models as the router would route `auto`.
    report = run_json("--policy", SUPPORT, "--traffic", traffic, "--auto")
    assert report["skipped"] == 6 and report["steps"] == 4


def test_many_errors_are_capped_on_stderr(tmp_path: Path) -> None:
    traffic = tmp_path / "traffic.jsonl"
    traffic.write_text("oops\n" * 60 + json.dumps(GOOD) + "\n")
    result = run("--policy", SUPPORT, "--traffic", traffic)
    assert result.exit_code == 0
    assert result.stderr.count(": not valid JSON") == 50
    assert "10 more malformed lines not shown" in result.stderr
    assert "simulated 1 steps" in result.stdout and "60 lines skipped" in result.stdout


@pytest.mark.parametrize("text", ["oops\n" * 5, ""], ids=["all-malformed", "empty"])
def test_traffic_with_no_readable_step_exits_1(tmp_path: Path, text: str) -> None:
    traffic = tmp_path / "traffic.jsonl"
    traffic.write_text(text)
    result = run("--policy", SUPPORT, "--traffic", traffic)
    assert result.exit_code == 1
    assert f"no step could be read from {traffic}" in result.stderr
    assert ("all 5 lines were malformed" if text else "it is empty") in result.stderr


def test_bad_policy_or_missing_traffic_exit_1(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text(SUPPORT.read_text().replace("default_route: deep", "default_route: dep"))
    result = run("--policy", broken, "--traffic", SAMPLE)
    assert result.exit_code == 1
    assert f"{broken}:" in result.stderr and "unknown route 'dep'" in result.stderr
    result = run("--policy", SUPPORT, "--traffic", tmp_path / "nope.jsonl")
    assert result.exit_code == 1
    assert "cannot read" in result.stderr


def test_unpriced_backend_is_counted_not_guessed(tmp_path: Path) -> None:
    policy = tmp_path / "unpriced.yaml"
    policy.write_text(
        SUPPORT.read_text().replace(
            "${STEPGATE_AR_MODEL:-openai/gpt-4.1-mini}", "openai/house-model-not-in-cost-map"
        )
    )
    report = run_json("--policy", policy, "--traffic", SAMPLE)
    (summary,) = report["policies"]
    assert summary["unpriced_backends"] == ["ar-main"]
    total = summary["total"]
    assert total["unpriced_steps"] == 224  # the baseline itself has no price
    assert total["baseline_cost_nanos"] == 0 and total["savings_nanos"] == 0
    deep = next(r for r in summary["routes"] if r["route"] == "deep")
    assert deep["cost_nanos"] == 0 and deep["steps"] > 0
    text = run("--policy", policy, "--traffic", SAMPLE).stdout
    assert "no price for ar-main" in text


def test_progress_bar_leaves_the_report_intact() -> None:
    def table(*extra: str) -> list[str]:
        result = run("--policy", SUPPORT, "--traffic", SAMPLE, *extra)
        assert result.exit_code == 0, result.output
        return [line for line in result.stdout.splitlines() if not line.startswith("classifier:")]

    assert table("--progress") == table("--no-progress")


def test_stepgate_cli_has_simulate(tmp_path: Path) -> None:
    """The installed command line registers `simulate` (gateway.cli main)."""
    out = tmp_path / "d.jsonl"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "gateway",
            "simulate",
            "--policy",
            str(SUPPORT),
            "--traffic",
            str(SAMPLE),
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "simulated 224 steps" in proc.stdout
    assert len(read_jsonl(out)) == 224
