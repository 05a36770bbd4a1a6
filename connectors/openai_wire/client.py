"""One OpenAI-compatible `/chat/completions` URL behind one owned aiohttp ClientSession.

The HTTP mechanics every connector that speaks the OpenAI wire shares: POST, status -> our error
tree (`connectors.http_status`), JSON and SSE parsing, malformed chunks, cut streams, streams
without a finish, the request deadline and the first-token timeout.

aiohttp rather than httpx: on this path the client is most of the gateway's own CPU per
request, and aiohttp's C parser costs about a fifth of httpx+httpcore+anyio (bench/README.md).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from typing import Any

import aiohttp
import orjson

from connectors.http_status import error_for_status
from connectors.openai_wire.parse import parse_chunk, parse_completion
from gateway.core.deadline import Deadline
from gateway.core.errors import ProviderError, ProviderTimeout, ProviderUnavailable
from gateway.core.types import Chunk, Completion
from gateway.policy.models import Timeouts


class OpenAIWire:
    """POSTs chat-completions bodies to `url` for the backend `backend` (named in errors).

    `headers` go on every request (e.g. a fixed Authorization); `complete` and `stream` take
    per-request ones too. The session is created on first use inside the running loop and
    closed by `aclose`.
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
        self._max_connections = max_connections
        self._headers = {"content-type": "application/json", **(headers or {})}
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            t = self._timeouts
            self._session = aiohttp.ClientSession(
                headers=self._headers,
                connector=aiohttp.TCPConnector(limit=self._max_connections, keepalive_timeout=30),
                timeout=aiohttp.ClientTimeout(
                    total=None, sock_connect=t.connect_s, sock_read=t.request_s
                ),
                skip_auto_headers=("User-Agent",),
                auto_decompress=True,
            )
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()

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
            async with (
                asyncio.timeout(deadline.remaining()),
                self._client().post(self.url, data=data, headers=headers) as response,
            ):
                raw = await response.read()
                status, response_headers = response.status, response.headers
        except TimeoutError as exc:
            raise ProviderTimeout(
                f"{name} did not answer before the request deadline", backend=name
            ) from exc
        except aiohttp.ClientError as exc:
            raise _transport_error(name, exc) from exc
        if status != 200:
            raise self._status_error(status, raw, response_headers)
        try:
            parsed = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise ProviderUnavailable(
                f"{name} returned a body that is not JSON", backend=name
            ) from exc
        return parse_completion(parsed, name)

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
        first_token_s = self._timeouts.first_token_s
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(deadline.remaining()) as scope:
                if first_token_s is not None:
                    scope.reschedule(loop.time() + deadline.cap(first_token_s))
                async with self._client().post(self.url, data=data, headers=headers) as response:
                    if response.status != 200:
                        raw = await response.read()
                        raise self._status_error(response.status, raw, response.headers)
                    finished = False
                    first = True
                    async for line in _lines(response.content):
                        if not line.startswith(b"data:"):
                            continue
                        payload = line[5:].strip()
                        if payload == b"[DONE]":
                            return
                        chunk = self._parse(payload)
                        if first:
                            first = False
                            scope.reschedule(loop.time() + deadline.remaining())
                        finished = finished or chunk.finish_reason is not None
                        yield chunk
                    if not finished:
                        raise ProviderUnavailable(
                            f"{name} closed the stream before it finished", backend=name
                        )
        except TimeoutError as exc:
            raise ProviderTimeout(
                f"{name} stream timed out (first token or request deadline)", backend=name
            ) from exc
        except aiohttp.ClientError as exc:
            raise _transport_error(name, exc) from exc

    def _parse(self, payload: bytes) -> Chunk:
        try:
            data = orjson.loads(payload)
        except orjson.JSONDecodeError as exc:
            raise ProviderUnavailable(
                f"{self.backend} sent a malformed stream chunk", backend=self.backend
            ) from exc
        if isinstance(data, dict) and "error" in data:
            raise ProviderUnavailable(
                f"{self.backend} reported a stream error: {data['error']}", backend=self.backend
            )
        return parse_chunk(data, self.backend)

    def _status_error(self, status: int, raw: bytes, headers: Mapping[str, str]) -> ProviderError:
        message, code = _error_message(raw)
        return error_for_status(
            status, message, backend=self.backend, retry_after=headers.get("retry-after"), code=code
        )


async def _lines(content: aiohttp.StreamReader) -> AsyncIterator[bytes]:
    """SSE lines of any length (aiohttp's own line iterator caps a line at 64 KiB)."""
    pending = b""
    async for data in content.iter_any():
        pending += data
        *lines, pending = pending.split(b"\n")
        for line in lines:
            yield line
    if pending:
        yield pending


def _error_message(raw: bytes) -> tuple[str, str | None]:
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw[:200].decode("utf-8", "replace") or "(empty body)", None
    err = data.get("error") if isinstance(data, dict) else None
    if isinstance(err, dict):
        code = err.get("code")
        return str(err.get("message") or err), str(code) if code else None
    if isinstance(err, str):
        return err, None
    return str(data)[:200], None


def _transport_error(name: str, exc: aiohttp.ClientError) -> ProviderError:
    if isinstance(exc, aiohttp.ServerTimeoutError):
        return ProviderTimeout(f"{name} timed out: {type(exc).__name__}", backend=name)
    return ProviderUnavailable(f"{name} unreachable: {type(exc).__name__}: {exc}", backend=name)
