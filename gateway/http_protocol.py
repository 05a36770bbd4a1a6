"""uvicorn's httptools protocol, sending a response's head and its first body part in one write.

uvicorn writes the status line and headers as soon as the app sends `http.response.start`,
then the body as a second write: two sends, two TCP segments per answer. On loopback and in a
VM a send is among the most expensive things a request does (the profile in bench/profile puts
the two at ~8% of the gateway's CPU), so the head is held until the next write, which for a
JSON answer follows at once. It is also flushed on the next loop turn in any case (a stream's
first chunk may take a while; a HEAD or 304 has no body), and before the transport closes:
bytes are never reordered, lost or held for longer than one loop turn.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


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
