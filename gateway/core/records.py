"""What the request path hands to the ledger (and telemetry) after a request finishes.

One `RequestRecord` per request, with one `AttemptRecord` per backend call (primary, retry,
fallback, escalation). Money is integer nano-dollars; `None` means the price is unknown.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

AttemptRole = Literal["primary", "retry", "fallback", "escalation", "sample"]
Outcome = Literal["ok", "error", "cancelled"]


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    request_id: str
    attempt: int  # 0-based order within the request; (request_id, attempt) is the idempotency key
    role: AttemptRole
    backend: str
    backend_type: str  # "dllm" | "litellm"
    model: str
    outcome: Outcome
    error_class: str | None
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    cost_nanos: int | None
    baseline_cost_nanos: int | None
    latency_ms: float
    started_at: float  # unix seconds


@dataclass(frozen=True, slots=True)
class RequestRecord:
    request_id: str
    started_at: float  # unix seconds
    api_key_id: str | None
    team: str | None
    route: str
    step_kind: str
    difficulty: float
    final_backend: str | None
    status: int  # HTTP status returned to the client
    error_class: str | None
    latency_ms: float
    ttft_ms: float | None
    escalated: bool
    confidence: float | None
    disposition: str  # "final" | "draft"
    escalation_reason: str | None
    stream: bool
    cache_hit: bool
    attempts: tuple[AttemptRecord, ...]

    @property
    def cost_nanos(self) -> int | None:
        """Total over attempts; None if any attempt's price is unknown."""
        return _total(a.cost_nanos for a in self.attempts)

    @property
    def baseline_cost_nanos(self) -> int | None:
        """Total baseline over attempts; None if any attempt's baseline price is unknown."""
        return _total(a.baseline_cost_nanos for a in self.attempts)

    @property
    def answer(self) -> AttemptRecord | None:
        """The attempt whose answer the client received (never an agreement sample)."""
        for a in reversed(self.attempts):
            if a.role != "sample" and a.outcome != "error":
                return a
        return None


def _total(values: Iterable[int | None]) -> int | None:
    total = 0
    for value in values:
        if value is None:
            return None
        total += value
    return total
