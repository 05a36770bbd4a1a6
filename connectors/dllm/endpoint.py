"""One non-OpenAI JSON endpoint of a dLLM server (SGLang's `/generate`, Inception's `/decisions`)
behind one owned keep-alive connection pool.

The same mechanics as `connectors.openai_wire.client` (status -> our error tree, deadlines, the
first-token and stall timeouts, SSE), but the bodies are handed back as parsed JSON for the
engine's own pure module to read. Error bodies are read in every shape these servers send:
`{"error": {"message"}}`, `{"error": "..."}`, FastAPI's `{"detail": ...}` and SGLang's
`{"object": "error", "message"}`. Upstream text reaches an error only through `relayable`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Mapping
from typing import Any

import orjson

from connectors.http_status import credentials, error_for_status, relayable
from connectors.openai_wire.http1 import Http1Pool, UpstreamError, UpstreamTimeout, sse_lines
from gateway.core.config import Timeouts
from gateway.core.deadline import Deadline
from gateway.core.errors import ProviderError, ProviderTimeout, ProviderUnavailable


class JsonEndpoint:
    """POSTs JSON bodies to `url` for the backend `backend` (named in errors)."""

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
        self._secrets = tuple(credentials(headers))
        self._pool = Http1Pool(
            url,
            max_connections=max_connections,
            connect_timeout_s=timeouts.connect_s,
            read_timeout_s=timeouts.request_s,
            headers={"content-type": "application/json", **(headers or {})},
        )

    async def aclose(self) -> None:
        await self._pool.aclose()

    async def post(self, body: dict[str, Any], deadline: Deadline) -> Any:
        """The answer's parsed JSON; any status but 200 is raised as our error."""
        name = self.backend
        try:
            async with asyncio.timeout(deadline.remaining()):
                response = await self._pool.post(orjson.dumps(body))
                try:
                    raw = await response.read()
                finally:
                    response.close()
        except TimeoutError as exc:
            raise ProviderTimeout(
                f"{name} did not answer before the request deadline", backend=name
            ) from exc
        except UpstreamError as exc:
            raise self._transport_error(exc) from exc
        if response.status != 200:
            raise self._status_error(response.status, raw, response.headers)
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise ProviderUnavailable(
                f"{name} returned a body that is not JSON", backend=name
            ) from exc

    async def events(self, body: dict[str, Any], deadline: Deadline) -> AsyncGenerator[Any, None]:
        """The parsed JSON of each SSE `data:` event until `[DONE]` or the end of the stream
        (whether the stream finished is the caller's to judge); an error event is raised."""
        name = self.backend
        timeouts = self._timeouts
        loop = asyncio.get_running_loop()
        first = True
        try:
            async with asyncio.timeout(deadline.remaining()) as scope:
                scope.reschedule(loop.time() + deadline.cap(timeouts.first_token))
                response = await self._pool.post(orjson.dumps(body))
                try:
                    if response.status != 200:
                        raw = await response.read()
                        raise self._status_error(response.status, raw, response.headers)
                    response.gap_s = timeouts.first_token
                    async for line in sse_lines(response):
                        if not line.startswith(b"data:"):
                            continue
                        payload = line[5:].strip()
                        if payload == b"[DONE]":
                            return
                        try:
                            data = orjson.loads(payload)
                        except orjson.JSONDecodeError as exc:
                            raise ProviderUnavailable(
                                f"{name} sent a malformed stream event", backend=name
                            ) from exc
                        if isinstance(data, dict) and "error" in data:
                            message, _ = error_text(data)
                            raise self.unavailable(f"reported a stream error: {message}")
                        if first:
                            first = False
                            scope.reschedule(loop.time() + deadline.remaining())
                            response.gap_s = timeouts.stall
                        yield data
                finally:
                    response.close()
        except TimeoutError as exc:
            what = "sent no first event in time" if first else "stream reached the request deadline"
            raise ProviderTimeout(f"{name} {what}", backend=name) from exc
        except UpstreamTimeout as exc:
            if first:
                raise self._transport_error(exc) from exc
            raise ProviderTimeout(
                f"{name} stream stalled: no data for {timeouts.stall:g} s (timeouts.stall_s)",
                backend=name,
            ) from exc
        except UpstreamError as exc:
            raise self._transport_error(exc) from exc

    def unavailable(self, upstream_text: str) -> ProviderError:
        """A malformed or failed answer, its upstream text made relayable."""
        text = relayable(upstream_text, secrets=self._secrets)
        return ProviderUnavailable(f"{self.backend} {text}", backend=self.backend)

    def status_error(self, status: int, message: str) -> ProviderError:
        """Our error for a failure the upstream reported inside a 200 (e.g. an aborted run)."""
        return error_for_status(status, message, backend=self.backend, secrets=self._secrets)

    def _status_error(
        self, status: int, raw: bytes, response_headers: Mapping[str, str]
    ) -> ProviderError:
        try:
            message, code = error_text(orjson.loads(raw))
        except orjson.JSONDecodeError:
            message, code = raw.decode("utf-8", "replace") or "(empty body)", None
        return error_for_status(
            status,
            message,
            backend=self.backend,
            retry_after=response_headers.get("retry-after"),
            code=code,
            secrets=self._secrets,
        )

    def _transport_error(self, exc: UpstreamError) -> ProviderError:
        text = relayable(str(exc), secrets=self._secrets)
        if isinstance(exc, UpstreamTimeout):
            return ProviderTimeout(f"{self.backend} timed out: {text}", backend=self.backend)
        return ProviderUnavailable(f"{self.backend} unreachable: {text}", backend=self.backend)


def error_text(data: Any) -> tuple[str, str | None]:
    """(message, code) of an error body in any of the shapes in the module docstring."""
    if not isinstance(data, dict):
        return str(data), None
    err = data.get("error")
    if isinstance(err, dict):
        code = err.get("code")
        return str(err.get("message") or err), str(code) if code else None
    if isinstance(err, str):
        return err, None
    detail = data.get("detail")
    if isinstance(detail, str):
        return detail, None
    if isinstance(detail, list):
        # FastAPI validation errors: [{"loc": [...], "msg": "...", "type": "..."}]
        parts = []
        for item in detail:
            if isinstance(item, dict):
                loc = ".".join(str(p) for p in item.get("loc") or ())
                parts.append(f"{loc}: {item.get('msg')}" if loc else str(item.get("msg")))
        return "; ".join(parts) or str(detail), None
    if isinstance(data.get("message"), str):
        return data["message"], None
    return str(data), None
