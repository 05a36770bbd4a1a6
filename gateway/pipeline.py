"""The request path: classify -> decide -> dispatch -> respond -> record.

One direction, one immutable value per step. The handler calls `chat` (non-streaming) or
`chat_stream` once and renders what comes back; recording (ledger, metrics, logs) happens
after the answer, through the `Recorder`s, never on the response's critical path.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from gateway.classify.classifier import Classifier
from gateway.classify.profile import StepProfile
from gateway.core.deadline import Deadline
from gateway.core.errors import ProviderError, StepgateError, StreamInterrupted
from gateway.core.money import format_usd
from gateway.core.records import AttemptRecord, RequestRecord
from gateway.core.types import ChatRequest, Chunk, Completion, Usage
from gateway.dispatch import Attempt
from gateway.policy.holder import Generation, PolicyHolder
from gateway.routing import RouteDecision, decide

log = logging.getLogger("stepgate.pipeline")


@dataclass(frozen=True, slots=True)
class RequestContext:
    request_id: str
    headers: Mapping[str, str]  # lower-case names
    received: float  # monotonic
    received_at: float  # unix seconds
    api_key_id: str | None = None
    team: str | None = None


@dataclass(frozen=True, slots=True)
class Finished:
    """A finished request as the recorders see it."""

    record: RequestRecord
    profile: StepProfile
    overhead_ms: float
    classify_ns: tuple[int, int]  # time.time_ns() before and after classification
    request_model: str
    finish_reason: str | None
    traceparent: str | None


class Recorder(Protocol):
    def record(self, finished: Finished) -> None:
        """Take a finished request. Must not block or raise."""


@dataclass(slots=True)
class _Trace:
    """What one request did, accumulated while it runs (request-scoped, never shared)."""

    ctx: RequestContext
    gen: Generation
    profile: StepProfile
    decision: RouteDecision
    stream: bool
    request_model: str
    classify_ns: tuple[int, int]
    attempts: list[Attempt] = field(default_factory=list)
    ttft_ms: float | None = None
    final_backend: str | None = None
    finish_reason: str | None = None


@dataclass(frozen=True, slots=True)
class ChatOutcome:
    completion: Completion
    headers: dict[str, str]


@dataclass(slots=True)
class StreamOutcome:
    headers: dict[str, str]
    chunks: AsyncIterator[Chunk]
    # Set when the stream has ended (however it ended): the request's ledger record.
    record: RequestRecord | None = None


class Pipeline:
    def __init__(
        self, *, holder: PolicyHolder, classifier: Classifier, recorders: Sequence[Recorder] = ()
    ) -> None:
        self.holder = holder
        self.classifier = classifier
        self.recorders = list(recorders)

    def _begin(self, request: ChatRequest, ctx: RequestContext) -> _Trace:
        gen = self.holder.current
        t0 = time.time_ns()
        profile = self.classifier.classify(request, ctx.headers)
        t1 = time.time_ns()
        decision = decide(
            gen.policy, profile, model=request.model, team=ctx.team, metadata=request.metadata
        )
        return _Trace(
            ctx,
            gen,
            profile,
            decision,
            stream=request.stream,
            request_model=request.model,
            classify_ns=(t0, t1),
        )

    async def chat(self, request: ChatRequest, ctx: RequestContext) -> ChatOutcome:
        trace = self._begin(request, ctx)
        deadline = _deadline(trace)
        try:
            connector, completion = await trace.gen.dispatcher.complete(
                request, trace.decision.candidates, deadline, trace.attempts
            )
        except StepgateError as exc:
            self._finish(trace, status=exc.status, error=exc)
            raise
        except asyncio.CancelledError:
            self._finish(trace, status=499, error=None, cancelled=True)
            raise
        trace.final_backend = connector.name
        trace.finish_reason = completion.finish_reason
        record = self._finish(trace, status=200, error=None)
        return ChatOutcome(completion, self._headers(trace, record))

    async def chat_stream(self, request: ChatRequest, ctx: RequestContext) -> StreamOutcome:
        trace = self._begin(request, ctx)
        deadline = _deadline(trace)
        try:
            connector, attempt, first, rest = await trace.gen.dispatcher.open_stream(
                request, trace.decision.candidates, deadline, trace.attempts
            )
        except StepgateError as exc:
            self._finish(trace, status=exc.status, error=exc)
            raise
        except asyncio.CancelledError:
            self._finish(trace, status=499, error=None, cancelled=True)
            raise
        trace.final_backend = connector.name
        trace.ttft_ms = (time.monotonic() - ctx.received) * 1000
        outcome = StreamOutcome(self._headers(trace, None), _EMPTY)
        outcome.chunks = self._relay(trace, attempt, first, rest, outcome)
        return outcome

    async def _relay(
        self,
        trace: _Trace,
        attempt: Attempt,
        first: Chunk,
        rest: AsyncIterator[Chunk],
        outcome: StreamOutcome,
    ) -> AsyncIterator[Chunk]:
        """Pass chunks through; settle the attempt however the stream ends."""
        usage: Usage | None = None
        content_chunks = 0
        chars = 0
        status, error, cancelled = 200, None, False
        try:
            chunk: Chunk | None = first
            while chunk is not None:
                if chunk.usage is not None:
                    usage = chunk.usage
                if chunk.finish_reason:
                    trace.finish_reason = chunk.finish_reason
                if chunk.content or chunk.tool_calls:
                    content_chunks += 1
                    chars += len(chunk.content or "")
                yield chunk
                try:
                    chunk = await anext(rest)
                except StopAsyncIteration:
                    chunk = None
        except ProviderError as exc:
            error = StreamInterrupted(
                f"{attempt.backend} failed mid-stream: {exc.message}", backend=attempt.backend
            )
            status = error.status
            raise error from exc
        except (asyncio.CancelledError, GeneratorExit):
            cancelled = True
            raise
        finally:
            aclose = getattr(rest, "aclose", None)
            if aclose is not None:
                await aclose()
            if usage is None:
                # Cut or abandoned before the upstream's usage chunk: bill what was generated.
                generated = max(content_chunks, chars // 4)
                usage = Usage(
                    prompt_tokens=trace.profile.prompt_tokens, completion_tokens=generated
                )
            attempt.finish(usage=usage, error=error, outcome="cancelled" if cancelled else None)
            outcome.record = self._finish(
                trace, status=499 if cancelled else status, error=error, cancelled=cancelled
            )

    def _attempt_records(self, trace: _Trace) -> tuple[AttemptRecord, ...]:
        """Cost every attempt; the baseline is what the answer's usage would have cost on the
        baseline backend, so it is counted once, on the attempt whose answer was returned."""
        gen = trace.gen
        book = gen.pricebook
        answered = _answering_attempt(trace.attempts)
        out = []
        for i, a in enumerate(trace.attempts):
            cost = book.cost(a.backend, a.usage, elapsed_s=a.latency_s)
            baseline = (
                book.cost(book.baseline, a.usage, elapsed_s=a.latency_s) if i == answered else 0
            )
            out.append(
                AttemptRecord(
                    request_id=trace.ctx.request_id,
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

    def _finish(
        self, trace: _Trace, *, status: int, error: StepgateError | None, cancelled: bool = False
    ) -> RequestRecord:
        ctx = trace.ctx
        latency_ms = (time.monotonic() - ctx.received) * 1000
        record = RequestRecord(
            request_id=ctx.request_id,
            started_at=ctx.received_at,
            api_key_id=ctx.api_key_id,
            team=ctx.team,
            route=trace.decision.route,
            step_kind=trace.profile.kind,
            difficulty=trace.profile.difficulty,
            final_backend=trace.final_backend,
            status=status,
            error_class=error.error_class
            if error
            else ("caller_disconnected" if cancelled else None),
            latency_ms=latency_ms,
            ttft_ms=trace.ttft_ms,
            escalated=False,
            confidence=None,
            disposition="final",
            escalation_reason=None,
            stream=trace.stream,
            cache_hit=False,
            attempts=self._attempt_records(trace),
        )
        finished = Finished(
            record=record,
            profile=trace.profile,
            overhead_ms=_overhead_ms(latency_ms, trace.attempts),
            classify_ns=trace.classify_ns,
            request_model=trace.request_model,
            finish_reason=trace.finish_reason,
            traceparent=ctx.headers.get("traceparent"),
        )
        for recorder in self.recorders:
            recorder.record(finished)
        return record

    def _headers(self, trace: _Trace, record: RequestRecord | None) -> dict[str, str]:
        now_ms = (time.monotonic() - trace.ctx.received) * 1000
        return {
            "x-request-id": trace.ctx.request_id,
            "x-stepgate-route": trace.decision.route,
            "x-stepgate-backend": trace.final_backend or "",
            "x-stepgate-step-kind": trace.profile.kind,
            "x-stepgate-escalated": "false",
            # A stream's cost is known only at its end: it is sent in the final chunk instead.
            "x-stepgate-cost-usd": format_usd(record.cost_nanos) if record else "deferred",
            "x-stepgate-overhead-ms": f"{_overhead_ms(now_ms, trace.attempts):.3f}",
        }


async def _no_chunks() -> AsyncIterator[Chunk]:
    return
    yield


_EMPTY: AsyncIterator[Chunk] = _no_chunks()


def _deadline(trace: _Trace) -> Deadline:
    return Deadline(trace.ctx.received + trace.gen.policy.request_timeout_s)


def _answering_attempt(attempts: Sequence[Attempt]) -> int | None:
    """Index of the attempt whose answer reached the client (the last one that produced any)."""
    for i in range(len(attempts) - 1, -1, -1):
        if attempts[i].error is None:
            return i
    return None


def _overhead_ms(total_ms: float, attempts: Sequence[Attempt]) -> float:
    """Time spent in the gateway: total minus time waiting on upstream calls."""
    upstream = 0.0
    for a in attempts:
        upstream += a.latency_s if a.latency_s else time.monotonic() - a.started
    return max(0.0, total_ms - upstream * 1000)
