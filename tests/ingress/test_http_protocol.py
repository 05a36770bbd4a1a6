"""The serving protocol sends a response's head and body in one write, without ever holding
bytes back for longer than one loop turn (gateway/http_protocol.py)."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any

import pytest

from gateway.http_protocol import _CoalescingTransport
from tests.support.e2e_server import serve


class RecordingTransport(asyncio.Transport):
    """An asyncio transport that keeps what was written, one entry per write call."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: Any) -> None:
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 1)}.get(name, default)


HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n"


def test_head_and_body_written_together() -> None:
    asyncio.run(_test_head_and_body_written_together())


async def _test_head_and_body_written_together() -> None:
    raw = RecordingTransport()
    t = _CoalescingTransport(raw, asyncio.get_running_loop())
    t.write(HEAD)
    t.write(b"{}")
    assert raw.writes == [HEAD + b"{}"]
    await asyncio.sleep(0)
    assert raw.writes == [HEAD + b"{}"]  # nothing left to flush


def test_a_head_alone_goes_out_on_the_next_loop_turn() -> None:
    asyncio.run(_test_a_head_alone_goes_out_on_the_next_loop_turn())


async def _test_a_head_alone_goes_out_on_the_next_loop_turn() -> None:
    """A stream's head (its first chunk may take seconds) or a HEAD answer (no body)."""
    raw = RecordingTransport()
    t = _CoalescingTransport(raw, asyncio.get_running_loop())
    t.write(HEAD)
    assert raw.writes == []
    await asyncio.sleep(0)
    assert raw.writes == [HEAD]
    t.write(b"data: 1\n\n")
    assert raw.writes == [HEAD, b"data: 1\n\n"]


def test_close_flushes_a_held_head_first() -> None:
    asyncio.run(_test_close_flushes_a_held_head_first())


async def _test_close_flushes_a_held_head_first() -> None:
    raw = RecordingTransport()
    t = _CoalescingTransport(raw, asyncio.get_running_loop())
    t.write(HEAD)
    t.close()
    assert raw.writes == [HEAD]
    assert raw.closed


def test_other_writes_pass_straight_through() -> None:
    asyncio.run(_test_other_writes_pass_straight_through())


async def _test_other_writes_pass_straight_through() -> None:
    raw = RecordingTransport()
    t = _CoalescingTransport(raw, asyncio.get_running_loop())
    t.write(b"5\r\nhello\r\n")
    t.write(memoryview(b"HTTP/1.1 100 Continue\r\n\r\n"))  # not bytes: never held
    assert raw.writes == [b"5\r\nhello\r\n", b"HTTP/1.1 100 Continue\r\n\r\n"]
    assert t.get_extra_info("peername") == ("127.0.0.1", 1)  # everything else is delegated


def _exchange(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data:
            part = s.recv(65536)
            assert part, f"connection closed early after {data!r}"
            data += part
        head, _, body = data.partition(b"\r\n\r\n")
        length = next(
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        if not request.startswith(b"HEAD "):
            while len(body) < length:
                part = s.recv(65536)
                assert part
                body += part
        return head + b"\r\n\r\n" + body


@pytest.mark.e2e
def test_served_gateway_answers_get_head_and_keep_alive(policy_file: Path, tmp_path: Path) -> None:
    with serve(policy_file, tmp_path) as url:
        port = int(url.rsplit(":", 1)[1])
        got = _exchange(port, b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        assert got.startswith(b"HTTP/1.1 200 ")
        assert got.endswith(b"}")
        # HEAD: a head with no body must still go out (flushed on the next loop turn).
        head = _exchange(port, b"HEAD /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 ")
        # Two requests on one keep-alive connection: both answers arrive complete, in order.
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n" * 2)
            data = b""
            while data.count(b"HTTP/1.1 200 ") < 2 or not data.endswith(b"}"):
                part = s.recv(65536)
                assert part
                data += part
            assert data.count(b"HTTP/1.1 200 ") == 2
