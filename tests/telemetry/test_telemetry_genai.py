"""The pure record -> GenAI span attribute mapping."""

from __future__ import annotations

import orjson
import pytest

from gateway.telemetry import genai
from gateway.telemetry.genai import TraceExtras
from tests.support.telemetry_builders import attempt, escalated_request, profile, request


def test_request_attributes_follow_genai_conventions() -> None:
    rec = escalated_request()
    attrs = genai.request_attributes(
        rec, TraceExtras(request_model="auto", finish_reasons=("stop",))
    )
    assert attrs["gen_ai.operation.name"] == "chat"
    assert attrs["gen_ai.request.model"] == "auto"
    assert attrs["gen_ai.response.model"] == "anthropic/claude-sonnet-4-5"
    assert attrs["gen_ai.provider.name"] == "anthropic"
    # Usage of the answer the client got; cost over every attempt.
    assert attrs["gen_ai.usage.input_tokens"] == 130
    assert attrs["gen_ai.usage.output_tokens"] == 40
    assert attrs["gen_ai.response.finish_reasons"] == ("stop",)
    assert attrs["stepgate.route"] == "refunds"
    assert attrs["stepgate.step_kind"] == "extract"
    assert attrs["stepgate.escalated"] is True
    assert attrs["stepgate.cost_usd"] == pytest.approx((0 + 2_000 + 1_000_000) / 1e9)
    assert attrs["stepgate.escalation.reason"] == "low_confidence"
    assert "error.type" not in attrs


def test_request_model_defaults_to_final_model_and_unknown_cost_is_absent() -> None:
    rec = request(attempt(cost_nanos=None))
    attrs = genai.request_attributes(rec)
    assert attrs["gen_ai.request.model"] == "diffusiongemma-2b"
    assert attrs["gen_ai.provider.name"] == "stepgate.dllm"
    assert "stepgate.cost_usd" not in attrs


def test_failed_request_has_error_type_and_no_response_of_its_own() -> None:
    failed = attempt(outcome="error", error_class="provider_timeout", cost_nanos=0)
    rec = request(failed, status=504, error_class="provider_timeout")
    attrs = genai.request_attributes(rec)
    assert attrs["error.type"] == "provider_timeout"
    assert attrs["http.response.status_code"] == 504


@pytest.mark.parametrize(
    ("backend_type", "model", "provider"),
    [
        ("litellm", "anthropic/claude-sonnet-4-5", "anthropic"),
        ("litellm", "bedrock/anthropic.claude-3", "aws.bedrock"),
        ("litellm", "gemini/gemini-2.5-flash", "gcp.gemini"),
        ("litellm", "gpt-4o-mini", "openai"),
        ("litellm", "somehost/custom", "somehost"),
        ("dllm", "llada-8b", "stepgate.dllm"),
    ],
)
def test_provider_name(backend_type: str, model: str, provider: str) -> None:
    assert genai.provider_name(attempt(backend_type=backend_type, model=model)) == provider


def test_attempt_and_escalation_attributes() -> None:
    rec = escalated_request()
    a0, _, a2 = rec.attempts
    attrs = genai.attempt_attributes(a0, rec)
    assert genai.attempt_span_name(a0) == "chat diffusiongemma-2b"
    assert attrs["error.type"] == "provider_unavailable"
    assert attrs["stepgate.attempt.role"] == "primary"
    assert attrs["stepgate.escalated"] is False
    esc = genai.escalation_attributes(rec, a2, rec.attempts[1])
    assert esc["stepgate.escalation.from_backend"] == "dllm"
    assert esc["stepgate.escalation.to_backend"] == "ar-main"
    assert esc["stepgate.escalation.reason"] == "low_confidence"


def test_content_is_mapped_only_on_opt_in_and_keys_are_masked() -> None:
    extras = TraceExtras(
        input_messages=({"role": "user", "content": "my key is sk-" + "abcdefghijklmnopqrstuvwx"},),
        output_messages=({"role": "assistant", "content": "noted"},),
    )
    off = genai.request_attributes(request(), extras)
    assert "gen_ai.input.messages" not in off and "gen_ai.output.messages" not in off
    on = genai.request_attributes(request(), extras, record_content=True)
    messages = orjson.loads(str(on["gen_ai.input.messages"]))
    assert messages[0]["content"] == "my key is sk-[REDACTED]"
    assert orjson.loads(str(on["gen_ai.output.messages"]))[0]["content"] == "noted"


def test_profile_signals_need_opt_in() -> None:
    p = profile(signals=("ngram: refund my order",))
    off = genai.profile_attributes(p)
    assert off["stepgate.evidence"] == "structure"
    assert off["stepgate.latency_budget_ms"] == 300
    assert "stepgate.signals" not in off
    assert genai.profile_attributes(p, record_content=True)["stepgate.signals"] == (
        "ngram: refund my order",
    )
