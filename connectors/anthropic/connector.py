"""The Anthropic connector: the Messages API over Stepgate's own HTTP/1.1 client.

What is Anthropic-specific on the wire (the request body, replies, stream events) lives in
`translate`; this module owns the connection pool, on the shared exchange
(`connectors.openai_wire.exchange`: statuses mapped through `connectors.http_status`, the
request deadline, `first_token_s` and `stall_s`, upstream text relayed only through
`relayable` with the key masked), and what is Anthropic's own in it: the key from the policy's
`api_key_env`, read per call; Anthropic's error bodies; a stream's events, which end at
`message_stop` (one that ends before a stop reason is a `ProviderUnavailable`).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncGenerator, Mapping
from typing import Any

from connectors.anthropic import translate
from connectors.anthropic.config import AnthropicBackend
from connectors.base import Capabilities
from connectors.openai_wire.exchange import Exchange, env_key
from gateway.core.deadline import Deadline
from gateway.core.pricing import Price
from gateway.core.types import ChatRequest, Chunk, Completion

DIALECT = "anthropic"


class AnthropicConnector:
    backend_type = "anthropic"

    def __init__(self, name: str, config: AnthropicBackend, *, price: Price | None) -> None:
        self.name = name
        self.config = config
        self.model = config.model
        self.capabilities = Capabilities(
            streaming=True,
            tools=True,
            # The Messages API has no `response_format`: JSON is asked for in words by the
            # caller and checked by the gateway's validators, never enforced by the provider.
            json_schema=False,
            logprobs=False,
            prefill=True,  # Anthropic continues a final assistant turn
            dialects=frozenset({DIALECT}),
        )
        self._price = price  # litellm's offline cost map; the policy may override it
        self._exchange = MessagesExchange(
            backend=name,
            url=config.base_url.rstrip("/") + "/v1/messages",
            timeouts=config.timeouts,
            max_connections=config.max_connections,
            headers={"anthropic-version": config.anthropic_version},
        )
        self._auth: tuple[str, Mapping[str, str]] | None = None

    @property
    def ready(self) -> bool:
        return True

    async def warm(self) -> None:
        return None  # nothing to load

    def price(self) -> Price | None:
        return self._price

    async def aclose(self) -> None:
        await self._exchange.aclose()

    def _headers(self) -> Mapping[str, str]:
        """The key header, from `api_key_env` read per call (a rotated key is picked up)."""
        key = env_key(
            self.config.api_key_env,
            backend=self.name,
            purpose=f"to the Anthropic API key to call {self.model}",
        )
        auth = self._auth
        if auth is None or auth[0] != key:
            auth = self._auth = (key, {"x-api-key": key})
        return auth[1]

    async def complete(self, request: ChatRequest, deadline: Deadline) -> Completion:
        headers = self._headers()
        body = translate.request_body(self.config, request, stream=False)
        parsed = await self._exchange.post(body, deadline, sent=headers)
        try:
            return translate.completion_from(
                parsed,
                created=int(time.time()),
                trim_leading=translate.continues_after_whitespace(request),
            )
        except ValueError as exc:
            raise self._exchange.unavailable(f"sent a malformed reply: {exc}", headers) from exc

    async def stream(self, request: ChatRequest, deadline: Deadline) -> AsyncGenerator[Chunk, None]:
        """Chunks until message_stop (or the end of a stream that sent a stop reason); a stream
        closed before any stop reason is a `ProviderUnavailable`."""
        headers = self._headers()
        body = translate.request_body(self.config, request, stream=True)
        parser = translate.StreamParser(
            created=int(time.time()), trim_leading=translate.continues_after_whitespace(request)
        )
        events = _MessagesEvents(self._exchange, parser, headers)
        # `event:` names repeat each payload's `type`; Anthropic sends no `[DONE]`. aclosing:
        # a caller that stops reading closes the upstream response at once.
        sse = self._exchange.sse(body, deadline, events, sent=headers, done=None)
        async with contextlib.aclosing(sse) as chunks:
            async for chunk in chunks:
                yield chunk


class MessagesExchange(Exchange):
    """The exchange with Anthropic's error bodies."""

    def error_text(self, data: Any) -> tuple[str, str | None]:
        """The message of an Anthropic error body (`{"type": "error", "error": {"type",
        "message"}}`). Its error type is not relayed as our `code`: the status already says
        what it says, and our codes stay our own."""
        error = data.get("error") if isinstance(data, dict) else None
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"]), None
        return str(error or data), None


class _MessagesEvents:
    """A Messages stream's events through `translate.StreamParser`; an `error` event is raised
    with the status Anthropic answers its type with."""

    def __init__(
        self, exchange: Exchange, parser: translate.StreamParser, sent: Mapping[str, str]
    ) -> None:
        self._exchange = exchange
        self._parser = parser
        self._sent = sent

    @property
    def stopped(self) -> bool:
        return self._parser.stopped

    @property
    def finished(self) -> bool:
        return self._parser.finished

    def feed(self, payload: bytes) -> tuple[Chunk, ...]:
        exchange = self._exchange
        event = exchange.event(payload, unit="chunk")
        try:
            return self._parser.feed(event)
        except translate.StreamErrorEvent as exc:
            raise exchange.status_error(
                exc.status, f"stream error: {exc.message}", self._sent
            ) from exc
        except (KeyError, IndexError, TypeError, AttributeError, ValueError) as exc:
            raise exchange.unavailable(
                f"sent a malformed stream event: {exc!r}", self._sent
            ) from exc
