"""uvicorn's httptools protocol, sending a response's head and its first body part in one write.

uvicorn writes the status line and headers as soon as the app sends `http.response.start`,
then the body as a second write: two sends, two TCP segments per answer. On loopback and in a
VM a send is among the most expensive things a request does (the profile in bench/profile puts
the two at ~8% of the gateway's CPU), so the head is held until the next write, which for a
JSON answer follows at once. It is also flushed on the next loop turn in any case (a stream's
first chunk may take a while; a HEAD or 304 has no body), and before the transport closes:
bytes are never reordered, lost or held for longer than one loop turn.

`GuardedHttpToolsProtocol` adds connection hygiene (gateway/connlimits.py): connections past
the process or per-client cap are dropped on arrival, and a request whose head or body does not
arrive in time is answered 408 and closed, all on uvicorn's one keep-alive timer slot.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from gateway.connlimits import ConnectionGuard, ConnectionLimits


class _CoalescingTransport:
    __slots__ = ("_head", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._head: bytes | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        head = self._head
        if head is not None:
            self._head = None
            self._transport.write(head + bytes(data))
        elif (
            isinstance(data, bytes) and data.startswith(b"HTTP/1.1 ") and data.endswith(b"\r\n\r\n")
        ):
            self._head = data
            self._loop.call_soon(self._flush)
        else:
            self._transport.write(data)

    def _flush(self) -> None:
        head = self._head
        if head is not None:
            self._head = None
            if not self._transport.is_closing():
                self._transport.write(head)

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class CoalescingHttpToolsProtocol(HttpToolsProtocol):
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        coalescing: Any = _CoalescingTransport(transport, self.loop)
        super().connection_made(coalescing)


_TIMEOUT_BODY = (
    b'{"error":{"message":"the request was not received in time",'
    b'"type":"invalid_request_error","code":"request_timeout"}}'
)
_RESPONSE_408 = b"".join(
    [
        b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n",
        b"content-length: %d\r\nconnection: close\r\n\r\n" % len(_TIMEOUT_BODY),
        _TIMEOUT_BODY,
    ]
)
# A deadline this close is treated as reached: timers fire up to a clock tick early.
_SLACK_S = 0.005


class GuardedHttpToolsProtocol(CoalescingHttpToolsProtocol):
    """One connection, admitted against the caps and held to the read deadlines.

    A request's head must arrive within `header_timeout_s` of its first byte, and all of it,
    body included, within `body_timeout_s`; a new connection must start a request within
    `header_timeout_s`, an idle keep-alive one within uvicorn's `timeout_keep_alive`. While
    the app works on a complete request nothing is timed here (a streamed answer may take
    minutes), and while the server itself has paused reading (pipelining, back-pressure) the
    client is not blamed for the wait.

    All of it runs on uvicorn's one keep-alive timer slot, so a request costs the same timer
    work as in uvicorn (one handle armed when a response completes, cancelled at the next):
    a uvloop timer handle costs ~1.6 us to arm and cancel, more than the rest of this class
    adds per request. uvicorn cancels the idle timer on any received byte; here it keeps
    running into the next request, whose read deadline is checked when it fires and re-armed
    only for a request still arriving then (a slow one).
    """

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
        *,
        guard: ConnectionGuard,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._guard = guard
        self._header_timeout = guard.limits.header_timeout_s
        self._body_timeout = guard.limits.body_timeout_s
        # An idle timer longer than the header timeout would check a request's head too late.
        self._idle_outlasts_head = self.timeout_keep_alive > self._header_timeout
        # The peer address this connection is counted under; None: not admitted.
        self._host: str | None = None
        # When the request being received began (loop time); None between requests.
        self._started: float | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        peer = transport.get_extra_info("peername")
        host = str(peer[0]) if isinstance(peer, tuple) and peer else ""
        guard = self._guard
        # Refused before uvicorn sets anything up: the fd goes back at once, and a flood of
        # connections costs a dict lookup each, not a parser and a log line.
        if len(self.connections) >= guard.limits.max_connections:
            guard.refused(host, "the process connection cap is reached")
            transport.abort()
            return
        if not guard.admit(host):
            guard.refused(host, "the per-client connection cap is reached")
            transport.abort()
            return
        self._host = host
        super().connection_made(transport)
        self.timeout_keep_alive_task = self.loop.call_later(
            self._header_timeout, self.timeout_keep_alive_handler
        )

    def connection_lost(self, exc: Exception | None) -> None:
        host = self._host
        if host is None:  # refused in connection_made: uvicorn never saw it
            return
        self._host = None
        self._guard.release(host)
        self._cancel_timer()
        super().connection_lost(exc)

    def _unset_keepalive_if_required(self) -> None:
        """uvicorn calls this on every data_received: a no-op here (see the class docstring).

        Cancelling the idle timer on any byte also let a client hold an idle connection forever
        by sending a blank line, which starts no request, every few seconds.
        """

    def _cancel_timer(self) -> None:
        timer = self.timeout_keep_alive_task
        if timer is not None:
            timer.cancel()
            self.timeout_keep_alive_task = None

    def on_message_begin(self) -> None:
        HttpToolsProtocol.on_message_begin(self)
        started = self._started = self.loop.time()
        timer = self.timeout_keep_alive_task
        if timer is None:  # it fired while the app worked on the previous request
            self.timeout_keep_alive_task = self.loop.call_at(
                started + self._header_timeout, self.timeout_keep_alive_handler
            )
        elif self._idle_outlasts_head and timer.when() > started + self._header_timeout:
            timer.cancel()
            self.timeout_keep_alive_task = self.loop.call_at(
                started + self._header_timeout, self.timeout_keep_alive_handler
            )

    def on_message_complete(self) -> None:
        self._started = None
        HttpToolsProtocol.on_message_complete(self)

    def on_response_complete(self) -> None:
        self._cancel_timer()
        HttpToolsProtocol.on_response_complete(self)  # arms the idle timer unless pipelining
        if self._started is not None and self.timeout_keep_alive_task is None:
            # The next, pipelined request is still arriving: keep it timed.
            self.timeout_keep_alive_task = self.loop.call_at(
                self._started + self._header_timeout, self.timeout_keep_alive_handler
            )

    def handle_websocket_upgrade(self) -> None:
        # The connection now belongs to the websocket protocol, whose close we never see.
        self._cancel_timer()
        self._started = None
        if self._host is not None:
            self._guard.release(self._host)
            self._host = None
        super().handle_websocket_upgrade()

    def timeout_keep_alive_handler(self) -> None:
        """The timer fired: close the connection, or re-arm it for a deadline still ahead."""
        self.timeout_keep_alive_task = None
        transport = self.transport
        if transport.is_closing():
            return
        started = self._started
        cycle: Any = self.cycle
        if started is None:
            if cycle is None or cycle.response_complete:  # idle since connect or last answer
                transport.close()
            return  # else the app is working on a complete request: not timed here
        now = self.loop.time()
        head_done = "method" in self.scope
        if head_done and self.flow.read_paused:  # we stopped reading, not the client
            started = self._started = now
        deadline = started + (self._body_timeout if head_done else self._header_timeout)
        if deadline - now > _SLACK_S:
            self.timeout_keep_alive_task = self.loop.call_at(
                deadline, self.timeout_keep_alive_handler
            )
            return
        if not head_done:
            # `cycle` is the previous request's: its answer may still be going out (pipelining).
            if cycle is None or cycle.response_complete:
                transport.write(_RESPONSE_408)
        else:
            if not cycle.response_started:
                transport.write(_RESPONSE_408)
            # The app waiting on the body sees a disconnect; anything it sends is dropped.
            cycle.disconnected = True
            cycle.keep_alive = False
            cycle.message_event.set()
        transport.close()


class GuardedProtocolFactory:
    """What `stepgate serve` passes to uvicorn as `http=`: builds one protocol per connection.

    It holds the process's `ConnectionGuard`; with several workers each process unpickles its
    own copy, so the caps apply per worker process.
    """

    __slots__ = ("_guard",)

    def __init__(self, limits: ConnectionLimits) -> None:
        self._guard = ConnectionGuard(limits)

    def __call__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> GuardedHttpToolsProtocol:
        return GuardedHttpToolsProtocol(config, server_state, app_state, _loop, guard=self._guard)
