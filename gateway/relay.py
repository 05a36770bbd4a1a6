"""Relaying a stream to the caller: each backend's leg settled however it ends, a cut stream
continued by the next candidate (`stream_recovery: continue`), the first tokens held back
(`restart`), and a checked, fully generated answer replayed as chunks.

Each function ends the request through `finish` (the pipeline's: record, settle, publish) and
leaves the record on the `StreamOutcome` the caller renders from.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

from connectors.base import Connector
from gateway.core.deadline import Deadline
from gateway.core.errors import AllBackendsFailed, ProviderError, StepgateError, StreamInterrupted
from gateway.core.records import RequestRecord
from gateway.core.types import ChatRequest, Chunk, Completion, Usage
from gateway.dispatch import Attempt
from gateway.recovery import Seam, tokens_in
from gateway.trace import ResponseMeta, Trace


class Finish(Protocol):
    """Ends a request: builds and publishes its record (the pipeline's `_finish`)."""

    def __call__(
        self, trace: Trace, *, status: int, error: StepgateError | None, cancelled: bool = False
    ) -> RequestRecord: ...


@dataclass(frozen=True, slots=True)
class StreamEnd:
    """The last item of a stream that ended normally: the request's ledger record, returned
    in-band (a stream cut by an error ends with that error instead)."""

    record: RequestRecord


@dataclass(slots=True)
class StreamOutcome:
    meta: ResponseMeta
    # The answer's chunks, then one `StreamEnd` when the stream ended normally.
    chunks: AsyncIterator[Chunk | StreamEnd]


class Leg:
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
        self, trace: Trace, *, error: ProviderError | None, cancelled: bool = False
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


async def replay(
    trace: Trace, completion: Completion, finish: Finish
) -> AsyncIterator[Chunk | StreamEnd]:
    """Stream an already checked, fully generated answer (billed in full either way)."""
    cancelled = False
    try:
        for chunk in chunks_of(completion):
            yield chunk
    except (asyncio.CancelledError, GeneratorExit):
        cancelled = True
        raise
    finally:
        record = finish(trace, status=499 if cancelled else 200, error=None, cancelled=cancelled)
    yield StreamEnd(record)


async def relay(
    trace: Trace,
    request: ChatRequest,
    deadline: Deadline,
    attempt: Attempt,
    head: list[Chunk],
    rest: AsyncIterator[Chunk],
    finish: Finish,
) -> AsyncIterator[Chunk | StreamEnd]:
    """Pass chunks through; settle each attempt however its stream ends. With
    `stream_recovery: continue`, a stream that fails after content was sent is continued
    by the next candidate in the same client stream (`gateway.recovery`)."""
    status, error, cancelled = 200, None, False
    sent: list[str] = []  # content relayed to the caller
    relayed = 0  # and its tokens
    tools_sent = False
    live = Leg(attempt, rest)
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
                resumed = await _continue(trace, request, deadline, text, relayed)
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
        record = finish(
            trace, status=499 if cancelled else status, error=error, cancelled=cancelled
        )
    yield StreamEnd(record)


async def _continue(
    trace: Trace, request: ChatRequest, deadline: Deadline, text: str, tokens: int
) -> tuple[Leg, Chunk, bool] | None:
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
        return Leg(attempt, rest), first, not prefill
    return None


async def open_buffered(
    trace: Trace, request: ChatRequest, deadline: Deadline
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
        leg = Leg(attempt, rest)
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
