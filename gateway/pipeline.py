"""The request path: classify -> decide -> dispatch -> respond -> record.

One direction, one immutable value per step. The handler calls `chat` (non-streaming) or
`chat_stream` once and renders what comes back; recording (ledger, metrics, logs) happens
after the answer, through the `Recorder`s, never on the response's critical path.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass

from connectors.base import Connector
from connectors.families import family
from gateway import accounting, relay
from gateway.classify.classifier import Classifier
from gateway.confidence import Disposition
from gateway.confidence import decide as decide_disposition
from gateway.confidence.offloop import Judge
from gateway.core.deadline import Deadline
from gateway.core.errors import (
    GatewayError,
    ProviderError,
    StepgateError,
)
from gateway.core.records import RequestRecord
from gateway.core.types import ChatRequest, Chunk, Completion
from gateway.dispatch import Attempt
from gateway.limits.gate import Gate, Reservation
from gateway.recording import Finished, Recorder
from gateway.relay import StreamOutcome
from gateway.routing import decide, native_only
from gateway.runtime import PolicyHolder
from gateway.trace import RequestContext, ResponseMeta, Trace

log = logging.getLogger("stepgate.pipeline")


@dataclass(frozen=True, slots=True)
class ChatOutcome:
    completion: Completion
    meta: ResponseMeta
    # Settles the budget reservation and hands the record to the recorders (ledger, metrics,
    # logs, traces). The handler calls it once the response has been written, so that work is
    # off the answer's critical path; it must be called exactly once, also when sending fails.
    publish: Callable[[], None]


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

    async def _admit(self, trace: Trace, request: ChatRequest) -> None:
        """Rate limits and budget reservation (raises 429/402), after routing, before dispatch."""
        if self.gate is not None:
            trace.reservation = await self.gate.admit(
                trace.ctx.principal, request, trace.profile, trace.decision, trace.gen
            )

    def _begin(self, request: ChatRequest, ctx: RequestContext) -> Trace:
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
        return Trace(
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
                return ChatOutcome(trace.cached.completion, self._meta(trace, record), publish)
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
            return ChatOutcome(completion, self._meta(trace, record), publish)
        except BaseException:
            publish()
            raise

    async def _assess(
        self, trace: Trace, request: ChatRequest, completion: Completion, deadline: Deadline
    ) -> Disposition:
        """Check a cheap answer on a route with an escalation block; decide what to do."""
        esc = trace.decision.escalation
        if esc is None:
            return "accept"
        answered_by = trace.final_backend or ""
        connector = trace.gen.backends[answered_by][1]
        fast = family(connector.backend_type).tier == "fast"
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
        self, trace: Trace, request: ChatRequest, cheap: Completion, deadline: Deadline
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
                connector, attempt, head, rest = await relay.open_buffered(trace, request, deadline)
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
        chunks = relay.relay(trace, request, deadline, attempt, head, rest, self._finish)
        return StreamOutcome(self._meta(trace, None), chunks)

    async def _escalate_stream(
        self, trace: Trace, request: ChatRequest, deadline: Deadline
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

    def _replay_outcome(self, trace: Trace, completion: Completion) -> StreamOutcome:
        trace.finish_reason = completion.finish_reason
        trace.ttft_ms = (time.monotonic() - trace.ctx.received) * 1000
        return StreamOutcome(self._meta(trace, None), relay.replay(trace, completion, self._finish))

    def _failed(self, trace: Trace, exc: Exception) -> GatewayError:
        """An unexpected failure: still one ledger row and a settled reservation."""
        log.error("request %s failed unexpectedly", trace.ctx.request_id, exc_info=exc)
        error = GatewayError("internal gateway error; the request id is in x-request-id")
        self._finish(trace, status=error.status, error=error)
        return error

    def _finish(
        self, trace: Trace, *, status: int, error: StepgateError | None, cancelled: bool = False
    ) -> RequestRecord:
        """Build the request's record and publish it now."""
        finished = self._finished(trace, status=status, error=error, cancelled=cancelled)
        self._publish(finished, trace.reservation)
        return finished.record

    def _finish_later(self, trace: Trace) -> tuple[RequestRecord, Callable[[], None]]:
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
        self, trace: Trace, *, status: int, error: StepgateError | None, cancelled: bool = False
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
            attempts=accounting.attempt_records(ctx.request_id, trace.attempts, trace.gen)
            if trace.cached is None
            else (
                accounting.cache_hit_record(
                    ctx.request_id, trace.cached, trace.gen, started_at=ctx.received_at
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

    def _meta(self, trace: Trace, record: RequestRecord | None) -> ResponseMeta:
        now_ms = (time.monotonic() - trace.ctx.received) * 1000
        return ResponseMeta(
            request_id=trace.ctx.request_id,
            route=trace.decision.route,
            backend=trace.final_backend or "",
            step_kind=trace.profile.kind,
            escalated=trace.escalated,
            cost_nanos=record.cost_nanos if record else None,
            cost_known=record is not None,
            overhead_ms=_overhead_ms(now_ms, trace.attempts),
            client_request_id=trace.ctx.client_request_id,
            cache_hit=trace.cached is not None,
            confidence=trace.confidence,
            disposition=trace.disposition if trace.confidence is not None else None,
        )


def answer_checks(checks: Sequence[str], *, fast: bool) -> tuple[str, ...]:
    """The route's checks that apply to an answer: token confidence and second samples judge
    the fast (dLLM) tier only; structural validators apply to every answer on the route."""
    if fast:
        return tuple(checks)
    return tuple(c for c in checks if c not in ("token_confidence", "agreement"))


def _deadline(trace: Trace) -> Deadline:
    return Deadline(trace.ctx.received + trace.gen.policy.request_timeout_s)


def _overhead_ms(total_ms: float, attempts: Sequence[Attempt]) -> float:
    """Time spent in the gateway: total minus time waiting on upstream calls and the backoff
    between them."""
    upstream = 0.0
    for a in attempts:
        upstream += (a.latency_s if a.latency_s else time.monotonic() - a.started) + a.backoff_s
    return max(0.0, total_ms - upstream * 1000)
