"""In-process limits store: the embedded default (one process, so plain dicts are atomic).

Every method runs without awaiting in between, so on one event loop each call is atomic.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Sequence

from gateway.limits.store import (
    ADMITTED,
    WINDOW_S,
    Admission,
    Bucket,
    Counter,
    Seed,
)


class MemoryStore:
    def __init__(
        self, *, cache_max_entries: int = 10_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)
        self._counters: dict[str, tuple[int, float]] = {}  # key -> (value, expires_at)
        self._cache: OrderedDict[str, tuple[bytes, float]] = OrderedDict()
        self._cache_max = cache_max_entries

    def _tokens(self, bucket: Bucket, now: float) -> float:
        state = self._buckets.get(bucket.key)
        if state is None:
            return float(bucket.capacity)
        tokens, at = state
        return min(float(bucket.capacity), tokens + (now - at) * bucket.capacity / WINDOW_S)

    def _value(self, key: str, now: float) -> int | None:
        state = self._counters.get(key)
        if state is None:
            return None
        if state[1] <= now:
            del self._counters[key]
            return None
        return state[0]

    async def admit(self, buckets: Sequence[Bucket], counters: Sequence[Counter]) -> Admission:
        now = self._clock()
        values = [self._value(c.key, now) for c in counters]
        unseeded = tuple(c.key for c, v in zip(counters, values, strict=True) if v is None)
        if unseeded:
            return Admission(ok=False, kind="unseeded", unseeded=unseeded)
        for c, v in zip(counters, values, strict=True):
            if v is not None and v >= c.limit:
                return Admission(ok=False, denied=c.name, kind="budget")
        tokens = [self._tokens(b, now) for b in buckets]
        for b, t in zip(buckets, tokens, strict=True):
            need = min(b.amount, b.capacity)
            if t < need:
                wait = (need - t) * WINDOW_S / b.capacity
                return Admission(ok=False, denied=b.name, kind="rate", retry_after_s=wait)
        for b, t in zip(buckets, tokens, strict=True):
            self._buckets[b.key] = (t - b.amount, now)
        for c in counters:
            value, expires = self._counters[c.key]
            self._counters[c.key] = (value + c.amount, expires)
        return ADMITTED

    async def settle(
        self, buckets: Sequence[tuple[Bucket, int]], counters: Sequence[tuple[str, int]]
    ) -> None:
        now = self._clock()
        for bucket, delta in buckets:
            if delta:
                tokens = min(float(bucket.capacity), self._tokens(bucket, now) + delta)
                self._buckets[bucket.key] = (tokens, now)
        for key, delta in counters:
            value = self._value(key, now)
            if value is not None and delta:
                self._counters[key] = (value + delta, self._counters[key][1])

    async def seed(self, seeds: Sequence[Seed]) -> None:
        now = self._clock()
        for s in seeds:
            if self._value(s.key, now) is None:
                self._counters[s.key] = (s.value, now + s.ttl_s)

    async def counter(self, key: str) -> int | None:
        return self._value(key, self._clock())

    async def cache_get(self, key: str) -> bytes | None:
        entry = self._cache.get(key)
        if entry is None:
            return None
        if entry[1] <= self._clock():
            del self._cache[key]
            return None
        self._cache.move_to_end(key)
        return entry[0]

    async def cache_put(self, key: str, value: bytes, ttl_s: int) -> None:
        self._cache[key] = (value, self._clock() + ttl_s)
        self._cache.move_to_end(key)
        while len(self._cache) > self._cache_max:
            self._cache.popitem(last=False)

    async def claim(self, key: str, value: bytes, ttl_s: int) -> bytes | None:
        held = await self.cache_get(key)
        if held is not None:
            return held
        await self.cache_put(key, value, ttl_s)
        return None

    async def forget(self, key: str) -> None:
        self._cache.pop(key, None)

    async def aclose(self) -> None:
        self._buckets.clear()
        self._counters.clear()
        self._cache.clear()
