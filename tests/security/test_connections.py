"""Connection hygiene of the served gateway (gateway/http_protocol.py, gateway/connlimits.py):
slow heads and bodies are cut, idle keep-alive connections closed, connections past the
per-client and process caps dropped on arrival, and the gateway keeps answering throughout."""

from __future__ import annotations

import errno
import select
import socket
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

from gateway.connlimits import inbound_cap
from gateway.settings import Settings
from tests.support.e2e_server import serve

HOST = "127.0.0.1"
# Another loopback source address: "a different client" to the per-client cap. Linux routes
# all of 127/8 to loopback; elsewhere the tests that need it skip.
OTHER_CLIENT = "127.0.0.2"
GET = b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n"


def _env(**values: object) -> dict[str, str]:
    return {f"STEPGATE_{key.upper()}": str(value) for key, value in values.items()}


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def _connect(port: int, source: str | None = None) -> socket.socket:
    s = socket.create_connection(
        (HOST, port), timeout=5, source_address=(source, 0) if source else None
    )
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def _read_until_closed(s: socket.socket, timeout: float) -> tuple[bytes, float | None]:
    """What arrives until the server closes (EOF or reset); None if still open at `timeout`."""
    start = time.monotonic()
    data = b""
    while (left := timeout - (time.monotonic() - start)) > 0:
        readable, _, _ = select.select([s], [], [], left)
        if not readable:
            break
        try:
            part = s.recv(65536)
        except ConnectionResetError:
            return data, time.monotonic() - start
        if not part:
            return data, time.monotonic() - start
        data += part
    return data, None


def _get(s: socket.socket) -> bytes:
    """One keep-alive request on `s`; the whole answer (/healthz answers with a JSON object)."""
    s.sendall(GET)
    data = b""
    while not (b"\r\n\r\n" in data and data.endswith(b"}")):
        part = s.recv(65536)
        assert part, f"connection closed after {data!r}"
        data += part
    return data


def _healthy(url: str) -> None:
    assert httpx.get(f"{url}/healthz", timeout=5).status_code == 200


@contextmanager
def _other_client_or_skip(port: int) -> Iterator[socket.socket]:
    try:
        s = _connect(port, OTHER_CLIENT)
    except OSError as exc:
        if exc.errno in (errno.EADDRNOTAVAIL, errno.EINVAL, errno.ENETUNREACH):
            pytest.skip(f"{OTHER_CLIENT} is not a usable loopback source here")
        raise
    with s:
        yield s


@pytest.mark.e2e
def test_slow_heads_are_answered_408_and_closed(policy_file: Path, tmp_path: Path) -> None:
    """Slowloris: a head trickled a line at a time, a connection that sends nothing, and a
    partial second request on a keep-alive connection are all closed at the header timeout."""
    env = _env(header_timeout_s=1, body_timeout_s=2, keepalive_s=30)
    with serve(policy_file, tmp_path, env=env) as url, ExitStack() as stack:
        port = _port(url)
        trickling = [stack.enter_context(_connect(port)) for _ in range(40)]
        silent = stack.enter_context(_connect(port))
        reused = stack.enter_context(_connect(port))
        assert _get(reused).startswith(b"HTTP/1.1 200 ")
        start = time.monotonic()
        for s in trickling:
            s.sendall(b"GET /healthz HTTP/1.1\r\n")
        reused.sendall(b"GET /healthz HTTP/1.1\r\nhost: x\r\n")
        # Keep every slow head alive by a header line each 0.2 s: a timeout that restarted on
        # each byte received would never fire.
        closed: dict[socket.socket, float] = {}
        answers: dict[socket.socket, bytes] = {}
        while len(closed) < len(trickling) and time.monotonic() - start < 4:
            for s in trickling:
                if s in closed:
                    continue
                readable, _, _ = select.select([s], [], [], 0)
                if readable:
                    answers[s], _ = _read_until_closed(s, 1)
                    closed[s] = time.monotonic() - start
                else:
                    try:
                        s.sendall(b"x-pad: 1\r\n")
                    except OSError:
                        closed[s] = time.monotonic() - start
            time.sleep(0.2)
        assert len(closed) == len(trickling), "slow heads were still open after 4 s"
        assert max(closed.values()) < 2.5, sorted(closed.values())
        assert all(a.startswith(b"HTTP/1.1 408 ") for a in answers.values()), answers
        got, reused_after = _read_until_closed(reused, 3)
        assert reused_after is not None and got.startswith(b"HTTP/1.1 408 ")
        # A connection that never sent a byte is closed too, without an answer.
        got, silent_after = _read_until_closed(silent, 3)
        assert silent_after is not None and got == b""
        _healthy(url)


@pytest.mark.e2e
def test_slow_body_is_cut_but_a_body_within_its_deadline_is_served(
    policy_file: Path, tmp_path: Path
) -> None:
    """The body has its own, longer deadline: one finishing after the header timeout but
    within the body timeout is served; one still arriving at the body timeout gets 408."""
    env = _env(header_timeout_s=1, body_timeout_s=2.5, keepalive_s=30)
    body = (
        b'{"model":"auto","messages":[{"role":"user","content":"billing or shipping?"}],'
        b'"max_tokens":8}'
    )
    head = (
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
        b"x-step-kind: classify\r\ncontent-length: %d\r\n\r\n"
    )
    with serve(policy_file, tmp_path, env=env) as url:
        port = _port(url)
        with _connect(port) as slow_but_in_time:
            slow_but_in_time.sendall(head % len(body) + body[:10])
            time.sleep(1.5)  # past the header timeout, within the body timeout
            slow_but_in_time.sendall(body[10:])
            got, _ = _read_until_closed(slow_but_in_time, 1.5)
            assert got.startswith(b"HTTP/1.1 200 "), got[:200]
        with _connect(port) as too_slow:
            start = time.monotonic()
            too_slow.sendall(head % 100_000 + b"{")
            cut_after = None
            for _ in range(40):  # a byte each 0.1 s keeps the body arriving, never finishing
                got, cut_after = _read_until_closed(too_slow, 0.1)
                if cut_after is not None:
                    break
                try:
                    too_slow.sendall(b" ")
                except OSError:
                    break
            elapsed = time.monotonic() - start
            assert got.startswith(b"HTTP/1.1 408 "), got
            assert 2.0 < elapsed < 3.5, elapsed
        _healthy(url)


@pytest.mark.e2e
def test_idle_keepalive_connections_are_closed(policy_file: Path, tmp_path: Path) -> None:
    """An idle keep-alive connection is closed after KEEPALIVE_S, also one kept 'busy' with
    blank lines, which start no request."""
    env = _env(keepalive_s=1, header_timeout_s=5, body_timeout_s=5)
    with serve(policy_file, tmp_path, env=env) as url, ExitStack() as stack:
        port = _port(url)
        idle, dripping = (stack.enter_context(_connect(port)) for _ in range(2))
        assert _get(idle).startswith(b"HTTP/1.1 200 ")
        assert _get(dripping).startswith(b"HTTP/1.1 200 ")
        start = time.monotonic()
        closed: dict[str, float] = {}
        for _ in range(15):  # each 0.2 s for at most 3 s: a blank line on `dripping`
            for name, s in (("idle", idle), ("dripping", dripping)):
                if name in closed:
                    continue
                got, after = _read_until_closed(s, 0.1)
                if after is not None:
                    assert got == b""
                    closed[name] = time.monotonic() - start
                elif name == "dripping":
                    try:
                        s.sendall(b"\r\n")
                    except OSError:
                        closed[name] = time.monotonic() - start
            if len(closed) == 2:
                break
        assert 0.5 < closed.get("idle", 99) < 2, closed
        assert closed.get("dripping", 99) < 2, closed
        _healthy(url)


@pytest.mark.e2e
def test_connections_past_the_per_client_cap_are_closed_at_once(
    policy_file: Path, tmp_path: Path
) -> None:
    cap = 20
    env = _env(max_connections_per_client=cap, keepalive_s=30, header_timeout_s=10)
    with serve(policy_file, tmp_path, env=env) as url, ExitStack() as stack:
        port = _port(url)
        held = [stack.enter_context(_connect(port)) for _ in range(cap)]
        for s in held:  # an answer on each: the server has admitted and counted all of them
            assert _get(s).startswith(b"HTTP/1.1 200 ")
        refused_after = []
        for _ in range(10):
            with _connect(port) as extra:
                start = time.monotonic()
                # A reset before the request went out is a refusal as well.
                with suppress(OSError):
                    extra.sendall(GET)
                got, after = _read_until_closed(extra, 2)
                assert after is not None and got == b"", got
                refused_after.append(time.monotonic() - start)
        assert max(refused_after) < 0.5, refused_after
        # Another client is not affected by this one's connections.
        with _other_client_or_skip(port) as other:
            assert _get(other).startswith(b"HTTP/1.1 200 ")
        # The held connections still work, and a freed slot is usable again.
        assert _get(held[0]).startswith(b"HTTP/1.1 200 ")
        held[-1].close()
        for _ in range(50):
            with _connect(port) as again:
                again.sendall(GET)
                got, _ = _read_until_closed(again, 0.2)
            if got.startswith(b"HTTP/1.1 200 "):
                break
            time.sleep(0.02)
        assert got.startswith(b"HTTP/1.1 200 "), got


@pytest.mark.e2e
def test_connections_past_the_process_cap_are_closed_at_once(
    policy_file: Path, tmp_path: Path
) -> None:
    cap = 30
    env = _env(max_connections=cap, max_connections_per_client=0, keepalive_s=30)
    with serve(policy_file, tmp_path, env=env) as url, ExitStack() as stack:
        port = _port(url)
        held = [stack.enter_context(_connect(port)) for _ in range(cap)]
        for s in held:
            assert _get(s).startswith(b"HTTP/1.1 200 ")
        start = time.monotonic()
        with _connect(port) as extra:
            got, after = _read_until_closed(extra, 2)
        assert after is not None and got == b"" and time.monotonic() - start < 0.5
        for s in held:
            s.close()
        for _ in range(50):
            try:
                _healthy(url)
                break
            except (httpx.HTTPError, AssertionError):
                time.sleep(0.02)
        _healthy(url)


def test_settings_bound_the_timeouts_and_caps(monkeypatch: pytest.MonkeyPatch) -> None:
    defaults = Settings()
    assert (defaults.header_timeout_s, defaults.body_timeout_s, defaults.keepalive_s) == (
        10.0,
        30.0,
        5,
    )
    assert (defaults.max_connections, defaults.max_connections_per_client) == (4096, 256)
    for name, value in [
        ("HEADER_TIMEOUT_S", "0"),
        ("BODY_TIMEOUT_S", "5"),  # shorter than the 10 s header timeout
        ("KEEPALIVE_S", "0"),
        ("MAX_CONNECTIONS", "0"),
        ("MAX_CONNECTIONS_PER_CLIENT", "-1"),
    ]:
        monkeypatch.setenv(f"STEPGATE_{name}", value)
        with pytest.raises(ValidationError):
            Settings()
        monkeypatch.delenv(f"STEPGATE_{name}")


def test_the_process_cap_leaves_fds_for_upstreams() -> None:
    assert inbound_cap(requested=4096, fd_limit=1 << 20, reserve=1280) == 4096
    assert inbound_cap(requested=4096, fd_limit=4096, reserve=1280) == 4096 - 1280
    # A small fd limit: inbound still gets half of it rather than nothing.
    assert inbound_cap(requested=4096, fd_limit=1024, reserve=1280) == 512
    assert inbound_cap(requested=4096, fd_limit=None, reserve=1280) == 4096
