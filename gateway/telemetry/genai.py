"""Pure mapping from our records to OpenTelemetry span attributes (GenAI semantic conventions).

No OTel SDK import and no I/O: functions take `RequestRecord` / `AttemptRecord` / `StepProfile`
and return flat attribute dicts. `tracing.py` turns them into spans. Customer content (messages,
completions, classifier signals, which may quote the prompt) is mapped only when the caller
passes `record_content=True` (policy opt-in), and even then credentials are masked.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from connectors.families import BY_TYPE
from gateway.core.profile import StepProfile
from gateway.core.records import AttemptRecord, RequestRecord
from gateway.core.redact import MASK, SECRET_KEYS, redact

AttrValue = str | bool | int | float | Sequence[str]
Attributes = dict[str, AttrValue]

OPERATION: Final = "chat"
REQUEST_SPAN: Final = "stepgate.request"
CLASSIFY_SPAN: Final = "stepgate.classify"
ESCALATION_SPAN: Final = "stepgate.escalation"
_NANOS_PER_USD: Final = 1e9


@dataclass(frozen=True, slots=True)
class TraceExtras:
    """What a trace can show beyond the record. Content fields are used only with record_content.

    `request_model`: the model name the client sent (e.g. "auto"). `finish_reasons`: the final
    answer's finish reasons. `input_messages` / `output_messages`: OpenAI-shaped message dicts.
    `traceparent`: the caller's W3C trace context header, to join the caller's trace.
    """

    request_model: str | None = None
    finish_reasons: tuple[str, ...] = ()
    input_messages: tuple[Mapping[str, Any], ...] = ()
    output_messages: tuple[Mapping[str, Any], ...] = ()
    traceparent: str | None = None
    extra: Mapping[str, AttrValue] = field(default_factory=dict)


def provider_name(attempt: AttemptRecord) -> str:
    """`gen_ai.provider.name` for one backend call, as its family names it (the litellm
    provider, `anthropic`, `stepgate.dllm`)."""
    found = BY_TYPE.get(attempt.backend_type)
    if found is None:
        return f"stepgate.{attempt.backend_type}" if attempt.backend_type else "stepgate"
    return found.provider(attempt.model)


def usd(nanos: int | None) -> float | None:
    return None if nanos is None else nanos / _NANOS_PER_USD


def final_attempt(record: RequestRecord) -> AttemptRecord | None:
    """The attempt whose answer the client got (last ok one), else the last attempt."""
    for attempt in reversed(record.attempts):
        if attempt.outcome == "ok":
            return attempt
    return record.attempts[-1] if record.attempts else None


def attempt_span_name(attempt: AttemptRecord) -> str:
    return f"{OPERATION} {attempt.model}" if attempt.model else OPERATION


def request_attributes(
    record: RequestRecord,
    extras: TraceExtras | None = None,
    *,
    record_content: bool = False,
) -> Attributes:
    """The request span: what the client asked, what it got, the route and the total cost.

    `gen_ai.usage.*` and `gen_ai.response.model` describe the answer the client received (final
    attempt); `stepgate.cost_usd` is the total over all attempts, escalation included.
    """
    extras = extras or TraceExtras()
    final = final_attempt(record)
    attrs: Attributes = {
        "gen_ai.operation.name": OPERATION,
        "stepgate.request_id": record.request_id,
        "stepgate.route": record.route,
        "stepgate.step_kind": record.step_kind,
        "stepgate.difficulty": record.difficulty,
        "stepgate.escalated": record.escalated,
        "stepgate.disposition": record.disposition,
        "stepgate.attempts": len(record.attempts),
        "stepgate.stream": record.stream,
        "stepgate.cache_hit": record.cache_hit,
        "http.response.status_code": record.status,
    }
    request_model = extras.request_model or (final.model if final else None)
    if request_model:
        attrs["gen_ai.request.model"] = request_model
    if final is not None:
        attrs["gen_ai.provider.name"] = provider_name(final)
        attrs["gen_ai.response.model"] = final.model
        attrs["gen_ai.usage.input_tokens"] = final.prompt_tokens
        attrs["gen_ai.usage.output_tokens"] = final.completion_tokens
        if final.cached_tokens:
            attrs["gen_ai.usage.cache_read.input_tokens"] = final.cached_tokens
    if record.final_backend:
        attrs["stepgate.backend"] = record.final_backend
    if record.client_request_id:
        attrs["stepgate.client_request_id"] = record.client_request_id
    if extras.finish_reasons:
        attrs["gen_ai.response.finish_reasons"] = tuple(extras.finish_reasons)
    cost = usd(record.cost_nanos)
    if cost is not None:
        attrs["stepgate.cost_usd"] = cost
    baseline = record.baseline_cost_nanos
    if baseline is not None:
        attrs["stepgate.baseline_cost_usd"] = baseline / _NANOS_PER_USD
    if record.ttft_ms is not None:
        attrs["stepgate.ttft_ms"] = record.ttft_ms
    if record.confidence is not None:
        attrs["stepgate.confidence"] = record.confidence
    if record.escalation_reason:
        attrs["stepgate.escalation.reason"] = redact(record.escalation_reason)
    if record.team:
        attrs["stepgate.team"] = record.team
    if record.error_class:
        attrs["error.type"] = record.error_class
    for key, value in extras.extra.items():
        attrs[key] = redact(value) if isinstance(value, str) else value
    if record_content:
        attrs.update(content_attributes(extras))
    return attrs


def content_attributes(extras: TraceExtras) -> Attributes:
    """`gen_ai.input.messages` / `gen_ai.output.messages` as JSON strings, credentials masked."""
    attrs: Attributes = {}
    if extras.input_messages:
        attrs["gen_ai.input.messages"] = _messages_json(extras.input_messages)
    if extras.output_messages:
        attrs["gen_ai.output.messages"] = _messages_json(extras.output_messages)
    return attrs


def _messages_json(messages: Sequence[Mapping[str, Any]]) -> str:
    # Keep contents (the opt-in is the point) but mask credential-shaped strings inside them.
    cleaned = [{str(k): _mask_strings(v) for k, v in m.items()} for m in messages]
    return orjson.dumps(cleaned).decode()


def _mask_strings(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {
            str(k): MASK if str(k).lower() in SECRET_KEYS else _mask_strings(v)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [_mask_strings(v) for v in value]
    return value


def attempt_attributes(attempt: AttemptRecord, record: RequestRecord) -> Attributes:
    """One backend call (CLIENT span `chat {model}`)."""
    attrs: Attributes = {
        "gen_ai.operation.name": OPERATION,
        "gen_ai.provider.name": provider_name(attempt),
        "gen_ai.request.model": attempt.model,
        "gen_ai.response.model": attempt.model,
        "gen_ai.usage.input_tokens": attempt.prompt_tokens,
        "gen_ai.usage.output_tokens": attempt.completion_tokens,
        "stepgate.route": record.route,
        "stepgate.step_kind": record.step_kind,
        "stepgate.backend": attempt.backend,
        "stepgate.backend_type": attempt.backend_type,
        "stepgate.attempt": attempt.attempt,
        "stepgate.attempt.role": attempt.role,
        "stepgate.attempt.outcome": attempt.outcome,
        "stepgate.escalated": attempt.role == "escalation",
    }
    if attempt.cached_tokens:
        attrs["gen_ai.usage.cache_read.input_tokens"] = attempt.cached_tokens
    cost = usd(attempt.cost_nanos)
    if cost is not None:
        attrs["stepgate.cost_usd"] = cost
    baseline = usd(attempt.baseline_cost_nanos)
    if baseline is not None:
        attrs["stepgate.baseline_cost_usd"] = baseline
    if attempt.error_class:
        attrs["error.type"] = attempt.error_class
    return attrs


def escalation_attributes(
    record: RequestRecord, escalation: AttemptRecord, previous: AttemptRecord | None
) -> Attributes:
    """The escalation span: from which backend to which, and why."""
    attrs: Attributes = {
        "stepgate.route": record.route,
        "stepgate.step_kind": record.step_kind,
        "stepgate.escalated": True,
        "stepgate.escalation.to_backend": escalation.backend,
        "stepgate.escalation.to_model": escalation.model,
    }
    if previous is not None:
        attrs["stepgate.escalation.from_backend"] = previous.backend
        attrs["stepgate.escalation.from_model"] = previous.model
    if record.escalation_reason:
        attrs["stepgate.escalation.reason"] = redact(record.escalation_reason)
    if record.confidence is not None:
        attrs["stepgate.confidence"] = record.confidence
    return attrs


def profile_attributes(profile: StepProfile, *, record_content: bool = False) -> Attributes:
    """The classification span. Signals may quote prompt words, so they need record_content."""
    attrs: Attributes = {
        "stepgate.step_kind": profile.kind,
        "stepgate.difficulty": profile.difficulty,
        "stepgate.evidence": profile.evidence,
        "stepgate.prompt_tokens_estimate": profile.prompt_tokens,
        "stepgate.expected_output_tokens": profile.expected_output_tokens,
        "stepgate.expects_json": profile.expects_json,
        "stepgate.has_tools": profile.has_tools,
        "stepgate.language": profile.language,
        "stepgate.turns": profile.turns,
    }
    if profile.latency_budget_ms is not None:
        attrs["stepgate.latency_budget_ms"] = profile.latency_budget_ms
    if record_content and profile.signals:
        attrs["stepgate.signals"] = tuple(redact(s) for s in profile.signals)
    return attrs
