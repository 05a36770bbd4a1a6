"""Graceful drain: the part of a shutdown that uvicorn leaves to the app, for chat requests.

On SIGTERM uvicorn closes its listener, lets running requests finish for its
`timeout_graceful_shutdown` (STEPGATE_DRAIN_S), then cancels whatever is still running and
starts the lifespan shutdown at once, without waiting for the cancelled tasks. `InFlight`
turns that cancellation into an answer (an in-band error event on a started stream, a 503
before the first byte) and lets the lifespan wait until the cut requests have settled (their
ledger rows queued) before the services close.
"""

from __future__ import annotations

import asyncio
import logging

from starlette.datastructures import Headers
from starlette.types import Message, Receive, Scope, Send

from gateway.core.errors import GatewayError
from gateway.ingress.edge import client_request_id
from gateway.ingress.handler import ChatHandler

log = logging.getLogger("stepgate.drain")

SHUTTING_DOWN = "gateway_shutting_down"


class _Response:
    """Passes the app's messages on, noting how far the response got."""

    __slots__ = ("_send", "complete", "head")

    def __init__(self, send: Send) -> None:
        self._send = send
        self.head: Message | None = None  # the `http.response.start` message, once sent
        self.complete = False

    async def send(self, message: Message) -> None:
        if self.head is None:
            self.head = message
        elif not message.get("more_body", False):
            self.complete = True
        await self._send(message)

    @property
    def stream(self) -> bool:
        return self.head is not None and any(
            name == b"content-type" and value.startswith(b"text/event-stream")
            for name, value in self.head.get("headers", ())
        )

    async def cut(self, scope: Scope, handler: ChatHandler, drain_s: int) -> None:
        """Answer a request stopped at the drain deadline, as far as its response allows."""
        if self.head is None:
            error = GatewayError(
                "the gateway shut down before the answer was ready (drain deadline "
                f"STEPGATE_DRAIN_S={drain_s} s); retry the request",
                code=SHUTTING_DOWN,
            )
            _, body, _ = handler.dialect.error(error)
            headers = [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
                (b"retry-after", b"1"),
            ]
            client_id = client_request_id(Headers(scope=scope))
            if client_id is not None:
                headers.append((b"x-client-request-id", client_id.encode("latin-1")))
            # 503 rather than the 500 of a GatewayError: nothing failed, this process is going
            # away, and clients and proxies retry a 503 elsewhere.
            await self.send({"type": "http.response.start", "status": 503, "headers": headers})
            await self.send({"type": "http.response.body", "body": body})
        elif self.stream and not self.complete:
            error = GatewayError(
                "the gateway shut down before the stream ended: it was cut at the drain "
                f"deadline (STEPGATE_DRAIN_S={drain_s} s); retry the request",
                code=SHUTTING_DOWN,
            )
            frame = handler.dialect.error_frame(error)
            await self.send({"type": "http.response.body", "body": frame, "more_body": True})
            await self.send({"type": "http.response.body", "body": b""})
        # A JSON answer cut halfway cannot be mended: uvicorn closes the connection.


class InFlight:
    """The chat requests running in this process, answered if the drain deadline cuts them."""

    def __init__(self, *, drain_s: int) -> None:
        self._drain_s = drain_s
        self._running = 0
        self._cut = 0
        self._idle: asyncio.Event | None = None

    async def __call__(self, app: ChatHandler, scope: Scope, receive: Receive, send: Send) -> None:
        response = _Response(send)
        self._running += 1
        try:
            await app(scope, receive, response.send)
        except asyncio.CancelledError:
            # uvicorn cancels a request task only at the drain deadline, and nothing awaits
            # the task afterwards: by now the pipeline has recorded it as cut (499); answer
            # the client and let the task end as finished rather than as a crash in the log.
            self._cut += 1
            await response.cut(scope, app, self._drain_s)
        finally:
            self._running -= 1
            if not self._running and self._idle is not None:
                self._idle.set()

    async def settled(self, timeout_s: float) -> None:
        """Return once no chat request runs, or after `timeout_s` (the lifespan's shutdown)."""
        if self._running:
            self._idle = asyncio.Event()
            try:
                await asyncio.wait_for(self._idle.wait(), timeout_s)
            except TimeoutError:
                log.warning(
                    "%d request(s) still running %.0f s after the drain deadline; closing anyway",
                    self._running,
                    timeout_s,
                )
        if self._cut:
            log.warning(
                "%d request(s) outlived the drain deadline (STEPGATE_DRAIN_S=%d s) and were cut",
                self._cut,
                self._drain_s,
            )
