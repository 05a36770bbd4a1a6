"""The Anthropic connector: the Messages API over Stepgate's own HTTP/1.1 client.

What is Anthropic-specific on the wire (the request body, replies, stream events) lives in
`translate`; this module owns the connection pool and the exchange: the key from the policy's
`api_key_env`, read per call; statuses and Anthropic's error bodies mapped through
`connectors.http_status`; the request deadline, `first_token_s` and `stall_s` as in
`connectors.openai_wire.client`, whose conventions it follows (upstream text relayed only
through `relayable`, with the key masked; a stream that ends before a stop reason is a
`ProviderUnavailable`).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncGenerator, Mapping
from typing import Any

import orjson

from connectors.anthropic import translate
from connectors.anthropic.config import AnthropicBackend
from connectors.base import Capabilities
from connectors.http_status import credentials, error_for_status, relayable
from connectors.openai_wire.http1 import (
    Http1Pool,
    UpstreamError,
    UpstreamTimeout,
    sse_lines,
)
from gateway.core.deadline import Deadline
from gateway.core.errors import (
    ProviderAuthError,
    ProviderError,
    ProviderTimeout,
    ProviderUnavailable,
)
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
        self._timeouts = config.timeouts
        self._pool = Http1Pool(
            config.base_url.rstrip("/") + "/v1/messages",
            max_connections=config.max_connections,
            connect_timeout_s=config.timeouts.connect_s,
            read_timeout_s=config.timeouts.request_s,
            headers={
                "content-type": "application/json",
                "anthropic-version": config.anthropic_version,
            },
        )
        self._auth: tuple[str, Mapping[str, str]] | None = None

    @property
    def ready(self) -> bool:
        return True

    def price(self) -> Price | None:
        return self._price

    async def aclose(self) -> None:
        await self._pool.aclose()

    def _headers(self) -> Mapping[str, str]:
        """The key header, from `api_key_env` read per call (a rotated key is picked up)."""
        env = self.config.api_key_env
        key = os.environ.get(env)
        if not key:
            raise ProviderAuthError(
                f"{self.name}: environment variable {env} is not set on the gateway; set it to "
                f"the Anthropic API key to call {self.model}",
                backend=self.name,
            )
        auth = self._auth
        if auth is None or auth[0] != key:
            auth = self._auth = (key, {"x-api-key": key})
        return auth[1]

    async def complete(self, request: ChatRequest, deadline: Deadline) -> Completion:
        headers = self._headers()
        data = orjson.dumps(translate.request_body(self.config, request, stream=False))
        name = self.name
        try:
            async with asyncio.timeout(deadline.remaining()):
                response = await self._pool.post(data, headers)
                try:
                    raw = await response.read()
                finally:
                    response.close()
                status, response_headers = response.status, response.headers
        except TimeoutError as exc:
            raise ProviderTimeout(
                f"{name} did not answer before the request deadline", backend=name
            ) from exc
        except UpstreamError as exc:
            raise self._transport_error(exc, headers) from exc
        if status != 200:
            raise self._status_error(status, raw, response_headers, headers)
        try:
            parsed = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise ProviderUnavailable(
                f"{name} returned a body that is not JSON", backend=name
            ) from exc
        try:
            return translate.completion_from(
                parsed,
                created=int(time.time()),
                trim_leading=translate.continues_after_whitespace(request),
            )
        except ValueError as exc:
            raise self._unavailable(f"sent a malformed reply: {exc}", headers) from exc

    async def stream(self, request: ChatRequest, deadline: Deadline) -> AsyncGenerator[Chunk, None]:
        """Chunks until message_stop (or the end of a stream that sent a stop reason); a stream
        closed before any stop reason is a `ProviderUnavailable`."""
        headers = self._headers()
        data = orjson.dumps(translate.request_body(self.config, request, stream=True))
        parser = translate.StreamParser(
            created=int(time.time()), trim_leading=translate.continues_after_whitespace(request)
        )
        name = self.name
        timeouts = self._timeouts
        loop = asyncio.get_running_loop()
        first = True
        try:
            async with asyncio.timeout(deadline.remaining()) as scope:
                # Sending to the first event: `first_token_s` (headers included).
                scope.reschedule(loop.time() + deadline.cap(timeouts.first_token))
                response = await self._pool.post(data, headers)
                try:
                    if response.status != 200:
                        raw = await response.read()
                        raise self._status_error(response.status, raw, response.headers, headers)
                    response.gap_s = timeouts.first_token
                    async for line in sse_lines(response):
                        if not line.startswith(b"data:"):
                            continue  # `event:` names repeat the payload's `type`
                        chunks = self._parse(parser, line[5:], headers)
                        if first:
                            # From here each silence may last `stall_s`, the whole stream
                            # until the request deadline.
                            first = False
                            scope.reschedule(loop.time() + deadline.remaining())
                            response.gap_s = timeouts.stall
                        for chunk in chunks:
                            yield chunk
                        if parser.stopped:
                            return
                    if not parser.finished:
                        raise ProviderUnavailable(
                            f"{name} closed the stream before it finished", backend=name
                        )
                finally:
                    response.close()
        except TimeoutError as exc:
            what = "sent no first event in time" if first else "stream reached the request deadline"
            raise ProviderTimeout(f"{name} {what}", backend=name) from exc
        except UpstreamTimeout as exc:
            if first:
                raise self._transport_error(exc, headers) from exc
            raise ProviderTimeout(
                f"{name} stream stalled: no data for {timeouts.stall:g} s (timeouts.stall_s)",
                backend=name,
            ) from exc
        except UpstreamError as exc:
            raise self._transport_error(exc, headers) from exc

    def _parse(
        self, parser: translate.StreamParser, payload: bytes, sent: Mapping[str, str]
    ) -> tuple[Chunk, ...]:
        try:
            event = orjson.loads(payload)
        except orjson.JSONDecodeError as exc:
            raise ProviderUnavailable(
                f"{self.name} sent a malformed stream chunk", backend=self.name
            ) from exc
        try:
            return parser.feed(event)
        except translate.StreamErrorEvent as exc:
            raise error_for_status(
                exc.status,
                f"stream error: {exc.message}",
                backend=self.name,
                secrets=self._secrets(sent),
            ) from exc
        except (KeyError, IndexError, TypeError, AttributeError, ValueError) as exc:
            raise self._unavailable(f"sent a malformed stream event: {exc!r}", sent) from exc

    def _secrets(self, sent: Mapping[str, str]) -> tuple[str, ...]:
        """What must never come back out of an upstream's words: the key this call sent."""
        return tuple(credentials(sent))

    def _unavailable(self, upstream_text: str, sent: Mapping[str, str]) -> ProviderError:
        text = relayable(upstream_text, secrets=self._secrets(sent))
        return ProviderUnavailable(f"{self.name} {text}", backend=self.name)

    def _status_error(
        self,
        status: int,
        raw: bytes,
        response_headers: Mapping[str, str],
        sent: Mapping[str, str],
    ) -> ProviderError:
        return error_for_status(
            status,
            _error_message(raw),
            backend=self.name,
            retry_after=response_headers.get("retry-after"),
            secrets=self._secrets(sent),
        )

    def _transport_error(self, exc: UpstreamError, sent: Mapping[str, str]) -> ProviderError:
        # The transport's text can quote the upstream (e.g. its content-encoding header).
        text = relayable(str(exc), secrets=self._secrets(sent))
        if isinstance(exc, UpstreamTimeout):
            return ProviderTimeout(f"{self.name} timed out: {text}", backend=self.name)
        return ProviderUnavailable(f"{self.name} unreachable: {text}", backend=self.name)


def _error_message(raw: bytes) -> str:
    """The message of an Anthropic error body (`{"type": "error", "error": {"type",
    "message"}}`), whole: `relayable` cuts it after masking. Its error type is not relayed as
    our `code`: the status already says what it says, and our codes stay our own."""
    try:
        data: Any = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw.decode("utf-8", "replace") or "(empty body)"
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict) and error.get("message"):
        return str(error["message"])
    return str(error or data)
