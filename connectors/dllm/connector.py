"""The dLLM connector: one owned aiohttp ClientSession per backend, OpenAI-compatible wire.

aiohttp rather than httpx: on this path the client is most of the gateway's own CPU per
request, and aiohttp's C parser costs about a fifth of httpx+httpcore+anyio (bench/README.md).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Mapping

import aiohttp
import orjson

from connectors.base import Capabilities
from connectors.dllm import translate
from connectors.http_status import error_for_status
from gateway.core.deadline import Deadline
from gateway.core.errors import ProviderError, ProviderTimeout, ProviderUnavailable
from gateway.core.types import ChatRequest, Chunk, Completion
from gateway.ledger.pricing import Price
from gateway.policy.models import DllmBackend


class DllmConnector:
    backend_type = "dllm"

    def __init__(self, name: str, config: DllmBackend) -> None:
        self.name = name
        self.config = config
        self.model = config.model
        self.capabilities = Capabilities(logprobs=translate.returns_logprobs(config))
        self._url = config.base_url.rstrip("/") + "/chat/completions"
        headers = {"content-type": "application/json"}
        if config.api_key_env and os.environ.get(config.api_key_env):
            headers["authorization"] = f"Bearer {os.environ[config.api_key_env]}"
        self._headers = headers
        self._session: aiohttp.ClientSession | None = None

    @property
    def ready(self) -> bool:
        return True

    def price(self) -> Price | None:
        return None  # local engines have no list price: the policy's `pricing` is the only one

    def _client(self) -> aiohttp.ClientSession:
        # Created on first use, inside the running loop that will own it.
        if self._session is None or self._session.closed:
            t = self.config.timeouts
            self._session = aiohttp.ClientSession(
                headers=self._headers,
                connector=aiohttp.TCPConnector(
                    limit=self.config.max_connections, keepalive_timeout=30
                ),
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

    async def complete(self, request: ChatRequest, deadline: Deadline) -> Completion:
        body = orjson.dumps(translate.request_body(self.config, request, stream=False))
        try:
            async with (
                asyncio.timeout(deadline.remaining()),
                self._client().post(self._url, data=body) as response,
            ):
                raw = await response.read()
                status, headers = response.status, response.headers
        except TimeoutError as exc:
            raise ProviderTimeout(
                f"{self.name} did not answer before the request deadline", backend=self.name
            ) from exc
        except aiohttp.ClientError as exc:
            raise _transport_error(self.name, exc) from exc
        if status != 200:
            raise self._status_error(status, raw, headers)
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise ProviderUnavailable(
                f"{self.name} returned a body that is not JSON", backend=self.name
            ) from exc
        return translate.parse_completion(data, self.name)

    async def stream(self, request: ChatRequest, deadline: Deadline) -> AsyncIterator[Chunk]:
        body = orjson.dumps(translate.request_body(self.config, request, stream=True))
        first_token_s = self.config.timeouts.first_token_s
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(deadline.remaining()) as scope:
                if first_token_s is not None:
                    scope.reschedule(loop.time() + deadline.cap(first_token_s))
                async with self._client().post(self._url, data=body) as response:
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
                            f"{self.name} closed the stream before it finished", backend=self.name
                        )
        except TimeoutError as exc:
            raise ProviderTimeout(
                f"{self.name} stream timed out (first token or request deadline)",
                backend=self.name,
            ) from exc
        except aiohttp.ClientError as exc:
            raise _transport_error(self.name, exc) from exc

    def _parse(self, payload: bytes) -> Chunk:
        try:
            data = orjson.loads(payload)
        except orjson.JSONDecodeError as exc:
            raise ProviderUnavailable(
                f"{self.name} sent a malformed stream chunk", backend=self.name
            ) from exc
        if isinstance(data, dict) and "error" in data:
            raise ProviderUnavailable(
                f"{self.name} reported a stream error: {data['error']}", backend=self.name
            )
        return translate.parse_chunk(data, self.name)

    def _status_error(self, status: int, raw: bytes, headers: Mapping[str, str]) -> ProviderError:
        message, code = _error_message(raw)
        return error_for_status(
            status, message, backend=self.name, retry_after=headers.get("retry-after"), code=code
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
