"""The Gate: what the request path asks of gateway/limits, in five calls.

    principal = await gate.authenticate(headers)          # 401 when required and bad/missing
    reservation = await gate.admit(principal, request, profile, decision, gen)  # 429 / 402
    hit = await gate.cached(principal, request, profile, gen)   # CachedAnswer | None
    gate.remember(principal, request, profile, gen, completion, backend)  # after a final answer
    gate.settle(reservation, record)                     # always, however the request ended

`settle` and `remember` never block: they queue work for one background task the Gate owns,
which merges queued deltas into one store call; `aclose` drains it. Limits come from the key
(`stepgate keys create --rpm ...`) and from the policy's `limits.teams`; while the store is
unreachable each limit follows its `on_store_error` mode (`open` admits, `closed` refuses).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from typing import NamedTuple

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from gateway.core.errors import BudgetExhausted, RateLimited, Unauthorized
from gateway.core.money import format_usd, usd_to_nanos
from gateway.core.profile import StepProfile
from gateway.core.records import RequestRecord
from gateway.core.types import ChatRequest, Completion
from gateway.limits import budgets, cache
from gateway.limits.keys import PREFIX, KeyCache, Principal, presented_key
from gateway.limits.memory import MemoryStore
from gateway.limits.store import Bucket, Counter, LimitStore, Seed, StoreUnavailable
from gateway.policy.limits_models import TeamLimits
from gateway.routing import RouteDecision
from gateway.runtime import Generation

log = logging.getLogger("stepgate.limits")

StoreErrorHook = Callable[[str, str], None]  # (limit name, mode), e.g. Metrics.store_error


class Reservation(NamedTuple):
    """What `admit` charged, to be corrected by `settle` with the actual figures."""

    buckets: tuple[Bucket, ...] = ()  # token buckets (tpm) to correct
    counters: tuple[Counter, ...] = ()
    tokens: int = 0
    cost_nanos: int = 0


NOTHING = Reservation()


@dataclass(frozen=True, slots=True)
class GateOptions:
    require_keys: bool = False
    key_prefix: str = "stepgate:"
    key_cache_ttl_s: float = 5.0


@dataclass(frozen=True, slots=True)
class _Limit:
    """One limit applying to a request, before it becomes a bucket or counter."""

    name: str
    mode: str  # "open" | "closed", or "settle" for a correction that could not be applied


class Gate:
    def __init__(
        self,
        *,
        store: LimitStore,
        engine: Engine,
        options: GateOptions = GateOptions(),
        on_store_error: StoreErrorHook | None = None,
    ) -> None:
        self.store = store
        self.engine = engine
        self.options = options
        self.keys = KeyCache(engine, ttl_s=options.key_cache_ttl_s)
        self._on_store_error = on_store_error
        self._settles: list[tuple[Reservation, int, int]] = []
        self._puts: list[tuple[str, bytes, int]] = []
        self._wakeup = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self._idle = asyncio.Event()
        self._idle.set()
        self._last_log = 0.0
        self._periods = budgets.Periods()

    @classmethod
    def build(
        cls,
        *,
        engine: Engine,
        redis_url: str | None,
        options: GateOptions = GateOptions(),
        on_store_error: StoreErrorHook | None = None,
        cache_max_entries: int = 10_000,
    ) -> Gate:
        """A Gate over Redis when `redis_url` is set, else over the in-process store."""
        store: LimitStore
        if redis_url:
            from gateway.limits.redis_store import RedisStore

            store = RedisStore(redis_url)
        else:
            store = MemoryStore(cache_max_entries=cache_max_entries)
        return cls(store=store, engine=engine, options=options, on_store_error=on_store_error)

    # -- authentication ----------------------------------------------------------------------

    async def authenticate(self, headers: Mapping[str, str]) -> Principal | None:
        """The caller's principal; None for an anonymous caller when keys are optional.

        A presented `sg-` key must be valid even when keys are optional: a revoked or unknown
        key is refused rather than silently served as anonymous.
        """
        key = presented_key(headers)
        if key is None or not key.startswith(PREFIX):
            if not self.options.require_keys:
                return None
            if key is None:
                raise Unauthorized(
                    "missing API key: send `Authorization: Bearer sg-...` (create one with "
                    "`stepgate keys create --team TEAM`)",
                    code="missing_api_key",
                )
            raise Unauthorized("invalid API key", code="invalid_api_key")
        principal = await self.keys.verify(key)
        if principal is None:
            raise Unauthorized("invalid or revoked API key", code="invalid_api_key")
        return principal

    # -- rate limits and budgets ---------------------------------------------------------------

    async def admit(
        self,
        principal: Principal | None,
        request: ChatRequest,
        profile: StepProfile,
        decision: RouteDecision,
        gen: Generation,
    ) -> Reservation:
        """Charge the request against every limit that applies, or raise RateLimited (429)
        or BudgetExhausted (402). Anonymous callers have no limits."""
        if principal is None:
            return NOTHING
        limits = gen.policy.limits
        team_limits = limits.teams.get(principal.team, _NO_TEAM_LIMITS)
        rate_mode = team_limits.on_store_error or limits.on_store_error.rate
        budget_mode = team_limits.on_store_error or limits.on_store_error.budget
        p = self.options.key_prefix
        k, t = principal.limits, team_limits
        if not (k.rpm or k.tpm or k.daily_budget_nanos or k.monthly_budget_nanos) and not (
            t.rpm or t.tpm or t.daily_budget_usd or t.monthly_budget_usd
        ):
            return NOTHING
        guess = budgets.estimate(request, profile, decision, gen)
        scopes = (("key", principal.key_id), ("team", principal.team))
        buckets: list[Bucket] = []
        tpm: list[Bucket] = []
        for (scope, ident), rpm, tokens_pm in zip(
            scopes, (k.rpm, t.rpm), (k.tpm, t.tpm), strict=True
        ):
            if rpm:
                buckets.append(Bucket(f"{scope}_rpm", f"{p}rl:{scope}:{ident}:rpm", rpm, 1))
            if tokens_pm:
                bucket = Bucket(
                    f"{scope}_tpm", f"{p}rl:{scope}:{ident}:tpm", tokens_pm, guess.tokens
                )
                buckets.append(bucket)
                tpm.append(bucket)
        now_s = time.time()
        current = self._periods.current(now_s)
        counters: list[Counter] = []
        caps = (
            ("key", principal.key_id, "daily", k.daily_budget_nanos),
            ("key", principal.key_id, "monthly", k.monthly_budget_nanos),
            ("team", principal.team, "daily", _nanos(t.daily_budget_usd)),
            ("team", principal.team, "monthly", _nanos(t.monthly_budget_usd)),
        )
        windows: dict[str, tuple[budgets.Scope, str, budgets.PeriodWindow]] = {}
        for scope, ident, period, cap in caps:
            if cap is None:
                continue
            win = current[period]  # type: ignore[index]
            key = f"{p}b:{scope}:{ident}:{win.tag}"
            windows[key] = (scope, ident, win)  # type: ignore[assignment]
            counters.append(
                Counter(f"{scope}_{period}_budget", key, cap, guess.cost_nanos, win.ttl_s(now_s))
            )
        if not buckets and not counters:
            return NOTHING
        try:
            admission = await self.store.admit(buckets, counters)
            if admission.kind == "unseeded":
                await self._seed(admission.unseeded, counters, windows)
                admission = await self.store.admit(buckets, counters)
        except (StoreUnavailable, SQLAlchemyError) as exc:
            failing = [_Limit(b.name, rate_mode) for b in buckets]
            failing += [_Limit(c.name, budget_mode) for c in counters]
            self._store_failed(exc, failing)
            if any(f.mode == "closed" for f in failing):
                raise RateLimited(
                    "limits cannot be checked right now (limits store unreachable); retry shortly",
                    retry_after_s=1.0,
                    code="limits_store_unavailable",
                ) from exc
            return NOTHING
        if admission.ok:
            return Reservation(tuple(tpm), tuple(counters), guess.tokens, guess.cost_nanos)
        if admission.kind == "budget":
            counter = next(c for c in counters if c.name == admission.denied)
            scope, _, period = counter.name.partition("_")
            who = f"key {principal.key_id}" if scope == "key" else f"team {principal.team!r}"
            resets = windows[counter.key][2].end.strftime("%Y-%m-%dT%H:%MZ")
            raise BudgetExhausted(
                f"{who}: the {period.removesuffix('_budget')} budget of "
                f"${format_usd(counter.limit)} is spent; it resets at {resets}",
                code=f"{counter.name}_exhausted",
            )
        if admission.kind == "rate":
            bucket = next(b for b in buckets if b.name == admission.denied)
            scope, _, unit = bucket.name.partition("_")
            who = f"key {principal.key_id}" if scope == "key" else f"team {principal.team!r}"
            raise RateLimited(
                f"{who}: rate limit of {bucket.capacity} {unit} reached; retry after "
                f"{admission.retry_after_s:.1f}s",
                retry_after_s=admission.retry_after_s,
                code=f"{bucket.name}_exceeded",
            )
        # Still unseeded (the counter expired between seed and admit): refuse briefly.
        raise RateLimited("budget counters are being loaded; retry", retry_after_s=1.0)

    async def _seed(
        self,
        keys: tuple[str, ...],
        counters: list[Counter],
        windows: Mapping[str, tuple[budgets.Scope, str, budgets.PeriodWindow]],
    ) -> None:
        seeds = []
        for key in keys:
            counter = next(c for c in counters if c.key == key)
            scope, ident, win = windows[key]
            spent = await asyncio.to_thread(
                budgets.spent_nanos, self.engine, scope=scope, ident=ident, since=win.start
            )
            seeds.append(Seed(key, spent, counter.ttl_s))
        await self.store.seed(seeds)

    def settle(self, reservation: Reservation, record: RequestRecord) -> None:
        """Correct the reservation by what the request actually used. Never blocks or raises."""
        if reservation is NOTHING or (not reservation.buckets and not reservation.counters):
            return
        cost = record.cost_nanos
        actual_cost = reservation.cost_nanos if cost is None else cost
        tokens = sum(a.prompt_tokens + a.completion_tokens for a in record.attempts)
        self._settles.append((reservation, tokens, actual_cost))
        self._kick()

    # -- cache ---------------------------------------------------------------------------------

    async def cached(
        self,
        principal: Principal | None,
        request: ChatRequest,
        profile: StepProfile,
        gen: Generation,
    ) -> cache.CachedAnswer | None:
        policy = gen.policy.cache
        if not cache.eligible(policy, request, profile):
            return None
        key = cache.cache_key(self.options.key_prefix, _team(principal), request)
        try:
            raw = await self.store.cache_get(key)
        except StoreUnavailable as exc:
            self._store_failed(exc, [_Limit("cache", policy.on_store_error)])
            return None
        return None if raw is None else cache.decode(raw)

    def remember(
        self,
        principal: Principal | None,
        request: ChatRequest,
        profile: StepProfile,
        gen: Generation,
        completion: Completion,
        backend: str,
    ) -> None:
        """Store a final answer for eligible requests (queued; never blocks)."""
        policy = gen.policy.cache
        if not cache.eligible(policy, request, profile):
            return
        key = cache.cache_key(self.options.key_prefix, _team(principal), request)
        value = cache.encode(cache.CachedAnswer(completion, backend))
        self._puts.append((key, value, policy.ttl_s))
        self._kick()

    # -- the background task -------------------------------------------------------------------

    def _kick(self) -> None:
        self._idle.clear()
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="stepgate-limits-settle")
        self._wakeup.set()

    async def _run(self) -> None:
        while True:
            if not self._settles and not self._puts:
                self._idle.set()
                if self._closing:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            settles, self._settles = self._settles, []
            puts, self._puts = self._puts, []
            try:
                await self._apply(settles, puts)
            except Exception:  # the task must outlive any bug in one batch
                log.exception("limits: settle failed unexpectedly")

    async def _apply(
        self, settles: list[tuple[Reservation, int, int]], puts: list[tuple[str, bytes, int]]
    ) -> None:
        bucket_deltas: dict[str, tuple[Bucket, int]] = {}
        counter_deltas: dict[str, int] = {}
        names: set[str] = set()
        for reservation, tokens, cost in settles:
            for b in reservation.buckets:
                prev = bucket_deltas.get(b.key, (b, 0))[1]
                bucket_deltas[b.key] = (b, prev + reservation.tokens - tokens)
                names.add(b.name)
            for c in reservation.counters:
                counter_deltas[c.key] = counter_deltas.get(c.key, 0) + cost - reservation.cost_nanos
                names.add(c.name)
        if bucket_deltas or counter_deltas:
            try:
                await self.store.settle(
                    [v for v in bucket_deltas.values() if v[1]],
                    [(k, d) for k, d in counter_deltas.items() if d],
                )
            except StoreUnavailable as exc:
                # Counters lost with the store are re-seeded from the ledger, which has the cost.
                self._store_failed(exc, [_Limit(n, "settle") for n in sorted(names)])
        for key, value, ttl in puts:
            try:
                await self.store.cache_put(key, value, ttl)
            except StoreUnavailable as exc:
                self._store_failed(exc, [_Limit("cache", "open")])
                break

    async def flush(self) -> None:
        """Wait until everything queued so far has reached the store."""
        await self._idle.wait()

    async def aclose(self) -> None:
        self._closing = True
        self._wakeup.set()
        if self._task is not None:
            with contextlib.suppress(Exception):
                await self._task
        await self.store.aclose()

    def _store_failed(self, exc: BaseException, limits: list[_Limit]) -> None:
        if self._on_store_error is not None:
            for limit in limits:
                self._on_store_error(limit.name, limit.mode)
        now = time.monotonic()
        if now - self._last_log > 5.0:  # one line per 5 s, not one per request
            self._last_log = now
            modes = ", ".join(f"{limit.name}={limit.mode}" for limit in limits)
            log.warning("limits store error (%s); applying %s", exc, modes)


_NO_TEAM_LIMITS = TeamLimits()


def _nanos(usd: Decimal | None) -> int | None:
    return None if usd is None else _usd_nanos(usd)


@lru_cache(maxsize=1024)
def _usd_nanos(usd: Decimal) -> int:
    return usd_to_nanos(usd)


def _team(principal: Principal | None) -> str | None:
    return None if principal is None else principal.team
