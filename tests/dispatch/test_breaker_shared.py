"""Breaker state shared through a real Redis: replicas agree, nothing ping-pongs, an outage is
ridden out locally and resynced. Each test uses its own key prefix and deletes its key."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager

import pytest
import redis

from gateway.health.breaker import Breakers, State
from gateway.health.shared import SharedBreakers
from gateway.policy.models import CircuitBreaker
from tests.support.e2e_server import free_port

pytestmark = pytest.mark.redis

REDIS_URL = "redis://127.0.0.1:6379/13"
# Fake monotonic clocks never reach the cooldown, so a breaker changes only when told to:
# what a replica shows came from its own calls or from Redis.
CONFIG = CircuitBreaker(failures=2, cooldown_s=60, min_calls=1000)
INTERVAL_S = 0.05


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Replica:
    def __init__(self, url: str, prefix: str) -> None:
        self.clock = Clock()
        self.seen: list[tuple[str, State, State]] = []
        self.errors = 0
        self.breakers = Breakers(
            CONFIG, clock=self.clock, on_transition=lambda *t: self.seen.append(t)
        )
        self.shared = SharedBreakers(
            self.breakers,
            url,
            prefix=prefix,
            interval_s=INTERVAL_S,
            max_backoff_s=0.2,
            timeout_s=0.5,
            on_error=self._error,
        )

    def _error(self) -> None:
        self.errors += 1

    def trip(self, backend: str) -> None:
        for _ in range(CONFIG.failures):
            assert self.breakers.allow(backend)
            self.breakers.failure(backend)
        assert self.breakers.state(backend) == "open"

    def recover(self, backend: str) -> None:
        """Let the cooldown pass here and have the probe succeed."""
        self.clock.now += CONFIG.cooldown_s
        assert self.breakers.allow(backend)
        self.breakers.success(backend)
        assert self.breakers.state(backend) == "closed"


@asynccontextmanager
async def replicas(url: str, prefix: str, n: int) -> AsyncIterator[list[Replica]]:
    started = [Replica(url, prefix) for _ in range(n)]
    try:
        for r in started:
            await r.shared.start()
        yield started
    finally:
        for r in started:
            await r.shared.aclose()


@pytest.fixture
def prefix() -> Iterator[str]:
    p = f"test-cb-{uuid.uuid4().hex[:10]}:"
    yield p
    client = redis.Redis.from_url(REDIS_URL)
    client.delete(f"{p}breakers")
    client.close()


async def eventually(check: Callable[[], bool], timeout_s: float = 1.0) -> float:
    """Seconds until `check()` holds; fails the test after `timeout_s`."""
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > timeout_s:
            raise AssertionError(f"not within {timeout_s} s")
        await asyncio.sleep(0.01)
    return time.monotonic() - start


def stored(prefix: str, backend: str, url: str = REDIS_URL) -> bytes | None:
    client = redis.Redis.from_url(url)
    try:
        value = client.hget(f"{prefix}breakers", backend)
    finally:
        client.close()
    assert value is None or isinstance(value, bytes)
    return value


def test_open_on_one_replica_is_skipped_on_the_other_and_closes_with_its_probe(
    prefix: str,
) -> None:
    async def scenario() -> None:
        async with replicas(REDIS_URL, prefix, 2) as (a, b):
            a.trip("x")
            await eventually(lambda: b.breakers.state("x") == "open", timeout_s=1.0)
            assert not b.breakers.allow("x")
            assert b.seen == [("x", "closed", "open")], "local metrics see the adopted state"
            assert b.breakers.allow("y"), "only the tripped backend"
            # The cooldown end travels with it: B (clock untouched) may probe at A's time.
            until = b.breakers.snapshot()["x"]["retry_at"]
            assert until == pytest.approx(a.breakers.snapshot()["x"]["retry_at"], abs=0.1)
            a.recover("x")
            await eventually(lambda: b.breakers.state("x") == "closed", timeout_s=1.0)
            assert b.breakers.allow("x")
            assert b.seen[-1] == ("x", "open", "closed")

    asyncio.run(scenario())


def test_adopted_state_is_not_published_again(prefix: str) -> None:
    async def scenario() -> None:
        async with replicas(REDIS_URL, prefix, 2) as (a, b):
            a.trip("x")
            await eventually(lambda: b.breakers.state("x") == "open")
            first = stored(prefix, "x")
            assert first is not None and a.shared.origin.encode() in first
            # Many sync rounds on both: the record must stay A's, byte for byte.
            await asyncio.sleep(10 * INTERVAL_S)
            assert stored(prefix, "x") == first
            assert a.seen == [("x", "closed", "open")], "A never re-adopts its own state"
            a.recover("x")
            await eventually(lambda: b.breakers.state("x") == "closed")
            closed = stored(prefix, "x")
            assert closed is not None and b'"s":"closed"' in closed
            await asyncio.sleep(10 * INTERVAL_S)
            assert stored(prefix, "x") == closed
            assert a.seen[-1] == ("x", "half_open", "closed") and len(b.seen) == 2

    asyncio.run(scenario())


def test_concurrent_opens_converge_on_one_record(prefix: str) -> None:
    async def scenario() -> None:
        async with replicas(REDIS_URL, prefix, 2) as (a, b):
            a.trip("x")
            b.trip("x")  # before either has synced
            await asyncio.sleep(6 * INTERVAL_S)
            settled = stored(prefix, "x")
            await asyncio.sleep(6 * INTERVAL_S)
            assert stored(prefix, "x") == settled
            assert a.breakers.state("x") == b.breakers.state("x") == "open"
            # Whichever record won, the other side closes when its author's probe succeeds.
            winner = a if a.shared.origin.encode() in (settled or b"") else b
            loser = b if winner is a else a
            winner.recover("x")
            await eventually(lambda: loser.breakers.state("x") == "closed")

    asyncio.run(scenario())


def test_a_record_is_applied_once_so_a_probing_replica_is_not_sent_back(prefix: str) -> None:
    async def scenario() -> None:
        async with replicas(REDIS_URL, prefix, 2) as (a, b):
            a.trip("x")
            await eventually(lambda: b.breakers.state("x") == "open")
            b.clock.now += CONFIG.cooldown_s  # B's cooldown ends before any news from A
            assert b.breakers.allow("x")
            assert b.breakers.state("x") == "half_open"
            await asyncio.sleep(10 * INTERVAL_S)
            assert b.breakers.state("x") == "half_open", "the same record was re-applied"
            b.breakers.success("x")  # B's probe closes it for everyone
            await eventually(lambda: a.breakers.state("x") == "closed")

    asyncio.run(scenario())


def test_an_older_transition_loses_to_the_stored_record_and_adopts_it(prefix: str) -> None:
    async def scenario() -> None:
        async with replicas(REDIS_URL, prefix, 1) as (a,):
            # Another replica (its clock 5 s ahead) closed "x" just now; A has not polled it yet
            # when it opens "x" itself, so A's transition carries a lower version.
            ahead = time.time() + 5
            other = {"v": int(ahead * 1000), "o": "other", "s": "closed", "u": None, "at": ahead}
            client = redis.Redis.from_url(REDIS_URL)
            try:
                client.hset(f"{prefix}breakers", "x", json.dumps(other, separators=(",", ":")))
            finally:
                client.close()
            a.trip("x")  # no await in between: A's task cannot have polled
            await eventually(lambda: a.breakers.state("x") == "closed")
            held = stored(prefix, "x")
            assert held is not None and json.loads(held)["o"] == "other", "stale write won"
            # A transition made after seeing that record outranks it, clock skew or not.
            a.trip("x")
            await eventually(
                lambda: json.loads(stored(prefix, "x") or b"{}")["o"] == a.shared.origin
            )
            assert json.loads(stored(prefix, "x") or b"{}")["v"] == other["v"] + 1

    asyncio.run(scenario())


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_unreachable_redis_leaves_breakers_working_locally() -> None:
    async def scenario() -> None:
        async with replicas("redis://127.0.0.1:1", "unused:", 1) as (a,):
            assert a.errors >= 1, "the first sync in start() already failed"
            a.trip("x")
            assert not a.breakers.allow("x")
            await eventually(lambda: a.errors >= 4, timeout_s=2.0)
            assert not a.shared.connected
            a.recover("x")
            assert a.breakers.allow("x")
            assert a.seen == [
                ("x", "closed", "open"),
                ("x", "open", "half_open"),
                ("x", "half_open", "closed"),
            ]

    # A handler on the logger itself: the app's logging set-up in earlier tests may stop
    # "stepgate" records from propagating to pytest's capture.
    logger = logging.getLogger("stepgate.health")
    handler = _Records()
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        asyncio.run(scenario())
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    warnings = [r for r in handler.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, "one warning per outage, not one per retry"


class ThrowawayRedis:
    """A real redis-server on a free port, without persistence: a restart comes back empty."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}"
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        argv = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1"]
        self._proc = subprocess.Popen(
            [*argv, "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        deadline = time.monotonic() + 5
        try:
            while True:
                try:
                    if client.ping():
                        return
                except redis.ConnectionError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.02)
        finally:
            client.close()

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            self._proc.wait(timeout=5)
            self._proc = None


@pytest.fixture
def throwaway() -> Iterator[ThrowawayRedis]:
    server = ThrowawayRedis()
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_redis_outage_then_return_resyncs(throwaway: ThrowawayRedis) -> None:
    url, prefix = throwaway.url, "outage:"

    async def scenario() -> None:
        async with replicas(url, prefix, 2) as (a, b):
            a.trip("x")
            await eventually(lambda: b.breakers.state("x") == "open")
            throwaway.stop()
            errors = a.errors, b.errors
            a.trip("y")  # decided locally during the outage
            assert not a.breakers.allow("y")
            await eventually(lambda: a.errors > errors[0] and b.errors > errors[1])
            assert b.breakers.state("y") == "closed"
            throwaway.start()  # back, and empty
            # A's queued transition reaches B ...
            await eventually(lambda: b.breakers.state("y") == "open", timeout_s=2.0)
            await eventually(lambda: a.shared.connected and b.shared.connected)
            # ... and the open "x" they knew is written back for a replica that starts now.
            async with replicas(url, prefix, 1) as (c,):
                await eventually(lambda: c.breakers.state("x") == "open")
                assert c.breakers.state("y") == "open"
                assert sorted(c.seen) == [("x", "closed", "open"), ("y", "closed", "open")]

    asyncio.run(scenario())
