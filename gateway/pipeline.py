"""The request path: classify -> decide -> dispatch -> respond -> record.

One direction, one immutable value per step. The handler calls `chat` (non-streaming) or
`chat_stream` once and renders what comes back; recording (ledger, metrics, logs) happens
after the answer, through the `Recorder`s, never on the response's critical path.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from connectors.base import Connector
from gateway.classify.classifier import Classifier
from gateway.classify.profile import StepProfile
from gateway.confidence import Disposition
from gateway.confidence import decide as decide_disposition
from gateway.confidence.offloop import Judge
from gateway.core.deadline import Deadline
from gateway.core.errors import (
    AllBackendsFailed,
    GatewayError,
    ProviderError,
    StepgateError,
    StreamInterrupted,
)
from gateway.core.money import format_usd
from gateway.core.records import AttemptRecord, RequestRecord
from gateway.core.types import ChatRequest, Chunk, Completion, Usage
from gateway.dispatch import Attempt
from gateway.limits import cache
from gateway.limits.gate import NOTHING, Gate, Reservation
from gateway.limits.keys import Principal
from gateway.policy.holder import Generation, PolicyHolder
from gateway.recovery import Seam, tokens_in
from gateway.routing import RouteDecision, decide, native_only

log = logging.getLogger("stepgate.pipeline")


@dataclass(frozen=True, slots=True)
class RequestContext:
    request_id: str  # the gateway's own, fresh for every request: the ledger key
    headers: Mapping[str, str]  # lower-case names
    received: float  # monotonic
    received_at: float  # unix seconds
    api_key_id: str | None = None
    team: str | None = None
    principal: Principal | None = None  # the verified key, with its limits
    client_request_id: str | None = None  # the caller's id, echoed and stored, never a key


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
    confidence: float | None = None
    escalated: bool = False
    disposition: str = "final"
    escalation_reason: str | None = None
    reservation: Reservation = NOTHING
    cached: cache.CachedAnswer | None = None


@dataclass(frozen=True, slots=True)
class ChatOutcome:
    completion: Completion
    headers: dict[str, str]
    # Settles the budget reservation and hands the record to the recorders (ledger, metrics,
    # logs, traces). The handler calls it once the response has been written, so that work is
    # off the answer's critical path; it must be called exactly once, also when sending fails.
    publish: Callable[[], None]


@dataclass(slots=True)
class StreamOutcome:
    headers: dict[str, str]
    chunks: AsyncIterator[Chunk]
    # Set when the stream has ended (however it ended): the request's ledger record.
    record: RequestRecord | None = None


class _Leg:
    """One backend's part of a relayed stream: its attempt, its chunks, what it generated."""

    def __init__(self, attempt: Attempt, rest: AsyncIterator[Chunk]) -> None:
        self.attempt = attempt
        self.rest = rest
        self.usage: Usage | None = None
        self.tokens = 0
        self._settled = False

    def account(self, chunk: Chunk) -> None:
        if chunk.usage is not None:
            self.usage = chunk.usage
        self.tokens += tokens_in(chunk)

    async def settle(
        self, trace: _Trace, *, error: ProviderError | None, cancelled: bool = False
    ) -> None:
        """Close the upstream stream and finish the attempt (once). Cut or abandoned before
        the upstream's usage chunk, it is billed the tokens received and the prompt as
        estimated."""
        if self._settled:
            return
        self._settled = True
        aclose = getattr(self.rest, "aclose", None)
        if aclose is not None:
            await aclose()
        usage = self.usage or Usage(
            prompt_tokens=trace.profile.prompt_tokens, completion_tokens=self.tokens
        )
        self.attempt.finish(usage=usage, error=error, outcome="cancelled" if cancelled else None)


class Pipeline:
    def __init__(
        self,
        *,
        holder: PolicyHolder,
        classifier: Classifier,
        recorders: Sequence[Recorder] = (),
        gate: Gate | None = None,
        judge: Judge | None = None,
    ) -> None:
        self.holder = holder
        self.classifier = classifier
        self.recorders = list(recorders)
        self.gate = gate
        self.judge = judge or Judge()

    async def _admit(self, trace: _Trace, request: ChatRequest) -> None:
        """Rate limits and budget reservation (raises 429/402), after routing, before dispatch."""
        if self.gate is not None:
            trace.reservation = await self.gate.admit(
                trace.ctx.principal, request, trace.profile, trace.decision, trace.gen
            )

    def _begin(self, request: ChatRequest, ctx: RequestContext) -> _Trace:
        gen = self.holder.current
        t0 = time.time_ns()
        profile = self.classifier.classify(request, ctx.headers)
        t1 = time.time_ns()
        decision = decide(
            gen.policy, profile, model=request.model, team=ctx.team, metadata=request.metadata
        )
        needs = request.native_only
        if needs:
            dialect = request.native_dialect
            decision = native_only(
                decision,
                needs,
                dialect,
                lambda name: dialect in gen.connector(name).capabilities.dialects,
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
        dispatcher = trace.gen.dispatcher
        try:
            await self._admit(trace, request)
            if self.gate is not None:
                trace.cached = await self.gate.cached(
                    ctx.principal, request, trace.profile, trace.gen
                )
            if trace.cached is not None:
                trace.final_backend = trace.cached.backend
                trace.finish_reason = trace.cached.completion.finish_reason
                record, publish = self._finish_later(trace)
                return ChatOutcome(trace.cached.completion, self._headers(trace, record), publish)
            connector, completion = await dispatcher.complete(
                request,
                trace.decision.candidates,
                deadline,
                trace.attempts,
                context=trace.decision.context_fallbacks,
            )
            trace.final_backend = connector.name
            if await self._assess(trace, request, completion, deadline) == "escalate":
                completion = await self._escalate(trace, request, completion, deadline)
        except StepgateError as exc:
            self._finish(trace, status=exc.status, error=exc)
            raise
        except asyncio.CancelledError:
            self._finish(trace, status=499, error=None, cancelled=True)
            raise
        except Exception as exc:
            raise self._failed(trace, exc) from exc
        trace.finish_reason = completion.finish_reason
        record, publish = self._finish_later(trace)
        try:
            backend = trace.final_backend
            if self.gate is not None and trace.disposition == "final" and backend:
                self.gate.remember(
                    ctx.principal, request, trace.profile, trace.gen, completion, backend
                )
            return ChatOutcome(completion, self._headers(trace, record), publish)
        except BaseException:
            publish()
            raise

    async def _assess(
        self, trace: _Trace, request: ChatRequest, completion: Completion, deadline: Deadline
    ) -> Disposition:
        """Check a cheap answer on a route with an escalation block; decide what to do."""
        esc = trace.decision.escalation
        if esc is None:
            return "accept"
        answered_by = trace.final_backend or ""
        connector = trace.gen.backends[answered_by][1]
        fast = connector.backend_type == "dllm"
        checks = answer_checks(esc.checks, fast=fast)
        second = None
        if "agreement" in checks:
            try:
                _, second = await trace.gen.dispatcher.complete(
                    request, (answered_by,), deadline, trace.attempts, role="sample"
                )
            except ProviderError:
                second = None  # agreement cannot run; the verdict rests on the other checks
        verdict = await self.judge(
            request, completion, kind=trace.profile.kind, checks=checks, second=second
        )
        action = decide_disposition(verdict, esc, trace.profile.kind)
        if not fast and not verdict.hard_failure:
            # A strong (AR) backend's answer, e.g. the fallback during a dLLM outage: it is
            # what escalation would reach, so only a failed validator holds it back.
            action = "accept"
        if action == "escalate" and answered_by == esc.to:
            action = "flag"  # the answer already came from the stronger backend
        trace.confidence = verdict.score
        if action != "accept":
            trace.escalation_reason = verdict.reasons[0] if verdict.reasons else "low_confidence"
        if action == "flag":
            trace.disposition = "draft"
        return action

    async def _escalate(
        self, trace: _Trace, request: ChatRequest, cheap: Completion, deadline: Deadline
    ) -> Completion:
        """One hop to the escalation target; if it cannot answer, the cheap answer is a draft."""
        esc = trace.decision.escalation
        assert esc is not None and esc.to is not None
        try:
            connector, strong = await trace.gen.dispatcher.complete(
                request, (esc.to,), deadline, trace.attempts, role="escalation"
            )
        except ProviderError:
            trace.disposition = "draft"
            return cheap
        trace.escalated = True
        trace.final_backend = connector.name
        return strong

    async def chat_stream(self, request: ChatRequest, ctx: RequestContext) -> StreamOutcome:
        trace = self._begin(request, ctx)
        deadline = _deadline(trace)
        dispatcher = trace.gen.dispatcher
        esc = trace.decision.escalation
        try:
            await self._admit(trace, request)
            if esc is None and trace.decision.stream_recovery == "restart":
                connector, attempt, head, rest = await self._open_buffered(trace, request, deadline)
            elif esc is None:
                connector, attempt, first, rest = await dispatcher.open_stream(
                    request,
                    trace.decision.candidates,
                    deadline,
                    trace.attempts,
                    context=trace.decision.context_fallbacks,
                )
                head = [first]
            else:
                # A checked route: buffer (complete) and check the cheap answer before any byte.
                connector, cheap = await dispatcher.complete(
                    request,
                    trace.decision.candidates,
                    deadline,
                    trace.attempts,
                    context=trace.decision.context_fallbacks,
                )
                trace.final_backend = connector.name
                action = await self._assess(trace, request, cheap, deadline)
                opened = None
                if action == "escalate":
                    opened = await self._escalate_stream(trace, request, deadline)
                if opened is None:
                    return self._replay_outcome(trace, cheap)
                connector, attempt, first, rest = opened
                head = [first]
        except StepgateError as exc:
            self._finish(trace, status=exc.status, error=exc)
            raise
        except asyncio.CancelledError:
            self._finish(trace, status=499, error=None, cancelled=True)
            raise
        except Exception as exc:
            raise self._failed(trace, exc) from exc
        trace.final_backend = connector.name
        trace.ttft_ms = (time.monotonic() - ctx.received) * 1000
        outcome = StreamOutcome(self._headers(trace, None), _EMPTY)
        outcome.chunks = self._relay(trace, request, deadline, attempt, head, rest, outcome)
        return outcome

    async def _escalate_stream(
        self, trace: _Trace, request: ChatRequest, deadline: Deadline
    ) -> tuple[Connector, Attempt, Chunk, AsyncIterator[Chunk]] | None:
        esc = trace.decision.escalation
        assert esc is not None and esc.to is not None
        try:
            opened = await trace.gen.dispatcher.open_stream(
                request, (esc.to,), deadline, trace.attempts, role="escalation"
            )
        except ProviderError:
            trace.disposition = "draft"
            return None
        trace.escalated = True
        return opened

    def _replay_outcome(self, trace: _Trace, completion: Completion) -> StreamOutcome:
        trace.finish_reason = completion.finish_reason
        trace.ttft_ms = (time.monotonic() - trace.ctx.received) * 1000
        outcome = StreamOutcome(self._headers(trace, None), _EMPTY)
        outcome.chunks = self._replay(trace, completion, outcome)
        return outcome

    async def _replay(
        self, trace: _Trace, completion: Completion, outcome: StreamOutcome
    ) -> AsyncIterator[Chunk]:
        """Stream an already checked, fully generated answer (billed in full either way)."""
        cancelled = False
        try:
            for chunk in chunks_of(completion):
                yield chunk
        except (asyncio.CancelledError, GeneratorExit):
            cancelled = True
            raise
        finally:
            outcome.record = self._finish(
                trace, status=499 if cancelled else 200, error=None, cancelled=cancelled
            )

    async def _relay(
        self,
        trace: _Trace,
        request: ChatRequest,
        deadline: Deadline,
        attempt: Attempt,
        head: list[Chunk],
        rest: AsyncIterator[Chunk],
        outcome: StreamOutcome,
    ) -> AsyncIterator[Chunk]:
        """Pass chunks through; settle each attempt however its stream ends. With
        `stream_recovery: continue`, a stream that fails after content was sent is continued
        by the next candidate in the same client stream (`gateway.recovery`)."""
        status, error, cancelled = 200, None, False
        sent: list[str] = []  # content relayed to the caller
        relayed = 0  # and its tokens
        tools_sent = False
        live = _Leg(attempt, rest)
        seam: Seam | None = None
        try:
            pending: list[Chunk] = list(head)
            ended = False
            while not ended:
                try:
                    if not pending:
                        try:
                            pending = [await anext(live.rest)]
                        except StopAsyncIteration:
                            ended = True
                    if ended:
                        out = seam.flush() if seam is not None else []
                    else:
                        chunk = pending.pop(0)
                        live.account(chunk)
                        out = seam.feed(chunk) if seam is not None else [chunk]
                    for piece in out:
                        relayed += tokens_in(piece)
                        if piece.finish_reason:
                            trace.finish_reason = piece.finish_reason
                        if piece.content:
                            sent.append(piece.content)
                        tools_sent = tools_sent or bool(piece.tool_calls)
                        yield piece
                except ProviderError as exc:
                    failed = live.attempt.backend
                    cut = StreamInterrupted(
                        f"{failed} failed mid-stream: {exc.message}", backend=failed
                    )
                    if trace.decision.stream_recovery != "continue" or tools_sent:
                        raise cut from exc
                    await live.settle(trace, error=cut)
                    text = "".join(sent)
                    resumed = await self._continue(trace, request, deadline, text, relayed)
                    if resumed is None:
                        raise cut from exc
                    live, first, dedupe = resumed
                    trace.final_backend = live.attempt.backend
                    seam = Seam(text, first=head[0], dedupe=dedupe)
                    pending = [first]
        except StreamInterrupted as exc:
            error, status = exc, exc.status
            raise
        except (asyncio.CancelledError, GeneratorExit):
            cancelled = True
            raise
        finally:
            await live.settle(trace, error=error, cancelled=cancelled)
            outcome.record = self._finish(
                trace, status=499 if cancelled else status, error=error, cancelled=cancelled
            )

    async def _continue(
        self, trace: _Trace, request: ChatRequest, deadline: Deadline, text: str, tokens: int
    ) -> tuple[_Leg, Chunk, bool] | None:
        """Open a continuation of `text` on the next candidate that takes one: the candidates
        after the one that failed, else that one again. Returns the new leg, its first chunk
        and whether the seam must be checked for a repeat (no prefill)."""
        candidates = trace.decision.candidates
        failed = trace.final_backend or ""
        after = candidates[candidates.index(failed) + 1 :] if failed in candidates else ()
        for name in after or (failed,):
            if deadline.expired():
                return None
            connector = trace.gen.connector(name)
            prefill = connector.capabilities.prefill
            follow = request.continued(text, prefill=prefill, sent_tokens=tokens)
            try:
                _, attempt, first, rest = await trace.gen.dispatcher.open_stream(
                    follow, (name,), deadline, trace.attempts, role="continuation"
                )
            except ProviderError:
                continue  # refused (e.g. no prefill) or down: the next one, else the error
            return _Leg(attempt, rest), first, not prefill
        return None

    async def _open_buffered(
        self, trace: _Trace, request: ChatRequest, deadline: Deadline
    ) -> tuple[Connector, Attempt, list[Chunk], AsyncIterator[Chunk]]:
        """`stream_recovery: restart`: read the first `stream_buffer_tokens` tokens before
        any byte goes out; a failure inside them moves on to the next candidate unseen."""
        decision = trace.decision
        remaining = decision.candidates
        errors: list[ProviderError] = []
        while remaining:
            connector, attempt, first, rest = await trace.gen.dispatcher.open_stream(
                request,
                remaining,
                deadline,
                trace.attempts,
                context=decision.context_fallbacks,
            )
            leg = _Leg(attempt, rest)
            head = [first]
            leg.account(first)
            try:
                while leg.tokens < decision.stream_buffer_tokens and not first.finish_reason:
                    try:
                        chunk = await anext(rest)
                    except StopAsyncIteration:
                        break
                    leg.account(chunk)
                    head.append(chunk)
                    if chunk.finish_reason:
                        break
            except ProviderError as exc:
                await leg.settle(trace, error=exc)
                errors.append(exc)
                if connector.name in remaining:
                    remaining = remaining[remaining.index(connector.name) + 1 :]
                else:
                    remaining = ()
                continue
            return connector, attempt, head, rest
        raise AllBackendsFailed(errors)

    def _attempt_records(self, trace: _Trace) -> tuple[AttemptRecord, ...]:
        """Cost every attempt; the baseline is what the answer's usage would have cost on the
        baseline backend, so it is counted once, on the attempt whose answer was returned."""
        gen = trace.gen
        book = gen.pricebook
        answered = _answering_attempt(trace.attempts)
        out = []
        for i, a in enumerate(trace.attempts):
            # GPU-hour prices bill measured time, but only for calls the backend worked on: a
            # refused connection or a 503 before any token costs nothing.
            worked = a.usage.prompt_tokens > 0 or a.usage.completion_tokens > 0
            elapsed = a.latency_s if worked else 0.0
            cost = book.cost(a.backend, a.usage, elapsed_s=elapsed)
            baseline = book.cost(book.baseline, a.usage, elapsed_s=elapsed) if i == answered else 0
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

    def _failed(self, trace: _Trace, exc: Exception) -> GatewayError:
        """An unexpected failure: still one ledger row and a settled reservation."""
        log.error("request %s failed unexpectedly", trace.ctx.request_id, exc_info=exc)
        error = GatewayError("internal gateway error; the request id is in x-request-id")
        self._finish(trace, status=error.status, error=error)
        return error

    def _finish(
        self, trace: _Trace, *, status: int, error: StepgateError | None, cancelled: bool = False
    ) -> RequestRecord:
        """Build the request's record and publish it now."""
        finished = self._finished(trace, status=status, error=error, cancelled=cancelled)
        self._publish(finished, trace.reservation)
        return finished.record

    def _finish_later(self, trace: _Trace) -> tuple[RequestRecord, Callable[[], None]]:
        """A successful answer's record, and the call that publishes it (exactly once)."""
        finished = self._finished(trace, status=200, error=None)
        published = False

        def publish() -> None:
            nonlocal published
            if not published:
                published = True
                self._publish(finished, trace.reservation)

        return finished.record, publish

    def _publish(self, finished: Finished, reservation: Reservation) -> None:
        if self.gate is not None:
            self.gate.settle(reservation, finished.record)
        for recorder in self.recorders:
            recorder.record(finished)

    def _finished(
        self, trace: _Trace, *, status: int, error: StepgateError | None, cancelled: bool = False
    ) -> Finished:
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
            escalated=trace.escalated,
            confidence=trace.confidence,
            disposition=trace.disposition,
            escalation_reason=trace.escalation_reason,
            stream=trace.stream,
            cache_hit=trace.cached is not None,
            client_request_id=ctx.client_request_id,
            attempts=self._attempt_records(trace)
            if trace.cached is None
            else (
                cache.hit_attempt(
                    request_id=ctx.request_id,
                    answer=trace.cached,
                    gen=trace.gen,
                    started_at=ctx.received_at,
                ),
            ),
        )
        return Finished(
            record=record,
            profile=trace.profile,
            overhead_ms=_overhead_ms(latency_ms, trace.attempts),
            classify_ns=trace.classify_ns,
            request_model=trace.request_model,
            finish_reason=trace.finish_reason,
            traceparent=ctx.headers.get("traceparent"),
        )

    def _headers(self, trace: _Trace, record: RequestRecord | None) -> dict[str, str]:
        now_ms = (time.monotonic() - trace.ctx.received) * 1000
        headers = {
            "x-request-id": trace.ctx.request_id,
            "x-stepgate-route": trace.decision.route,
            "x-stepgate-backend": trace.final_backend or "",
            "x-stepgate-step-kind": trace.profile.kind,
            "x-stepgate-escalated": "true" if trace.escalated else "false",
            # A stream's cost is known only at its end: it is sent in the final chunk instead.
            "x-stepgate-cost-usd": format_usd(record.cost_nanos) if record else "deferred",
            "x-stepgate-overhead-ms": f"{_overhead_ms(now_ms, trace.attempts):.3f}",
        }
        if trace.ctx.client_request_id is not None:
            headers["x-client-request-id"] = trace.ctx.client_request_id
        if trace.cached is not None:
            headers["x-stepgate-cache"] = "hit"
        if trace.confidence is not None:
            headers["x-stepgate-confidence"] = f"{trace.confidence:.3f}"
            headers["x-stepgate-disposition"] = trace.disposition
        return headers


async def _no_chunks() -> AsyncIterator[Chunk]:
    return
    yield


_EMPTY: AsyncIterator[Chunk] = _no_chunks()


def answer_checks(checks: Sequence[str], *, fast: bool) -> tuple[str, ...]:
    """The route's checks that apply to an answer: token confidence and second samples judge
    the fast (dLLM) tier only; structural validators apply to every answer on the route."""
    if fast:
        return tuple(checks)
    return tuple(c for c in checks if c not in ("token_confidence", "agreement"))


def _deadline(trace: _Trace) -> Deadline:
    return Deadline(trace.ctx.received + trace.gen.policy.request_timeout_s)


def chunks_of(completion: Completion) -> list[Chunk]:
    """A finished completion as the chunks a streaming backend would have sent."""
    cid, model, created = completion.id, completion.model, completion.created
    out = [Chunk(id=cid, model=model, created=created, role="assistant", content="")]
    if completion.content:
        out.append(
            Chunk(
                id=cid,
                model=model,
                created=created,
                content=completion.content,
                logprobs=completion.logprobs,
            )
        )
    if completion.tool_calls:
        calls = tuple({"index": i, **call} for i, call in enumerate(completion.tool_calls))
        out.append(Chunk(id=cid, model=model, created=created, tool_calls=calls))
    finish = completion.finish_reason or "stop"
    out.append(Chunk(id=cid, model=model, created=created, finish_reason=finish))
    out.append(Chunk(id=cid, model=model, created=created, usage=completion.usage))
    return out


def _answering_attempt(attempts: Sequence[Attempt]) -> int | None:
    """Index of the attempt whose answer reached the client (the last one that produced any)."""
    for i in range(len(attempts) - 1, -1, -1):
        if attempts[i].error is None and attempts[i].role != "sample":
            return i
    return None


def _overhead_ms(total_ms: float, attempts: Sequence[Attempt]) -> float:
    """Time spent in the gateway: total minus time waiting on upstream calls and the backoff
    between them."""
    upstream = 0.0
    for a in attempts:
        upstream += (a.latency_s if a.latency_s else time.monotonic() - a.started) + a.backoff_s
    return max(0.0, total_ms - upstream * 1000)
