"""Redis limits store, shared by replicas: each admit and settle is one atomic Lua script.

Time comes from the Redis server (`TIME`), so replicas with skewed clocks share one bucket
clock. After an error the store answers `StoreUnavailable` at once for `cooldown_s` instead of
making every request wait for a connect timeout; the Gate then applies each limit's
`on_store_error` mode.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from gateway.limits.store import (
    ADMITTED,
    Admission,
    Bucket,
    Counter,
    Seed,
    StoreRejected,
    StoreUnavailable,
)

# KEYS: counters, then buckets. ARGV: n_counters, n_buckets, (limit, amount) per counter,
# (capacity, amount) per bucket. Reply: {0} admitted | {1, {missing counter indexes}} |
# {2, counter index} budget exhausted | {3, bucket index, retry-after ms}.
ADMIT = """
local nc = tonumber(ARGV[1])
local nb = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local values = {}
local missing = {}
for i = 1, nc do
  local v = redis.call('GET', KEYS[i])
  if v then values[i] = tonumber(v) else missing[#missing + 1] = i end
end
if #missing > 0 then return {1, missing} end
for i = 1, nc do
  if values[i] >= tonumber(ARGV[1 + 2 * i]) then return {2, i} end
end
local base = 2 + 2 * nc
local tokens = {}
for j = 1, nb do
  local cap = tonumber(ARGV[base + 2 * j - 1])
  local amount = tonumber(ARGV[base + 2 * j])
  local st = redis.call('HMGET', KEYS[nc + j], 't', 'at')
  local tk = cap
  if st[1] then
    tk = math.min(cap, tonumber(st[1]) + (now - tonumber(st[2])) * cap / 60000)
  end
  local need = math.min(amount, cap)
  if tk < need then return {3, j, math.ceil((need - tk) * 60000 / cap)} end
  tokens[j] = tk - amount
end
for j = 1, nb do
  local cap = tonumber(ARGV[base + 2 * j - 1])
  local key = KEYS[nc + j]
  redis.call('HSET', key, 't', string.format('%.6f', tokens[j]), 'at', now)
  redis.call('PEXPIRE', key, math.ceil((cap - tokens[j]) * 60000 / cap) + 1000)
end
for i = 1, nc do
  redis.call('INCRBY', KEYS[i], ARGV[2 + 2 * i])
end
return {0}
"""

# KEYS: buckets, then counters. ARGV: n_buckets, n_counters, (capacity, delta) per bucket,
# delta per counter. Counters that do not exist are left alone (they are re-seeded).
SETTLE = """
local nb = tonumber(ARGV[1])
local nc = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for j = 1, nb do
  local cap = tonumber(ARGV[1 + 2 * j])
  local delta = tonumber(ARGV[2 + 2 * j])
  local key = KEYS[j]
  local st = redis.call('HMGET', key, 't', 'at')
  local tk = cap
  if st[1] then
    tk = math.min(cap, tonumber(st[1]) + (now - tonumber(st[2])) * cap / 60000)
  end
  tk = math.min(cap, tk + delta)
  redis.call('HSET', key, 't', string.format('%.6f', tk), 'at', now)
  redis.call('PEXPIRE', key, math.ceil((cap - tk) * 60000 / cap) + 1000)
end
local base = 2 + 2 * nb
for i = 1, nc do
  if redis.call('EXISTS', KEYS[nb + i]) == 1 then
    redis.call('INCRBY', KEYS[nb + i], ARGV[base + i])
  end
end
return 0
"""

# SET NX that also returns what was there (SET NX GET needs Redis 7; this runs on 6 too).
CLAIM = """
local held = redis.call('GET', KEYS[1])
if held then return held end
redis.call('SET', KEYS[1], ARGV[1], 'EX', tonumber(ARGV[2]))
return false
"""

# Only these mean the store is unreachable; any other Redis error (a script error on one
# request's data) is that request's failure and must not switch limits off for every tenant.
_ERRORS = (RedisConnectionError, RedisTimeoutError, OSError, asyncio.TimeoutError)


class RedisStore:
    def __init__(
        self,
        url: str,
        *,
        timeout_s: float = 2.0,
        cooldown_s: float = 1.0,
        max_connections: int = 64,
    ) -> None:
        # A blocking pool: a burst waits (up to timeout_s) for a free connection instead of
        # failing with "too many connections".
        pool = BlockingConnectionPool.from_url(
            url,
            max_connections=max_connections,
            timeout=timeout_s,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            health_check_interval=30,
        )
        self._redis: Redis = Redis(connection_pool=pool)
        self._admit = self._redis.register_script(ADMIT)
        self._settle = self._redis.register_script(SETTLE)
        self._claim = self._redis.register_script(CLAIM)
        self._cooldown_s = cooldown_s
        self._down_until = 0.0

    async def _call(self, coro: Any) -> Any:
        if time.monotonic() < self._down_until:
            coro.close()
            raise StoreUnavailable("redis was unreachable a moment ago")
        try:
            return await coro
        except _ERRORS as exc:
            self._down_until = time.monotonic() + self._cooldown_s
            raise StoreUnavailable(f"redis: {exc}") from exc
        except (ResponseError, RedisError) as exc:
            raise StoreRejected(f"redis refused this request's update: {exc}") from exc

    async def admit(self, buckets: Sequence[Bucket], counters: Sequence[Counter]) -> Admission:
        args: list[int] = [len(counters), len(buckets)]
        for c in counters:
            args += [c.limit, c.amount]
        for b in buckets:
            args += [b.capacity, b.amount]
        keys = [c.key for c in counters] + [b.key for b in buckets]
        reply = await self._call(self._admit(keys=keys, args=args))
        status = int(reply[0])
        if status == 0:
            return ADMITTED
        if status == 1:
            missing = tuple(counters[int(i) - 1].key for i in reply[1])
            return Admission(ok=False, kind="unseeded", unseeded=missing)
        if status == 2:
            return Admission(ok=False, denied=counters[int(reply[1]) - 1].name, kind="budget")
        return Admission(
            ok=False,
            denied=buckets[int(reply[1]) - 1].name,
            kind="rate",
            retry_after_s=int(reply[2]) / 1000,
        )

    async def settle(
        self, buckets: Sequence[tuple[Bucket, int]], counters: Sequence[tuple[str, int]]
    ) -> None:
        if not buckets and not counters:
            return
        args: list[int] = [len(buckets), len(counters)]
        for b, delta in buckets:
            args += [b.capacity, delta]
        args += [delta for _, delta in counters]
        keys = [b.key for b, _ in buckets] + [key for key, _ in counters]
        await self._call(self._settle(keys=keys, args=args))

    async def seed(self, seeds: Sequence[Seed]) -> None:
        async def run() -> None:
            async with self._redis.pipeline(transaction=False) as pipe:
                for s in seeds:
                    pipe.set(s.key, s.value, nx=True, ex=s.ttl_s)
                await pipe.execute()

        await self._call(run())

    async def counter(self, key: str) -> int | None:
        value = await self._call(self._redis.get(key))
        return None if value is None else int(value)

    async def cache_get(self, key: str) -> bytes | None:
        value = await self._call(self._redis.get(key))
        return None if value is None else bytes(value)

    async def cache_put(self, key: str, value: bytes, ttl_s: int) -> None:
        await self._call(self._redis.set(key, value, ex=ttl_s))

    async def claim(self, key: str, value: bytes, ttl_s: int) -> bytes | None:
        held = await self._call(self._claim(keys=[key], args=[value, ttl_s]))
        return None if held is None else bytes(held)

    async def forget(self, key: str) -> None:
        await self._call(self._redis.delete(key))

    async def ping(self) -> bool:
        try:
            return bool(await self._call(self._redis.ping()))
        except StoreUnavailable:
            return False

    async def aclose(self) -> None:
        await self._redis.aclose()
        await self._redis.connection_pool.disconnect()
