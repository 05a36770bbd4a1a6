"""connectors/openai_wire/http1.py against real sockets: a byte-exact HTTP server per test.

The gateway-level behaviour (retries, fallbacks, cut streams, malformed chunks on both routes)
is in test_gateway_resilience.py; this file covers the transport itself: keep-alive, bodies by
length, chunks and close, gzip, bounds, timeouts, TLS, abandoned streams.
"""

from __future__ import annotations

import asyncio
import gzip
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import trustme

from connectors.openai_wire.http1 import Http1Pool, UpstreamError, UpstreamTimeout

Handler = Callable[[bytes, asyncio.StreamWriter, "Server"], Awaitable[bool]]


class Server:
    """Reads each request (head + Content-Length body) and lets `handler` write the answer;
    the handler returns False to close the connection. Counts connections and concurrency."""

    def __init__(self, handler: Handler, ssl_context: ssl.SSLContext | None = None) -> None:
        self.handler = handler
        self.ssl_context = ssl_context
        self.connections = 0
        self.open = 0
        self.peak_open = 0
        self.requests: list[bytes] = []

    async def __aenter__(self) -> Server:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.ssl_context)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()

    def url(self, scheme: str = "http", host: str = "127.0.0.1") -> str:
        return f"{scheme}://{host}:{self.port}/v1/chat/completions"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.open += 1
        self.peak_open = max(self.peak_open, self.open)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                body = await reader.readexactly(length)
                self.requests.append(head + body)
                if not await self.handler(body, writer, self):
                    return
        finally:
            self.open -= 1
            writer.close()


def answer(body: bytes, *, extra: bytes = b"") -> bytes:
    return (
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n%s\r\n%s"
        % (len(body), extra, body)
    )


async def echo(body: bytes, writer: asyncio.StreamWriter, _: Server) -> bool:
    writer.write(answer(b'{"echo":' + body + b"}"))
    await writer.drain()
    return True


def pool(url: str, **kw: Any) -> Http1Pool:
    opts: dict[str, Any] = {"max_connections": 8, "connect_timeout_s": 2, "read_timeout_s": 2}
    return Http1Pool(url, **{**opts, **kw})


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(scenario(), 20))


def test_keep_alive_reuses_one_connection_and_sends_the_headers() -> None:
    async def scenario() -> None:
        async with Server(echo) as srv:
            p = pool(srv.url(), headers={"authorization": "Bearer k"})
            for i in range(3):
                r = await p.post(b"%d" % i, {"x-trace": "t"})
                assert (r.status, await r.read()) == (200, b'{"echo":%d}' % i)
            assert srv.connections == 1
            head = srv.requests[0].split(b"\r\n\r\n")[0].lower()
            assert head.startswith(b"post /v1/chat/completions http/1.1\r\n")
            for line in (b"authorization: bearer k", b"x-trace: t", b"content-length: 1"):
                assert line in head.split(b"\r\n")
            await p.aclose()

    run(scenario)


def test_chunked_bodies_arrive_as_they_are_sent() -> None:
    release = asyncio.Event()

    async def chunked(body: bytes, writer: asyncio.StreamWriter, _: Server) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n6\r\ndata: \r\n")
        await writer.drain()
        await release.wait()
        writer.write(b"2\r\nok\r\n0\r\n\r\n")
        await writer.drain()
        return True

    async def scenario() -> None:
        async with Server(chunked) as srv:
            p = pool(srv.url())
            r = await p.post(b"{}")
            parts = r.chunks()
            assert await anext(parts) == b"data: "  # before the rest was even written
            release.set()
            assert [part async for part in parts] == [b"ok"]
            r2 = await p.post(b"{}")
            assert await r2.read() == b"data: ok"
            assert srv.connections == 1  # reused after a chunked body

    run(scenario)


def test_close_delimited_body_and_connection_close() -> None:
    async def until_close(body: bytes, writer: asyncio.StreamWriter, _: Server) -> bool:
        writer.write(b'HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n{"a": 1}')
        await writer.drain()
        return False  # closes: the end of the body

    async def scenario() -> None:
        async with Server(until_close) as srv:
            p = pool(srv.url())
            for _ in range(2):
                r = await p.post(b"{}")
                assert await r.read() == b'{"a": 1}'
            assert srv.connections == 2  # never reused after connection: close

    run(scenario)


def test_gzip_answers_are_decoded() -> None:
    async def zipped(body: bytes, writer: asyncio.StreamWriter, _: Server) -> bool:
        writer.write(answer(gzip.compress(b'{"z": true}'), extra=b"content-encoding: gzip\r\n"))
        await writer.drain()
        return True

    async def scenario() -> None:
        async with Server(zipped) as srv:
            r = await pool(srv.url()).post(b"{}")
            assert await r.read() == b'{"z": true}'

    run(scenario)


def test_connections_are_bounded_and_queued_requests_all_finish() -> None:
    async def slow(body: bytes, writer: asyncio.StreamWriter, _: Server) -> bool:
        await asyncio.sleep(0.05)
        return await echo(body, writer, _)

    async def scenario() -> None:
        async with Server(slow) as srv:
            p = pool(srv.url(), max_connections=2)

            async def one(i: int) -> bytes:
                r = await p.post(b"%d" % i)
                return await r.read()

            got = await asyncio.gather(*(one(i) for i in range(7)))
            assert got == [b'{"echo":%d}' % i for i in range(7)]
            assert srv.peak_open <= 2

    run(scenario)


def test_a_cut_body_is_an_error_and_the_connection_is_not_reused() -> None:
    calls = 0

    async def cut(body: bytes, writer: asyncio.StreamWriter, _: Server) -> bool:
        nonlocal calls
        calls += 1
        if calls == 1:
            writer.write(b'HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n{"partial')
            await writer.drain()
            return False
        return await echo(body, writer, _)

    async def scenario() -> None:
        async with Server(cut) as srv:
            p = pool(srv.url(), max_connections=1)
            r = await p.post(b"{}")
            with pytest.raises(UpstreamError, match="closed mid-answer"):
                await r.read()
            r.close()
            r2 = await p.post(b"1")  # max_connections=1: the slot was released
            assert await r2.read() == b'{"echo":1}'
            assert srv.connections == 2

    run(scenario)


def test_malformed_http_is_an_error() -> None:
    async def garbage(body: bytes, writer: asyncio.StreamWriter, _: Server) -> bool:
        writer.write(b"SMTP ready\r\n\r\n")
        await writer.drain()
        return True

    async def scenario() -> None:
        async with Server(garbage) as srv:
            with pytest.raises(UpstreamError, match="malformed HTTP"):
                await pool(srv.url()).post(b"{}")

    run(scenario)


def test_silence_is_a_read_timeout_and_a_refused_port_an_error() -> None:
    async def silent(body: bytes, writer: asyncio.StreamWriter, _: Server) -> bool:
        await asyncio.sleep(5)
        return False

    async def scenario() -> None:
        async with Server(silent) as srv:
            with pytest.raises(UpstreamTimeout):
                await pool(srv.url(), read_timeout_s=0.2).post(b"{}")
            port = srv.port
        await asyncio.sleep(0.05)
        with pytest.raises(UpstreamError, match="cannot connect"):
            await pool(f"http://127.0.0.1:{port}/v1").post(b"{}")

    run(scenario)


def test_an_abandoned_stream_closes_its_connection_and_frees_its_slot() -> None:
    async def endless(body: bytes, writer: asyncio.StreamWriter, srv: Server) -> bool:
        if len(srv.requests) > 1:
            return await echo(body, writer, srv)
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
        try:
            while True:
                writer.write(b"5\r\nchunk\r\n")
                await writer.drain()
                await asyncio.sleep(0.01)
        except ConnectionError:
            return False

    async def scenario() -> None:
        async with Server(endless) as srv:
            p = pool(srv.url(), max_connections=1)
            r = await p.post(b"{}")
            async for part in r.chunks():
                assert part.startswith(b"chunk")
                break
            r.close()
            r2 = await p.post(b"2")
            assert await r2.read() == b'{"echo":2}'
            assert srv.connections == 2

    run(scenario)


def test_a_connection_the_server_closed_while_idle_is_not_reused() -> None:
    async def once(body: bytes, writer: asyncio.StreamWriter, _: Server) -> bool:
        await echo(body, writer, _)
        return False  # keep-alive was promised, but the server closes right after

    async def scenario() -> None:
        async with Server(once) as srv:
            p = pool(srv.url())
            assert await (await p.post(b"1")).read() == b'{"echo":1}'
            await asyncio.sleep(0.05)  # the FIN arrives while the connection is idle
            assert await (await p.post(b"2")).read() == b'{"echo":2}'
            assert srv.connections == 2

    run(scenario)


def test_tls_verifies_the_server_certificate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(server_ctx)
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))

    async def scenario(expect_ok: bool) -> None:
        async with Server(echo, ssl_context=server_ctx) as srv:
            p = pool(srv.url("https", "localhost"))
            if expect_ok:
                assert await (await p.post(b"7")).read() == b'{"echo":7}'
            else:
                with pytest.raises(UpstreamError, match="CERTIFICATE_VERIFY_FAILED"):
                    await p.post(b"7")

    asyncio.run(scenario(expect_ok=False))  # an unknown CA is refused
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
    asyncio.run(scenario(expect_ok=True))


def test_header_injection_is_refused() -> None:
    with pytest.raises(ValueError, match="invalid HTTP header"):
        pool("http://127.0.0.1:1/v1", headers={"authorization": "Bearer k\r\nx-evil: 1"})


def test_a_stream_read_up_to_its_done_line_keeps_its_connection() -> None:
    """An SSE consumer stops at `data: [DONE]`; the terminating chunk came with it, so the
    connection is complete and goes back to the pool instead of being closed."""

    async def sse(body: bytes, writer: asyncio.StreamWriter, _: Server) -> bool:
        events = b'data: {"n": 1}\n\ndata: [DONE]\n\n'
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked"
            b"\r\n\r\n%x\r\n%s\r\n0\r\n\r\n" % (len(events), events)
        )
        await writer.drain()
        return True

    async def scenario() -> None:
        async with Server(sse) as srv:
            p = pool(srv.url(), max_connections=1)
            for _ in range(3):
                r = await p.post(b"{}")
                buffered = b""
                async for part in r.chunks():
                    buffered += part
                    if b"data: [DONE]" in buffered:
                        break  # what the OpenAI-wire client does
                await asyncio.sleep(0.01)  # the terminating chunk is in by now
                r.close()
            assert srv.connections == 1

    run(scenario)
