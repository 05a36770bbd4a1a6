"""One OpenAI-compatible `/chat/completions` URL behind one owned keep-alive connection pool.

The HTTP mechanics every connector that speaks the OpenAI wire shares: POST, status -> our error
tree (`connectors.http_status`), JSON and SSE parsing, malformed chunks, cut streams, streams
without a finish, the request deadline and the first-token timeout. Whatever text of the
upstream's goes into an error (an error body, a stream error event, a malformed reply, a
transport failure) is relayed through `connectors.http_status.relayable`, with the credentials
this client sent masked exactly. The transport is `connectors.openai_wire.http1` (why not httpx
or aiohttp: see there and bench/README.md).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Mapping
from typing import Any

import orjson

from connectors.http_status import credentials, error_for_status, relayable
from connectors.openai_wire.http1 import (
    Http1Pool,
    UpstreamError,
    UpstreamTimeout,
    sse_lines,
)
from connectors.openai_wire.parse import MalformedReply, parse_chunk, parse_completion
from gateway.core.config import Timeouts
from gateway.core.deadline import Deadline
from gateway.core.errors import ProviderError, ProviderTimeout, ProviderUnavailable
from gateway.core.types import Chunk, Completion


class OpenAIWire:
    """POSTs chat-completions bodies to `url` for the backend `backend` (named in errors).

    `headers` go on every request (e.g. a fixed Authorization); `complete` and `stream` take
    per-request ones too. Connections are opened on first use and closed by `aclose`.
    """

    def __init__(
        self,
        *,
        backend: str,
        url: str,
        timeouts: Timeouts,
        max_connections: int,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.backend = backend
        self.url = url
        self._timeouts = timeouts
        # What must never come back out of an upstream's words: the keys sent on every request.
        self._credentials = tuple(credentials(headers))
        self._pool = Http1Pool(
            url,
            max_connections=max_connections,
            connect_timeout_s=timeouts.connect_s,
            read_timeout_s=timeouts.request_s,
            headers={"content-type": "application/json", **(headers or {})},
        )

    async def aclose(self) -> None:
        await self._pool.aclose()

    async def complete(
        self,
        body: dict[str, Any],
        deadline: Deadline,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> Completion:
        data = orjson.dumps(body)
        name = self.backend
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
            return parse_completion(parsed)
        except MalformedReply as exc:
            raise self._unavailable(str(exc), headers) from exc

    async def stream(
        self,
        body: dict[str, Any],
        deadline: Deadline,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> AsyncGenerator[Chunk, None]:
        """Chunks until `[DONE]` (or the end of a stream that sent a finish_reason); a stream
        closed before any finish_reason is a `ProviderUnavailable`."""
        data = orjson.dumps(body)
        name = self.backend
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
                    finished = False
                    async for line in sse_lines(response):
                        if not line.startswith(b"data:"):
                            continue
                        payload = line[5:].strip()
                        if payload == b"[DONE]":
                            return
                        chunk = self._parse(payload, headers)
                        if first:
                            # From here each silence may last `stall_s`, the whole stream
                            # until the request deadline.
                            first = False
                            scope.reschedule(loop.time() + deadline.remaining())
                            response.gap_s = timeouts.stall
                        finished = finished or chunk.finish_reason is not None
                        yield chunk
                    if not finished:
                        raise ProviderUnavailable(
                            f"{name} closed the stream before it finished", backend=name
                        )
                finally:
                    response.close()
        except TimeoutError as exc:
            what = "sent no first chunk in time" if first else "stream reached the request deadline"
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

    def _parse(self, payload: bytes, sent: Mapping[str, str] | None) -> Chunk:
        try:
            data = orjson.loads(payload)
        except orjson.JSONDecodeError as exc:
            raise ProviderUnavailable(
                f"{self.backend} sent a malformed stream chunk", backend=self.backend
            ) from exc
        if isinstance(data, dict) and "error" in data:
            message, _ = _error_text(data)
            raise self._unavailable(f"reported a stream error: {message}", sent)
        try:
            return parse_chunk(data)
        except MalformedReply as exc:
            raise self._unavailable(str(exc), sent) from exc

    def _secrets(self, sent: Mapping[str, str] | None) -> tuple[str, ...]:
        """The credentials this client sent: on every request, and on this one (`sent`)."""
        return (*self._credentials, *credentials(sent))

    def _unavailable(self, upstream_text: str, sent: Mapping[str, str] | None) -> ProviderError:
        text = relayable(upstream_text, secrets=self._secrets(sent))
        return ProviderUnavailable(f"{self.backend} {text}", backend=self.backend)

    def _status_error(
        self,
        status: int,
        raw: bytes,
        response_headers: Mapping[str, str],
        sent: Mapping[str, str] | None,
    ) -> ProviderError:
        message, code = _error_message(raw)
        return error_for_status(
            status,
            message,
            backend=self.backend,
            retry_after=response_headers.get("retry-after"),
            code=code,
            secrets=self._secrets(sent),
        )

    def _transport_error(self, exc: UpstreamError, sent: Mapping[str, str] | None) -> ProviderError:
        # The transport's text can quote the upstream (e.g. its content-encoding header).
        text = relayable(str(exc), secrets=self._secrets(sent))
        if isinstance(exc, UpstreamTimeout):
            return ProviderTimeout(f"{self.backend} timed out: {text}", backend=self.backend)
        return ProviderUnavailable(f"{self.backend} unreachable: {text}", backend=self.backend)


def _error_message(raw: bytes) -> tuple[str, str | None]:
    """The message and code of an error body, whole: `relayable` cuts them, after masking (a
    cut made first could leave part of a key that neither its value nor its shape matches)."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw.decode("utf-8", "replace") or "(empty body)", None
    return _error_text(data)


def _error_text(data: Any) -> tuple[str, str | None]:
    err = data.get("error") if isinstance(data, dict) else None
    if isinstance(err, dict):
        code = err.get("code")
        return str(err.get("message") or err), str(code) if code else None
    if isinstance(err, str):
        return err, None
    return str(data), None
