"""A small keep-alive HTTP/1.1 client for one upstream origin: POST a body, read the answer.

Why not aiohttp: on this path the upstream client is the largest share of the gateway's own
cost that is not the server. `bench/floor.py` runs a do-nothing proxy on the same server stack
with each client: aiohttp adds about 0.3 ms to every answer at concurrency 1 and costs twice the
CPU per request of a plain asyncio client. What a model upstream needs is small: POST with a
Content-Length body, read a Content-Length, chunked or close-delimited answer (SSE streams are
chunked), keep connections alive, bound them, time out, speak TLS. That is this module.

Parsing is httptools (llhttp, the parser uvicorn serves with). TLS is asyncio's, with the
default trust store and hostname checks (`SSL_CERT_FILE` / `SSL_CERT_DIR` are honoured).
gzip and deflate answers are decoded (we never ask for them). Connections idle for longer than
`idle_s` are closed instead of reused; a connection the server has closed is never reused.
Nothing is retried here: a request that fails is reported, and dispatch decides.
"""

from __future__ import annotations

import asyncio
import ssl
import zlib
from collections.abc import AsyncIterator, Mapping
from typing import cast
from urllib.parse import urlsplit

import httptools

_HIGH_WATER = 1 << 20  # pause reading when this much body waits for the consumer
_DEFAULT_PORTS = {"http": 80, "https": 443}


class UpstreamError(Exception):
    """The exchange failed at the transport or HTTP level (refused, reset, cut, malformed)."""


class UpstreamTimeout(UpstreamError):
    """Connecting, or waiting for the next bytes of the answer, took longer than allowed."""


class _Connection(asyncio.Protocol):
    """One TCP (or TLS) connection; one exchange at a time."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self._parser = httptools.HttpResponseParser(self)
        self._waiter: asyncio.Future[None] | None = None
        self._paused = False
        self.begin()

    def begin(self) -> None:
        self.status = 0
        self.headers: dict[str, str] = {}
        self.headers_done = False
        self.complete = False
        self.body: list[bytes] = []
        self.buffered = 0
        self.error: UpstreamError | None = None

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(UpstreamError(f"malformed HTTP response: {exc}"))
            self.close()

    def eof_received(self) -> bool:
        return False  # close the transport; connection_lost decides what the EOF meant

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.complete and self.error is None:
            if self.headers_done and self._close_delimited():
                self.complete = True  # the body ran until the server closed: that is its end
            else:
                reason = f": {exc}" if exc else ""
                where = "mid-answer" if self.headers_done else "before answering"
                self._fail(UpstreamError(f"connection closed {where}{reason}"))
        self._wake()

    # httptools callbacks

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        self.status = self._parser.get_status_code()
        self.headers_done = True
        if not self._parser.should_keep_alive():
            self.idle_since = -1.0  # marks "do not reuse"
        self._wake()

    def on_body(self, body: bytes) -> None:
        self.body.append(body)
        self.buffered += len(body)
        if self.buffered > _HIGH_WATER and not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        self.complete = True
        self._wake()

    # the exchange

    def _close_delimited(self) -> bool:
        return "content-length" not in self.headers and "chunked" not in self.headers.get(
            "transfer-encoding", ""
        )

    def _fail(self, error: UpstreamError) -> None:
        if self.error is None:
            self.error = error
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def wait(self, timeout_s: float) -> None:
        """Until the parser or the connection has news, at most `timeout_s`."""
        self._waiter = self.loop.create_future()
        try:
            async with asyncio.timeout(timeout_s):
                await self._waiter
        except TimeoutError:
            raise UpstreamTimeout(f"no data from the upstream for {timeout_s:g} s") from None
        finally:
            self._waiter = None

    def take_body(self) -> bytes:
        data = b"".join(self.body) if len(self.body) != 1 else self.body[0]
        self.body.clear()
        self.buffered = 0
        if self._paused and self.transport is not None:
            self._paused = False
            self.transport.resume_reading()
        return data

    def reusable(self) -> bool:
        return self.complete and not self.closed and self.error is None and self.idle_since >= 0

    def close(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.close()
        self.closed = True


class Response:
    """The status and headers of an answer; its body through `read` or `chunks`, once.

    The connection goes back to the pool when the body has been read to its end, and is closed
    when the response is closed before that (always `close` it, e.g. in a `finally`).
    """

    def __init__(self, pool: Http1Pool, conn: _Connection) -> None:
        self._pool = pool
        self._conn: _Connection | None = conn
        self.status = conn.status
        self.headers: Mapping[str, str] = conn.headers
        self.gap_s = pool.read_timeout_s
        encoding = conn.headers.get("content-encoding", "").strip().lower()
        self._decoder = (
            zlib.decompressobj(16 + zlib.MAX_WBITS if encoding in ("gzip", "x-gzip") else 0)
            if encoding in ("gzip", "x-gzip", "deflate")
            else None
        )

    async def read(self) -> bytes:
        parts = [part async for part in self.chunks()]
        return parts[0] if len(parts) == 1 else b"".join(parts)

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives (decoded), in pieces of any size. Each wait for more bytes is
        bounded by `gap_s` (the pool's read timeout unless set; a caller may change it between
        pieces, e.g. a stream's stall timeout once its first event has arrived)."""
        conn = self._conn
        if conn is None:
            raise UpstreamError("the response body was already consumed")
        while True:
            if conn.body:
                yield self._decode(conn.take_body())
                continue
            if conn.error is not None:
                raise conn.error
            if conn.complete:
                break
            await conn.wait(self.gap_s)
        if self._decoder is not None:
            tail = self._decoder.flush()
            if tail:
                yield tail
        self._finish(reuse=True)

    def _decode(self, data: bytes) -> bytes:
        if self._decoder is None:
            return data
        try:
            return self._decoder.decompress(data)
        except zlib.error as exc:
            raise UpstreamError(f"undecodable {self.headers.get('content-encoding')} body") from exc

    def close(self) -> None:
        """Done with this response. The connection is kept when the answer has fully arrived
        (e.g. a stream's terminating chunk came with its `[DONE]`) and nothing was left unread
        but that; otherwise it is closed."""
        conn = self._conn
        self._finish(reuse=conn is not None and conn.complete and not conn.body)

    def _finish(self, *, reuse: bool) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            self._pool.release(conn, reuse=reuse and conn.reusable())


class Http1Pool:
    """Keep-alive connections to the origin of `url`, at most `max_connections` in use."""

    def __init__(
        self,
        url: str,
        *,
        max_connections: int,
        connect_timeout_s: float,
        read_timeout_s: float,
        headers: Mapping[str, str] | None = None,
        idle_s: float = 30.0,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        self.host = parts.hostname
        self.port = parts.port or _DEFAULT_PORTS[parts.scheme]
        self.tls = parts.scheme == "https"
        self.path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self.read_timeout_s = read_timeout_s
        self._connect_timeout_s = connect_timeout_s
        self._idle_s = idle_s
        self._max = max_connections
        authority = self.host if parts.port is None else f"{self.host}:{parts.port}"
        if ":" in self.host:  # an IPv6 literal
            authority = f"[{self.host}]" + (f":{parts.port}" if parts.port else "")
        self._head = f"POST {self.path} HTTP/1.1\r\nhost: {authority}\r\n".encode(
            "latin-1"
        ) + _header_block(headers or {})
        self._idle: list[_Connection] = []
        self._slots: asyncio.Semaphore | None = None
        self._ssl: ssl.SSLContext | None = None
        self._open: set[_Connection] = set()

    async def post(self, body: bytes, headers: Mapping[str, str] | None = None) -> Response:
        """Send the request and wait for the answer's status and headers."""
        if self._slots is None:
            self._slots = asyncio.Semaphore(self._max)
        await self._slots.acquire()
        try:
            conn = self._take_idle() or await self._connect()
        except BaseException:
            self._slots.release()
            raise
        try:
            conn.begin()
            request = b"%scontent-length: %d\r\n%s\r\n%s" % (
                self._head,
                len(body),
                _header_block(headers) if headers else b"",
                body,
            )
            assert conn.transport is not None
            conn.transport.write(request)
            while not conn.headers_done:
                if conn.error is not None:
                    raise conn.error
                await conn.wait(self.read_timeout_s)
        except BaseException:
            self.release(conn, reuse=False)
            raise
        return Response(self, conn)

    def release(self, conn: _Connection, *, reuse: bool) -> None:
        if reuse and len(self._idle) < self._max:
            conn.idle_since = conn.loop.time()
            self._idle.append(conn)
        else:
            conn.close()
            self._open.discard(conn)
        if self._slots is not None:
            self._slots.release()

    def _take_idle(self) -> _Connection | None:
        idle = self._idle
        while idle:
            conn = idle.pop()  # the most recently used: the least likely to have timed out
            if not conn.closed and conn.loop.time() - conn.idle_since < self._idle_s:
                return conn
            conn.close()
            self._open.discard(conn)
        return None

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        if self.tls and self._ssl is None:
            self._ssl = ssl.create_default_context()
        try:
            async with asyncio.timeout(self._connect_timeout_s):
                _, conn = await loop.create_connection(
                    lambda: _Connection(loop),
                    self.host,
                    self.port,
                    ssl=self._ssl if self.tls else None,
                    server_hostname=self.host if self.tls else None,
                )
        except TimeoutError:
            raise UpstreamTimeout(
                f"connecting to {self.host}:{self.port} took over {self._connect_timeout_s:g} s"
            ) from None
        except (OSError, ssl.SSLError) as exc:
            raise UpstreamError(f"cannot connect to {self.host}:{self.port}: {exc}") from exc
        self._open.add(conn)
        return conn

    async def aclose(self) -> None:
        for conn in list(self._open):
            conn.close()
        self._open.clear()
        self._idle.clear()


def _header_block(headers: Mapping[str, str]) -> bytes:
    lines = []
    for name, value in headers.items():
        if any(c in name or c in value for c in "\r\n\0") or not name:
            raise ValueError(f"invalid HTTP header {name!r}")
        lines.append(f"{name}: {value}\r\n")
    return "".join(lines).encode("latin-1")


async def sse_lines(response: Response) -> AsyncIterator[bytes]:
    """SSE lines of any length."""
    pending = b""
    async for data in response.chunks():
        pending += data
        *lines, pending = pending.split(b"\n")
        for line in lines:
            yield line
    if pending:
        yield pending
