"""One backend's HTTP exchange over one owned keep-alive pool: what every native connector shares.

POST a JSON body under the request deadline; a timeout, a transport failure or a status but 200
becomes our error tree (`connectors.http_status`), the upstream's words relayed only through
`relayable` with the credentials sent masked; a stream's SSE `data:` events read under
`first_token_s`, then `stall_s` and the request deadline. What stays each connector's own: how
its error bodies read (`Exchange.error_text`, OpenAI's shapes unless overridden), and what
one stream event means and what ends a stream (`EventReader`).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncGenerator, Iterable, Mapping
from typing import Any, Protocol, TypeVar

import orjson

from connectors.http_status import credentials, error_for_status, relayable
from connectors.openai_wire.http1 import Http1Pool, UpstreamError, UpstreamTimeout, sse_lines
from gateway.core.config import Timeouts
from gateway.core.deadline import Deadline
from gateway.core.errors import (
    ProviderAuthError,
    ProviderError,
    ProviderTimeout,
    ProviderUnavailable,
)

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)


class EventReader(Protocol[T_co]):
    """What one stream's `data:` events mean, as one connector reads them."""

    def feed(self, payload: bytes) -> Iterable[T_co]:
        """The items one event yields (`payload`: its bytes after `data:`, stripped)."""
        ...

    @property
    def stopped(self) -> bool:
        """After an event's items: the stream is over, read no further."""
        ...

    @property
    def finished(self) -> bool:
        """When the body ends: whether the stream got as far as its finish (False: an error)."""
        ...


def env_key(env: str, *, backend: str, purpose: str) -> str:
    """The key in environment variable `env`, read per call (a rotated key is picked up); unset
    is a `ProviderAuthError` that says to set it `purpose` (e.g. "to call gpt-4o")."""
    key = os.environ.get(env)
    if not key:
        raise ProviderAuthError(
            f"{backend}: environment variable {env} is not set on the gateway; set it {purpose}",
            backend=backend,
        )
    return key


class Exchange:
    """POSTs JSON bodies to `url` for the backend `backend` (named in errors).

    `headers` go on every request; each call may send its own too (`sent`): the credentials
    among both are masked in any upstream text. Connections are opened on first use and
    closed by `aclose`. An upstream whose error bodies are not OpenAI's overrides `error_text`.
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

    async def post(
        self, body: dict[str, Any], deadline: Deadline, *, sent: Mapping[str, str] | None = None
    ) -> Any:
        """The answer's parsed JSON; any status but 200 is raised as our error."""
        data = orjson.dumps(body)
        name = self.backend
        try:
            async with asyncio.timeout(deadline.remaining()):
                response = await self._pool.post(data, sent)
                try:
                    raw = await response.read()
                finally:
                    response.close()
        except TimeoutError as exc:
            raise ProviderTimeout(
                f"{name} did not answer before the request deadline", backend=name
            ) from exc
        except UpstreamError as exc:
            raise self._transport_error(exc, sent) from exc
        if response.status != 200:
            raise self._http_error(response.status, raw, response.headers, sent)
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise ProviderUnavailable(
                f"{name} returned a body that is not JSON", backend=name
            ) from exc

    async def sse(
        self,
        body: dict[str, Any],
        deadline: Deadline,
        reader: EventReader[T],
        *,
        sent: Mapping[str, str] | None = None,
        done: bytes | None = b"[DONE]",
        unit: str = "event",
    ) -> AsyncGenerator[T, None]:
        """The items `reader` makes of each SSE `data:` event, until the event `done` (None:
        none ends the stream), `reader.stopped`, or the end of the body; a body that ends
        before `reader.finished` is a `ProviderUnavailable`. `unit` names an event in the
        first-token timeout's message ("sent no first event in time")."""
        data = orjson.dumps(body)
        name = self.backend
        timeouts = self._timeouts
        loop = asyncio.get_running_loop()
        first = True
        try:
            async with asyncio.timeout(deadline.remaining()) as scope:
                # Sending to the first event: `first_token_s` (headers included).
                scope.reschedule(loop.time() + deadline.cap(timeouts.first_token))
                response = await self._pool.post(data, sent)
                try:
                    if response.status != 200:
                        raw = await response.read()
                        raise self._http_error(response.status, raw, response.headers, sent)
                    response.gap_s = timeouts.first_token
                    async for line in sse_lines(response):
                        if not line.startswith(b"data:"):
                            continue  # `event:` names, comments, keep-alives
                        payload = line[5:].strip()
                        if payload == done:
                            return
                        items = reader.feed(payload)
                        if first:
                            # From here each silence may last `stall_s`, the whole stream
                            # until the request deadline.
                            first = False
                            scope.reschedule(loop.time() + deadline.remaining())
                            response.gap_s = timeouts.stall
                        for item in items:
                            yield item
                        if reader.stopped:
                            return
                    if not reader.finished:
                        raise ProviderUnavailable(
                            f"{name} closed the stream before it finished", backend=name
                        )
                finally:
                    response.close()
        except TimeoutError as exc:
            what = (
                f"sent no first {unit} in time" if first else "stream reached the request deadline"
            )
            raise ProviderTimeout(f"{name} {what}", backend=name) from exc
        except UpstreamTimeout as exc:
            if first:
                raise self._transport_error(exc, sent) from exc
            raise ProviderTimeout(
                f"{name} stream stalled: no data for {timeouts.stall:g} s (timeouts.stall_s)",
                backend=name,
            ) from exc
        except UpstreamError as exc:
            raise self._transport_error(exc, sent) from exc

    def event(self, payload: bytes, *, unit: str) -> Any:
        """One stream event's parsed JSON; anything else is "sent a malformed stream <unit>"."""
        try:
            return orjson.loads(payload)
        except orjson.JSONDecodeError as exc:
            raise ProviderUnavailable(
                f"{self.backend} sent a malformed stream {unit}", backend=self.backend
            ) from exc

    def raise_reported(self, data: Any, sent: Mapping[str, str] | None = None) -> None:
        """Raise the error an OpenAI-style stream event (`{"error": ...}`) reports, if any."""
        if isinstance(data, dict) and "error" in data:
            message, _ = self.error_text(data)
            raise self.unavailable(f"reported a stream error: {message}", sent)

    def error_text(self, data: Any) -> tuple[str, str | None]:
        """(message, code) of a parsed error body, whole (`relayable` cuts them after masking:
        a cut made first could leave part of a key that neither its value nor its shape
        matches). OpenAI's shapes: `{"error": {"message", "code"}}`, `{"error": "..."}`;
        anything else whole."""
        err = data.get("error") if isinstance(data, dict) else None
        if isinstance(err, dict):
            code = err.get("code")
            return str(err.get("message") or err), str(code) if code else None
        if isinstance(err, str):
            return err, None
        return str(data), None

    def secrets(self, sent: Mapping[str, str] | None = None) -> tuple[str, ...]:
        """The credentials sent: on every request, and on this one (`sent`)."""
        return (*self._credentials, *credentials(sent))

    def unavailable(
        self, upstream_text: str, sent: Mapping[str, str] | None = None
    ) -> ProviderError:
        """A malformed or failed answer, its upstream text made relayable."""
        text = relayable(upstream_text, secrets=self.secrets(sent))
        return ProviderUnavailable(f"{self.backend} {text}", backend=self.backend)

    def status_error(
        self, status: int, message: str, sent: Mapping[str, str] | None = None
    ) -> ProviderError:
        """Our error for a failure the upstream reported with a status inside a 200 (an
        aborted run, a stream's error event)."""
        return error_for_status(status, message, backend=self.backend, secrets=self.secrets(sent))

    def _http_error(
        self,
        status: int,
        raw: bytes,
        response_headers: Mapping[str, str],
        sent: Mapping[str, str] | None,
    ) -> ProviderError:
        try:
            message, code = self.error_text(orjson.loads(raw))
        except orjson.JSONDecodeError:
            message, code = raw.decode("utf-8", "replace") or "(empty body)", None
        return error_for_status(
            status,
            message,
            backend=self.backend,
            retry_after=response_headers.get("retry-after"),
            code=code,
            secrets=self.secrets(sent),
        )

    def _transport_error(self, exc: UpstreamError, sent: Mapping[str, str] | None) -> ProviderError:
        # The transport's text can quote the upstream (e.g. its content-encoding header).
        text = relayable(str(exc), secrets=self.secrets(sent))
        if isinstance(exc, UpstreamTimeout):
            return ProviderTimeout(f"{self.backend} timed out: {text}", backend=self.backend)
        return ProviderUnavailable(f"{self.backend} unreachable: {text}", backend=self.backend)
