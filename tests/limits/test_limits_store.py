"""Store semantics, run identically against the in-process store and Redis (Lua scripts)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from gateway.limits.memory import MemoryStore
from gateway.limits.redis_store import RedisStore
from gateway.limits.store import Bucket, Counter, LimitStore, Seed, StoreUnavailable

REDIS_URL = "redis://127.0.0.1:6379/13"


def run(factory: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(factory())


def _stores() -> list[Any]:
    return [pytest.param("memory"), pytest.param("redis", marks=pytest.mark.redis)]


async def _open(kind: str) -> tuple[LimitStore, str]:
    prefix = f"test-{uuid.uuid4().hex[:10]}:"
    if kind == "memory":
        return MemoryStore(), prefix
    return RedisStore(REDIS_URL), prefix


@pytest.mark.parametrize("kind", _stores())
def test_bucket_admits_capacity_then_refuses_with_retry_after(kind: str) -> None:
    async def scenario() -> None:
        store, p = await _open(kind)
        try:
            rpm = Bucket("key_rpm", f"{p}rpm", capacity=3, amount=1)
            results = [await store.admit([rpm], []) for _ in range(4)]
            assert [r.ok for r in results] == [True, True, True, False]
            denied = results[-1]
            assert denied.kind == "rate" and denied.denied == "key_rpm"
            # One token comes back every 60/3 = 20 s.
            assert 19.0 < denied.retry_after_s <= 20.0
        finally:
            await store.aclose()

    run(scenario)


@pytest.mark.parametrize("kind", _stores())
def test_all_or_nothing_and_token_debt_settles(kind: str) -> None:
    async def scenario() -> None:
        store, p = await _open(kind)
        try:
            rpm = Bucket("key_rpm", f"{p}rpm", capacity=100, amount=1)
            tpm = Bucket("key_tpm", f"{p}tpm", capacity=1000, amount=800)
            assert (await store.admit([rpm, tpm], [])).ok
            # The tpm bucket refuses: the rpm bucket must not be charged either.
            second = await store.admit([rpm, tpm], [])
            assert not second.ok and second.denied == "key_tpm"
            # Request used only 100 of the 800 reserved tokens: refund 700.
            await store.settle([(tpm, 700)], [])
            assert (await store.admit([rpm, tpm], [])).ok
            # A request larger than the capacity needs a full bucket and leaves a debt.
            big = Bucket("key_tpm", f"{p}tpm2", capacity=1000, amount=5000)
            assert (await store.admit([big], [])).ok
            after = await store.admit([Bucket("key_tpm", f"{p}tpm2", 1000, 1)], [])
            assert not after.ok and after.retry_after_s > 200  # 4000 tokens of debt at 1000/min
        finally:
            await store.aclose()

    run(scenario)


@pytest.mark.parametrize("kind", _stores())
def test_counters_need_a_seed_and_seeding_is_set_if_absent(kind: str) -> None:
    async def scenario() -> None:
        store, p = await _open(kind)
        try:
            budget = Counter("key_daily_budget", f"{p}b", limit=1000, amount=300, ttl_s=60)
            first = await store.admit([], [budget])
            assert first.kind == "unseeded" and first.unseeded == (budget.key,)
            assert await store.counter(budget.key) is None
            await store.seed([Seed(budget.key, 500, 60)])
            await store.seed([Seed(budget.key, 0, 60)])  # a second replica's seed: ignored
            assert await store.counter(budget.key) == 500
            assert (await store.admit([], [budget])).ok  # 500 < 1000: reserve 300
            assert (await store.admit([], [budget])).ok  # 800 < 1000: reserve 300 -> 1100
            refused = await store.admit([], [budget])
            assert refused.kind == "budget" and refused.denied == "key_daily_budget"
            # Settle: the last call cost 100, not 300.
            await store.settle([], [(budget.key, -200)])
            assert await store.counter(budget.key) == 900
            assert (await store.admit([], [budget])).ok
            # Settling a counter that does not exist never creates one.
            await store.settle([], [(f"{p}missing", 50)])
            assert await store.counter(f"{p}missing") is None
        finally:
            await store.aclose()

    run(scenario)


@pytest.mark.parametrize("kind", _stores())
def test_budget_checked_before_buckets_and_nothing_charged_on_refusal(kind: str) -> None:
    async def scenario() -> None:
        store, p = await _open(kind)
        try:
            rpm = Bucket("team_rpm", f"{p}rpm", capacity=1, amount=1)
            budget = Counter("team_daily_budget", f"{p}b", limit=10, amount=5, ttl_s=60)
            await store.seed([Seed(budget.key, 10, 60)])
            refused = await store.admit([rpm], [budget])
            assert refused.kind == "budget"
            assert (await store.admit([rpm], [])).ok  # the rpm token was not spent above
        finally:
            await store.aclose()

    run(scenario)


@pytest.mark.parametrize("kind", _stores())
def test_cache_entries_expire(kind: str) -> None:
    async def scenario() -> None:
        store, p = await _open(kind)
        try:
            await store.cache_put(f"{p}c", b"answer", 1)
            assert await store.cache_get(f"{p}c") == b"answer"
            await asyncio.sleep(1.1)
            assert await store.cache_get(f"{p}c") is None
        finally:
            await store.aclose()

    run(scenario)


@pytest.mark.redis
def test_concurrent_admits_are_atomic_across_clients() -> None:
    """Two clients (as two replicas) race for one bucket and one budget: never over-admitted."""

    async def scenario() -> None:
        a, b = RedisStore(REDIS_URL), RedisStore(REDIS_URL)
        p = f"test-{uuid.uuid4().hex[:10]}:"
        try:
            rpm = Bucket("key_rpm", f"{p}rpm", capacity=50, amount=1)
            budget = Counter("key_daily_budget", f"{p}b", limit=1000, amount=10, ttl_s=60)
            await a.seed([Seed(budget.key, 0, 60)])
            results = await asyncio.gather(
                *[(a if i % 2 else b).admit([rpm], [budget]) for i in range(200)]
            )
            assert sum(r.ok for r in results) == 50
            assert await a.counter(budget.key) == 500
        finally:
            await a.aclose()
            await b.aclose()

    run(scenario)


def test_unreachable_redis_fails_fast_after_the_first_error() -> None:
    async def scenario() -> None:
        store = RedisStore("redis://127.0.0.1:1/0", cooldown_s=5.0)
        try:
            with pytest.raises(StoreUnavailable):
                await store.admit([Bucket("key_rpm", "k", 1, 1)], [])
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            for _ in range(100):
                with pytest.raises(StoreUnavailable):
                    await store.cache_get("x")
            assert loop.time() - t0 < 0.5  # no connection attempts during the cool-down
            assert not await store.ping()
        finally:
            await store.aclose()

    run(scenario)
