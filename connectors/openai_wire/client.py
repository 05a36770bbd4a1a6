"""One OpenAI-compatible `/chat/completions` URL behind one owned keep-alive connection pool.

What is the OpenAI wire's own, on the shared exchange (`connectors.openai_wire.exchange`: POST,
status -> our error tree, OpenAI's error bodies, deadlines, the first-token and stall timeouts,
SSE): its completions and chunks (`connectors.openai_wire.parse`), malformed chunks, stream
error events, and the end of a stream (`[DONE]`; a stream closed before any finish_reason is an
error). Whatever text of the upstream's goes into an error is relayed through
`connectors.http_status.relayable`, with the credentials this client sent masked exactly. The
transport is `connectors.openai_wire.http1` (why not httpx or aiohttp: see there and
bench/README.md).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping
from typing import Any

from connectors.openai_wire.exchange import Exchange
from connectors.openai_wire.parse import MalformedReply, parse_chunk, parse_completion
from gateway.core.deadline import Deadline
from gateway.core.types import Chunk, Completion


class OpenAIWire(Exchange):
    """POSTs chat-completions bodies to `url` for the backend `backend` (named in errors).

    `headers` go on every request (e.g. a fixed Authorization); `complete` and `stream` take
    per-request ones too. Connections are opened on first use and closed by `aclose`.
    """

    async def complete(
        self,
        body: dict[str, Any],
        deadline: Deadline,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> Completion:
        parsed = await self.post(body, deadline, sent=headers)
        try:
            return parse_completion(parsed)
        except MalformedReply as exc:
            raise self.unavailable(str(exc), headers) from exc

    def stream(
        self,
        body: dict[str, Any],
        deadline: Deadline,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> AsyncGenerator[Chunk, None]:
        """Chunks until `[DONE]` (or the end of a stream that sent a finish_reason); a stream
        closed before any finish_reason is a `ProviderUnavailable`. The exchange's own
        generator: closing it closes the upstream response."""
        return self.sse(body, deadline, _ChatEvents(self, headers), sent=headers, unit="chunk")


class _ChatEvents:
    """Chat-completion chunks, one an event; finished once one carries a finish_reason."""

    stopped = False

    def __init__(self, wire: OpenAIWire, sent: Mapping[str, str] | None) -> None:
        self._wire = wire
        self._sent = sent
        self.finished = False

    def feed(self, payload: bytes) -> tuple[Chunk]:
        wire = self._wire
        data = wire.event(payload, unit="chunk")
        wire.raise_reported(data, self._sent)
        try:
            chunk = parse_chunk(data)
        except MalformedReply as exc:
            raise wire.unavailable(str(exc), self._sent) from exc
        self.finished = self.finished or chunk.finish_reason is not None
        return (chunk,)
