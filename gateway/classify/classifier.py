"""Request -> StepProfile. Explicit hints win; otherwise structural signals decide.

(Interim rule set for the walking skeleton: hints, response_format, tools and length.
The routing-policy issue replaces the fallback with a trained linear model.)
"""

from __future__ import annotations

from collections.abc import Mapping

from gateway.classify.profile import STEP_KINDS, StepKind, StepProfile
from gateway.core.errors import BadRequest
from gateway.core.types import ChatRequest

HINT_KIND_HEADER = "x-step-kind"
HINT_BUDGET_HEADER = "x-latency-budget-ms"


class Classifier:
    def classify(self, request: ChatRequest, headers: Mapping[str, str]) -> StepProfile:
        """`headers` keys are lower-case."""
        meta = request.metadata or {}
        signals: list[str] = []
        hint = headers.get(HINT_KIND_HEADER) or meta.get("X-Step-Kind") or meta.get("step_kind")
        budget_raw = (
            headers.get(HINT_BUDGET_HEADER)
            or meta.get("X-Latency-Budget-Ms")
            or meta.get("latency_budget_ms")
        )
        budget = _parse_budget(budget_raw)
        text = "\n".join(m.text() for m in request.messages)
        prompt_tokens = max(1, len(text) // 4)
        expects_json = bool(
            request.response_format
            and request.response_format.get("type") in {"json_object", "json_schema"}
        )
        has_tools = bool(request.tools)
        kind: StepKind
        if hint:
            kind = _parse_kind(hint)
            evidence = "hint"
            signals.append(f"hint:kind={kind}")
        elif expects_json:
            kind, evidence = "extract", "structure"
            signals.append("structure:response_format")
        else:
            kind, evidence = "reason", "structure"
            signals.append("structure:default")
        difficulty = 0.2 if kind in {"classify", "extract", "format", "lookup"} else 0.7
        return StepProfile(
            kind=kind,
            difficulty=difficulty,
            latency_budget_ms=budget,
            prompt_tokens=prompt_tokens,
            expected_output_tokens=request.output_limit() or 256,
            expects_json=expects_json,
            has_tools=has_tools,
            language="en",
            turns=sum(1 for m in request.messages if m.role == "user"),
            evidence=evidence,  # type: ignore[arg-type]
            signals=tuple(signals),
        )


def _parse_kind(value: str) -> StepKind:
    kind = value.strip().lower()
    if kind not in STEP_KINDS:
        raise BadRequest(
            f"X-Step-Kind {value!r} is not a step kind; use one of {', '.join(STEP_KINDS)}",
            param="X-Step-Kind",
        )
    return kind  # type: ignore[return-value]


def _parse_budget(value: str | None) -> int | None:
    if value is None or value == "":
        return None
    try:
        budget = int(value)
    except ValueError:
        raise BadRequest(
            f"X-Latency-Budget-Ms must be a whole number of milliseconds, got {value!r}",
            param="X-Latency-Budget-Ms",
        ) from None
    if budget <= 0:
        raise BadRequest("X-Latency-Budget-Ms must be positive", param="X-Latency-Budget-Ms")
    return budget
