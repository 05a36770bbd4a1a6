"""The limits store interface: token buckets, budget counters and cache entries.

Two implementations: `memory.MemoryStore` (one process, the embedded default) and
`redis_store.RedisStore` (shared by replicas; every admit/settle is one atomic Lua script).
Both implement the same semantics, which the tests run against each:

* `admit` checks every counter and bucket and, only if all pass, charges all of them; nothing
  changes otherwise. A counter that has no value yet is reported `unseeded` (nothing changes):
  the caller seeds it from the ledger with `seed` (set-if-absent) and calls `admit` again.
* budget counters admit while `value < limit` and then add the reservation, so concurrent
  requests overshoot a budget by at most the last admitted reservation;
* buckets hold `capacity` tokens refilled at `capacity` per minute; a request needs
  `min(amount, capacity)` tokens and is charged `amount` (a bucket may go into debt);
* `settle` applies deltas (actual - reserved) and never creates a counter: a counter lost with
  the store is re-seeded from the ledger, which will hold the settled request.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, NamedTuple, Protocol

WINDOW_S = 60.0  # bucket refill period: capacities are per minute


class StoreUnavailable(Exception):
    """The shared store could not be reached (connection-level failure)."""


class StoreRejected(Exception):
    """The store refused one request's data (e.g. a script error): that request fails; the
    store is not considered down."""


# Buckets and counters are built per request on the hot path: NamedTuples are the cheapest
# immutable records to construct.
class Bucket(NamedTuple):
    name: str  # limit name for errors and metrics, e.g. "key_rpm"
    key: str
    capacity: int
    amount: int


class Counter(NamedTuple):
    name: str  # e.g. "team_daily_budget"
    key: str
    limit: int
    amount: int  # the reservation, nano-dollars
    ttl_s: int  # expiry of a counter created by `seed`


@dataclass(frozen=True, slots=True)
class Admission:
    ok: bool
    denied: str | None = None  # the name of the limit that refused
    kind: Literal["rate", "budget", "unseeded", ""] = ""
    retry_after_s: float = 0.0
    unseeded: tuple[str, ...] = ()  # counter keys to seed before retrying


ADMITTED = Admission(ok=True)


class Seed(NamedTuple):
    key: str
    value: int
    ttl_s: int


class LimitStore(Protocol):
    async def admit(self, buckets: Sequence[Bucket], counters: Sequence[Counter]) -> Admission:
        """Check all, then charge all (atomically); raises StoreUnavailable."""

    async def settle(
        self, buckets: Sequence[tuple[Bucket, int]], counters: Sequence[tuple[str, int]]
    ) -> None:
        """Add token deltas to buckets and nano-dollar deltas to existing counters."""

    async def seed(self, seeds: Sequence[Seed]) -> None:
        """Set each counter to its value unless it already has one."""

    async def counter(self, key: str) -> int | None:
        """A counter's current value (spent + reserved), None when it has none."""

    async def cache_get(self, key: str) -> bytes | None: ...

    async def cache_put(self, key: str, value: bytes, ttl_s: int) -> None: ...

    async def claim(self, key: str, value: bytes, ttl_s: int) -> bytes | None:
        """Set `key` to `value` unless it holds one (atomically): None when this call set
        it, else the value already there."""

    async def forget(self, key: str) -> None: ...

    async def aclose(self) -> None: ...
