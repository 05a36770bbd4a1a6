"""A request's attempts -> costed ledger records: the one place cost and baseline are computed.

The baseline is what the answer's usage would have cost on the policy's baseline backend, so it
is counted once, on the attempt whose answer was returned. A cache hit spends nothing and is
credited the baseline of the answer it replays (so its saving is reported).
"""

from __future__ import annotations

from collections.abc import Sequence

from gateway.core.records import AttemptRecord
from gateway.core.types import Usage
from gateway.dispatch import Attempt
from gateway.limits.cache import CachedAnswer
from gateway.runtime import Generation


def _costs(
    gen: Generation, backend: str, usage: Usage, *, elapsed_s: float, answered: bool
) -> tuple[int | None, int | None]:
    """(cost, baseline) of one attempt in nano-dollars; None where a price is unknown."""
    book = gen.pricebook
    cost = book.cost(backend, usage, elapsed_s=elapsed_s)
    baseline = book.cost(book.baseline, usage, elapsed_s=elapsed_s) if answered else 0
    return cost, baseline


def attempt_records(
    request_id: str, attempts: Sequence[Attempt], gen: Generation
) -> tuple[AttemptRecord, ...]:
    answered = answering_attempt(attempts)
    out = []
    for i, a in enumerate(attempts):
        # GPU-hour prices bill measured time, but only for calls the backend worked on: a
        # refused connection or a 503 before any token costs nothing.
        worked = a.usage.prompt_tokens > 0 or a.usage.completion_tokens > 0
        cost, baseline = _costs(
            gen,
            a.backend,
            a.usage,
            elapsed_s=a.latency_s if worked else 0.0,
            answered=i == answered,
        )
        out.append(
            AttemptRecord(
                request_id=request_id,
                attempt=i,
                role=a.role,
                backend=a.backend,
                backend_type=gen.backends[a.backend][1].backend_type,
                model=a.model,
                outcome=a.outcome,
                error_class=a.error.error_class if a.error else None,
                prompt_tokens=a.usage.prompt_tokens,
                completion_tokens=a.usage.completion_tokens,
                cached_tokens=a.usage.cached_tokens,
                cost_nanos=cost,
                baseline_cost_nanos=baseline,
                latency_ms=a.latency_s * 1000,
                started_at=a.started_at,
            )
        )
    return tuple(out)


def cache_hit_record(
    request_id: str, answer: CachedAnswer, gen: Generation, *, started_at: float
) -> AttemptRecord:
    """The ledger attempt for a cache hit: no tokens spent, zero cost, and as baseline what the
    cached answer's usage costs at the baseline backend."""
    _, baseline = _costs(gen, answer.backend, answer.completion.usage, elapsed_s=0.0, answered=True)
    configured = gen.backends.get(answer.backend)
    return AttemptRecord(
        request_id=request_id,
        attempt=0,
        role="primary",
        backend=answer.backend,
        backend_type=configured[1].backend_type if configured else "cache",
        model=answer.completion.model,
        outcome="ok",
        error_class=None,
        prompt_tokens=0,
        completion_tokens=0,
        cached_tokens=0,
        cost_nanos=0,
        baseline_cost_nanos=baseline,
        latency_ms=0.0,
        started_at=started_at,
    )


def answering_attempt(attempts: Sequence[Attempt]) -> int | None:
    """Index of the attempt whose answer reached the client (the last one that produced any)."""
    for i in range(len(attempts) - 1, -1, -1):
        if attempts[i].error is None and attempts[i].role != "sample":
            return i
    return None
