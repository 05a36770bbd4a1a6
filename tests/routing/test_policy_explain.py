"""`stepgate policy explain`: the profile, the chosen route, and why each route above it failed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from gateway.classify.classifier import Classifier
from gateway.cli import app
from gateway.core.profile import StepProfile
from gateway.ingress.openai import parse_chat

ROOT = Path(__file__).resolve().parents[2]
SUPPORT = ROOT / "policies" / "support.yaml"

EXTRACT = {
    "model": "auto",
    "messages": [
        {"role": "system", "content": "Extract the order number from the customer's message."},
        {"role": "user", "content": "Hi, my order ORD-1234567 never arrived. Can you check?"},
    ],
    "metadata": {"tenant": "acme"},
}
HINTS = ["X-Step-Kind: extract", "X-Latency-Budget-Ms: 500"]

REASON = {
    "model": "auto",
    "messages": [
        {
            "role": "user",
            "content": (
                "The customer bought a laptop 40 days ago on a 0% installment plan, returned it "
                "damaged, and now disputes the restocking fee under both our 30-day return policy "
                "and the card issuer's chargeback rules. Work out step by step which policy "
                "applies, whether the fee is refundable, and what we owe them."
            ),
        }
    ],
}


def explain(
    tmp_path: Path,
    policy: Path,
    body: dict[str, Any],
    *args: str,
    headers: list[str] | tuple[str, ...] = (),
) -> tuple[int, dict[str, Any], str]:
    request = tmp_path / "request.json"
    request.write_text(json.dumps(body))
    argv = ["policy", "explain", str(policy), "--request", str(request), *args]
    for h in headers:
        argv += ["--header", h]
    result = CliRunner().invoke(app, argv)
    out = json.loads(result.stdout) if result.exit_code == 0 else {}
    return result.exit_code, out, result.output


def profile_of(body: dict[str, Any], headers: list[str]) -> StepProfile:
    parsed = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in headers)}
    return Classifier.load().classify(parse_chat(body), parsed)


# --- policies/support.yaml -------------------------------------------------------------------


def test_support_structured_step_goes_to_the_dllm(tmp_path: Path) -> None:
    code, out, output = explain(tmp_path, SUPPORT, EXTRACT, headers=HINTS)
    assert code == 0, output
    assert out["kind"] == "extract"
    assert out["latency_budget_ms"] == 500
    assert 0.0 <= out["difficulty"] <= 1.0
    assert "hint:kind=extract" in out["signals"]
    assert "hint:latency_budget_ms=500" in out["signals"]
    assert (out["route"], out["backend"], out["backend_type"]) == (
        "fast-structured",
        "dllm",
        "dllm",
    )
    assert out["via"] == "match"
    assert out["routes"] == [{"route": "fast-structured", "matched": True}]


def test_support_reasoning_step_lists_why_fast_routes_failed(tmp_path: Path) -> None:
    code, out, output = explain(tmp_path, SUPPORT, REASON)
    assert code == 0, output
    assert out["kind"] == "reason"
    assert (out["route"], out["backend"], out["backend_type"]) == ("deep", "ar-main", "litellm")
    skipped = {r["route"]: r["why_not"] for r in out["routes"] if not r["matched"]}
    assert skipped == {
        "fast-structured": "kind reason not in ['classify', 'extract', 'format', 'lookup']",
        "fast-summary": "kind reason not in ['summarize']",
    }
    assert out["routes"][-1] == {"route": "deep", "matched": True}


def test_support_long_summary_fails_on_prompt_tokens(tmp_path: Path) -> None:
    long_thread = " ".join(
        f"Message {i}: the parcel is still missing, please help." for i in range(900)
    )
    body = {"model": "auto", "messages": [{"role": "user", "content": long_thread}]}
    code, out, output = explain(tmp_path, SUPPORT, body, headers=["X-Step-Kind: summarize"])
    assert code == 0, output
    assert out["prompt_tokens"] > 6000
    skipped = {r["route"]: r["why_not"] for r in out["routes"] if not r["matched"]}
    threshold = out["max_p_deep"]["fast-summary"]  # explain shows the operating point
    assert out["p_deep"] == out["difficulty"]
    if out["p_deep"] <= threshold:
        assert skipped["fast-summary"] == f"prompt tokens {out['prompt_tokens']} outside 0..6000"
    else:
        why = skipped["fast-summary"]
        assert why.startswith("P(deep) ") and why.endswith(f" above max_p_deep {threshold}")
    assert out["route"] == "deep"


def test_pinned_route_name_and_alias(tmp_path: Path) -> None:
    code, out, _ = explain(tmp_path, SUPPORT, {**REASON, "model": "fast-structured"})
    assert code == 0
    assert (out["route"], out["via"], out["backend"]) == ("fast-structured", "route-name", "dllm")
    code, out, _ = explain(tmp_path, SUPPORT, {**EXTRACT, "model": "claude-haiku"})
    assert code == 0
    assert (out["route"], out["via"], out["backend"]) == (
        "alias:claude-haiku",
        "alias",
        "ar-backup",
    )
    assert out["fallbacks"] == []


def test_unknown_model_is_an_error_naming_the_choices(tmp_path: Path) -> None:
    code, _, output = explain(tmp_path, SUPPORT, {**EXTRACT, "model": "gpt-5-turbo"})
    assert code == 1
    assert "'gpt-5-turbo' is not a route or alias" in output
    assert "auto" in output


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        (["X-Step-Kind extract"], "write it as Name:Value"),
        (["X-Step-Kind: ponder"], "is not a step kind"),
        (["X-Latency-Budget-Ms: soon"], "whole number of milliseconds"),
    ],
)
def test_bad_headers(tmp_path: Path, headers: list[str], message: str) -> None:
    code, _, output = explain(tmp_path, SUPPORT, EXTRACT, headers=headers)
    assert code == 1
    assert message in output


def test_bad_request_file_and_bad_policy(tmp_path: Path) -> None:
    code, _, output = explain(tmp_path, SUPPORT, {"model": "auto", "messages": []})
    assert code == 1
    assert "messages" in output
    broken = tmp_path / "broken.yaml"
    broken.write_text(SUPPORT.read_text().replace("baseline: ar-main", "baseline: ar-mian"))
    code, _, output = explain(tmp_path, broken, EXTRACT)
    assert code == 1
    assert f"{broken}:" in output and "unknown backend 'ar-mian'" in output


# --- every Match condition names itself when it fails ----------------------------------------


def every_condition_policy(profile: StepProfile) -> str:
    """Ten routes, each failing on exactly one condition for the EXTRACT step; then `chosen`."""
    d = profile.difficulty
    wrong_difficulty = "{min: 0.95, max: 1.0}" if d < 0.5 else "{min: 0.0, max: 0.05}"
    return f"""
version: 1
backends:
  dllm:
    type: dllm
    engine: vllm
    base_url: http://127.0.0.1:9/v1
    model: test-diffusion
    pricing: {{gpu_hour_usd: 2.5}}
  ar:
    type: litellm
    model: openai/gpt-4.1-mini
    pricing: {{input_per_mtok_usd: 0.4, output_per_mtok_usd: 1.6}}
baseline: ar
routes:
  - name: by-kind
    match: {{kind: [reason, draft]}}
    target: ar
  - name: by-difficulty
    match: {{kind: [extract], difficulty: {wrong_difficulty}}}
    target: dllm
  - name: by-latency
    match: {{kind: [extract], latency_budget_ms: {{max: 100}}}}
    target: dllm
  - name: by-prompt-tokens
    match: {{prompt_tokens: {{min: 100000}}}}
    target: ar
  - name: by-tools
    match: {{has_tools: true}}
    target: ar
  - name: by-json
    match: {{expects_json: true}}
    target: dllm
  - name: by-language
    match: {{language: [ja, ko]}}
    target: ar
  - name: by-team
    match: {{team: [billing]}}
    target: ar
  - name: by-metadata-key
    match: {{metadata: {{region: "*"}}}}
    target: ar
  - name: by-metadata-value
    match: {{metadata: {{tenant: globex}}}}
    target: ar
  - name: chosen
    match:
      kind: [extract]
      latency_budget_ms: {{min: 200, max: 1000}}
      has_tools: false
      expects_json: false
      language: [en]
      team: [support]
      metadata: {{tenant: acme}}
    target: dllm
    fallbacks: [ar]
  - name: deep
    target: ar
default_route: deep
"""


def test_every_match_condition_is_named_in_its_reason(tmp_path: Path) -> None:
    profile = profile_of(EXTRACT, HINTS)
    assert profile.language == "en" and not profile.has_tools and not profile.expects_json
    policy = tmp_path / "every.yaml"
    policy.write_text(every_condition_policy(profile))

    code, out, output = explain(tmp_path, policy, EXTRACT, "--team", "support", headers=HINTS)
    assert code == 0, output
    assert (out["route"], out["backend"], out["backend_type"], out["via"]) == (
        "chosen",
        "dllm",
        "dllm",
        "match",
    )
    assert out["team"] == "support"
    assert out["fallbacks"] == ["ar"]
    d = profile.difficulty
    wrong = "0.95..1.0" if d < 0.5 else "0.0..0.05"
    why = {r["route"]: r["why_not"] for r in out["routes"] if not r["matched"]}
    assert why == {
        "by-kind": "kind extract not in ['reason', 'draft']",
        "by-difficulty": f"difficulty {d:.2f} outside {wrong}",
        "by-latency": "latency budget 500 ms outside 0..100",
        "by-prompt-tokens": f"prompt tokens {profile.prompt_tokens} outside 100000..",
        "by-tools": "has_tools is false",
        "by-json": "expects_json is false",
        "by-language": "language en not in ['ja', 'ko']",
        "by-team": "team support not in ['billing']",
        "by-metadata-key": "metadata region missing",
        "by-metadata-value": "metadata tenant='acme', wants 'globex'",
    }
    # Every route above the chosen one is listed, in policy order, and nothing below it.
    assert [r["route"] for r in out["routes"]] == [*why, "chosen"]


def test_conditions_flip_when_the_request_changes(tmp_path: Path) -> None:
    """The reasons are the real causes: satisfy one and that route wins."""
    profile = profile_of(EXTRACT, HINTS)
    policy = tmp_path / "every.yaml"
    policy.write_text(every_condition_policy(profile))

    _, out, _ = explain(tmp_path, policy, EXTRACT, "--team", "billing", headers=HINTS)
    assert out["route"] == "by-team"

    _, out, _ = explain(tmp_path, policy, EXTRACT, headers=HINTS)  # no team at all
    why = {r["route"]: r["why_not"] for r in out["routes"] if not r["matched"]}
    assert why["by-team"] == "team (none) not in ['billing']"
    assert out["route"] == "deep"  # the catch-all
    assert why["chosen"] == "team (none) not in ['support']"

    no_budget = [h for h in HINTS if not h.startswith("X-Latency")]
    _, out, _ = explain(tmp_path, policy, EXTRACT, "--team", "support", headers=no_budget)
    why = {r["route"]: r["why_not"] for r in out["routes"] if not r["matched"]}
    assert why["by-latency"] == "no latency budget given"

    with_region = {**EXTRACT, "metadata": {"tenant": "acme", "region": "eu"}}
    _, out, _ = explain(tmp_path, policy, with_region, "--team", "support", headers=HINTS)
    assert out["route"] == "by-metadata-key"

    with_tools = {
        **EXTRACT,
        "tools": [
            {
                "type": "function",
                "function": {"name": "lookup_order", "parameters": {"type": "object"}},
            }
        ],
    }
    _, out, _ = explain(tmp_path, policy, with_tools, "--team", "support", headers=HINTS)
    assert out["has_tools"] is True
    assert out["route"] == "by-tools"

    as_json = {**EXTRACT, "response_format": {"type": "json_object"}}
    _, out, _ = explain(tmp_path, policy, as_json, "--team", "support", headers=HINTS)
    assert out["expects_json"] is True
    assert out["route"] == "by-json"
