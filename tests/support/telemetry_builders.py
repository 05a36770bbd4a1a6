"""Builders for finished-request records shared by the telemetry tests (no tests here)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from gateway.core.profile import StepProfile
from gateway.core.records import AttemptRecord, RequestRecord

T0 = 1_760_000_000.0


def attempt(**overrides: Any) -> AttemptRecord:
    base = AttemptRecord(
        request_id="req-1",
        attempt=0,
        role="primary",
        backend="dllm",
        backend_type="dllm",
        model="diffusiongemma-2b",
        outcome="ok",
        error_class=None,
        prompt_tokens=120,
        completion_tokens=8,
        cached_tokens=0,
        cost_nanos=2_000,
        baseline_cost_nanos=150_000,
        latency_ms=40.0,
        started_at=T0 + 0.001,
    )
    return replace(base, **overrides)


def request(*attempts: AttemptRecord, **overrides: Any) -> RequestRecord:
    atts = attempts or (attempt(),)
    base = RequestRecord(
        request_id="req-1",
        started_at=T0,
        api_key_id="key-7",
        team="support",
        route="cheap-structured",
        step_kind="classify",
        difficulty=0.1,
        final_backend=atts[-1].backend,
        status=200,
        error_class=None,
        latency_ms=45.0,
        ttft_ms=None,
        escalated=False,
        confidence=0.93,
        disposition="final",
        escalation_reason=None,
        stream=False,
        cache_hit=False,
        attempts=atts,
    )
    return replace(base, **overrides)


def escalated_request() -> RequestRecord:
    """Primary dLLM fails (503), retried, then low confidence escalates to the AR model."""
    a0 = attempt(
        outcome="error",
        error_class="provider_unavailable",
        prompt_tokens=0,
        completion_tokens=0,
        cost_nanos=0,
        baseline_cost_nanos=0,
        latency_ms=5.0,
    )
    a1 = attempt(attempt=1, role="retry", started_at=T0 + 0.010, latency_ms=30.0)
    a2 = attempt(
        attempt=2,
        role="escalation",
        backend="ar-main",
        backend_type="litellm",
        model="anthropic/claude-sonnet-4-5",
        prompt_tokens=130,
        completion_tokens=40,
        cost_nanos=1_000_000,
        baseline_cost_nanos=1_000_000,
        latency_ms=800.0,
        started_at=T0 + 0.045,
    )
    return request(
        a0,
        a1,
        a2,
        route="refunds",
        step_kind="extract",
        final_backend="ar-main",
        latency_ms=850.0,
        escalated=True,
        escalation_reason="low_confidence",
        confidence=0.41,
    )


def profile(**overrides: Any) -> StepProfile:
    base = StepProfile(
        kind="classify",
        difficulty=0.1,
        latency_budget_ms=300,
        prompt_tokens=120,
        expected_output_tokens=4,
        expects_json=False,
        has_tools=False,
        language="en",
        turns=1,
        evidence="structure",
        signals=("enum-like answer set",),
    )
    return replace(base, **overrides)
