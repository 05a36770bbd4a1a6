"""Budgets: UTC day/month periods, the cost estimate reserved before a call, ledger seeds.

A budget counter holds spent + reserved nano-dollars for one (scope, id, period). Its key names
the period (`...:d2026-11-26`), so a new day starts a new counter; a missing counter (new
period, or a store that lost its data) is seeded from the ledger with set-if-absent, so
replicas seeding at the same time never add up.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal

from sqlalchemy import Engine, func, select

from gateway.core.profile import StepProfile
from gateway.core.types import ChatRequest, Usage
from gateway.ledger.tables import requests, rollups
from gateway.routing import RouteDecision
from gateway.runtime import Generation

Scope = Literal["key", "team"]
Period = Literal["daily", "monthly"]
# Counters outlive their period by a day so late settles still land on them.
GRACE_S = 86_400
MAX_ESTIMATE = 2**50


@dataclass(frozen=True, slots=True)
class PeriodWindow:
    period: Period
    start: datetime
    end: datetime
    tag: str = field(init=False)
    end_s: float = field(init=False)

    def __post_init__(self) -> None:
        fmt = "d%Y-%m-%d" if self.period == "daily" else "m%Y-%m"
        object.__setattr__(self, "tag", self.start.strftime(fmt))
        object.__setattr__(self, "end_s", self.end.timestamp())

    def ttl_s(self, now_s: float) -> int:
        return max(1, int(self.end_s - now_s)) + GRACE_S


def window(period: Period, now: datetime) -> PeriodWindow:
    day = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "daily":
        return PeriodWindow(period, day, day + timedelta(days=1))
    start = day.replace(day=1)
    end = (start + timedelta(days=32)).replace(day=1)
    return PeriodWindow(period, start, end)


class Periods:
    """The current day and month windows, recomputed only when the UTC day changes (building
    them costs tens of microseconds; the hot path reads them on every request)."""

    def __init__(self) -> None:
        self._day = -1
        self._windows: dict[Period, PeriodWindow] = {}

    def current(self, now_s: float) -> dict[Period, PeriodWindow]:
        day = int(now_s // 86_400)
        if day != self._day:
            now = datetime.fromtimestamp(now_s, tz=UTC)
            self._windows = {"daily": window("daily", now), "monthly": window("monthly", now)}
            self._day = day
        return self._windows


@dataclass(frozen=True, slots=True)
class Estimate:
    tokens: int
    cost_nanos: int


def estimate(
    request: ChatRequest, profile: StepProfile, decision: RouteDecision, gen: Generation
) -> Estimate:
    """What the call may cost at most: estimated prompt tokens plus the output cap (or the
    profile's expected output when the caller set none), priced at the dearest backend the
    route may use (target, fallbacks, escalation target)."""
    prompt = profile.prompt_tokens
    output = request.output_limit() or profile.expected_output_tokens
    usage = Usage(prompt_tokens=prompt, completion_tokens=output)
    # GPU-hour prices need a duration: assume a slow 100 tokens/s plus a second of overhead.
    elapsed_s = 1.0 + output / 100
    backends = set(decision.candidates)
    if decision.escalation is not None and decision.escalation.to is not None:
        backends.add(decision.escalation.to)
    cost = 0
    for name in backends:
        price = gen.pricebook.cost(name, usage, elapsed_s=elapsed_s)
        if price is not None and price > cost:
            cost = price
    # Clamped well inside int64 (and a Lua double's exact range) whatever a price or a cap says.
    return Estimate(tokens=min(prompt + output, MAX_ESTIMATE), cost_nanos=min(cost, MAX_ESTIMATE))


def spent_nanos(engine: Engine, *, scope: Scope, ident: str, since: datetime) -> int:
    """Spend recorded in the ledger for a key or team since `since` (UTC)."""
    if scope == "key":
        stmt = select(func.coalesce(func.sum(requests.c.cost_nanos), 0)).where(
            requests.c.api_key_id == ident, requests.c.started_at >= since
        )
    else:
        # Team spend from the day rollups (period starts are day-aligned).
        stmt = select(func.coalesce(func.sum(rollups.c.cost_nanos), 0)).where(
            rollups.c.grain == "day",
            rollups.c.team == ident,
            rollups.c.bucket_start >= int(since.timestamp()),
        )
    with engine.connect() as conn:
        return int(conn.execute(stmt).scalar_one())
