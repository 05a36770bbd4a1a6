"""Spend reports read from the rollups only: a summary, a time series, escalations by reason.

Shared by `stepgate costs` and `GET /v1/spend/*`, so both show identical figures. A window
[since, until) is resolved to the minute and covered exactly by day rows in its middle, hour
rows next to them and minute rows at the edges, so even a `--since 7d` report reads at most a
few hundred rollup rows per dimension combination and never a raw request.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Table,
    and_,
    false,
    func,
    literal,
    or_,
    select,
)

from gateway.core.money import format_usd
from gateway.ledger import histogram
from gateway.ledger.tables import (
    DIMENSIONS,
    ESCALATION_SUM_COLUMNS,
    GRAINS,
    VALUE_COLUMNS,
    escalation_rollups,
    rollups,
)

Grain = Literal["minute", "hour", "day"]
GroupBy = Literal["route", "backend", "team", "kind", "day"]
GROUP_BYS: tuple[str, ...] = (*DIMENSIONS, "day")
MAX_POINTS = 5000

# Up to 12 ASCII digits: a longer number is no sensible window and would only cost time to parse.
_DURATION = re.compile(r"^\s*(\d{1,12})\s*([smhdw])\s*$", re.ASCII)
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
# Instants a report accepts: from the unix epoch to the last day of year 9999, so every window
# edge (rounded to its minute) is a valid datetime and fits a BIGINT column.
EARLIEST_S = 0
LATEST_S = 253_402_214_400  # 9999-12-31T00:00:00Z
_TIME_FORM = "use a duration (7d), unix seconds or ISO 8601, from 1970 to 9999"
# Filter values are compared with stored names; PostgreSQL text cannot hold NUL, and no stored
# name is longer than this.
MAX_FILTER_CHARS = 512


class QueryError(ValueError):
    """A report parameter is invalid; the message says which and what is accepted, `param`
    names the parameter where one is to blame."""

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


def parse_duration(text: str, *, param: str = "range") -> int:
    """Seconds in `30m`, `24h`, `7d`, `2w`."""
    match = _DURATION.match(text)
    if match is None or int(match.group(1)) <= 0:
        raise QueryError(
            f"invalid duration {text!r}: use a number and a unit, e.g. 30m, 24h, 7d", param=param
        )
    return int(match.group(1)) * _UNIT_S[match.group(2)]


def parse_instant(text: str, *, now: float, param: str = "since") -> float:
    """A duration back from now (`7d`), unix seconds, or an ISO 8601 time (UTC if no zone);
    always finite and in [EARLIEST_S, LATEST_S]."""
    if _DURATION.match(text):
        moment_s = now - parse_duration(text, param=param)
    else:
        number = _number(text)
        moment_s = _iso_instant(text, param=param) if number is None else number
    if not (math.isfinite(moment_s) and EARLIEST_S <= moment_s <= LATEST_S):
        raise QueryError(f"invalid time {text!r}: out of range; {_TIME_FORM}", param=param)
    return moment_s


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _iso_instant(text: str, *, param: str) -> float:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise QueryError(f"invalid time {text!r}: {_TIME_FORM}", param=param) from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def check_filter(value: str | None, *, param: str) -> str | None:
    """A filter value as given, or QueryError if no stored name could equal it."""
    if value is None:
        return None
    if "\x00" in value:
        raise QueryError(f"invalid {param}: it contains a NUL character (\\x00)", param=param)
    if len(value) > MAX_FILTER_CHARS:
        raise QueryError(f"invalid {param}: longer than {MAX_FILTER_CHARS} characters", param=param)
    return value


@dataclass(frozen=True, slots=True)
class Window:
    """[since, until) in unix seconds, both on minute boundaries (the rollups' resolution)."""

    since: int
    until: int

    @classmethod
    def resolve(
        cls, *, since: str | None = None, until: str | None = None, now: float | None = None
    ) -> Window:
        """`since` defaults to 7d and rounds down to its minute. Without `until` the window runs
        to the end of the current minute; an explicit `until` is exclusive, rounded up."""
        now = time.time() if now is None else now
        start = parse_instant(since or "7d", now=now, param="since")
        lo = int(start) - int(start) % 60
        if until is None:
            hi = int(now) - int(now) % 60 + 60
        else:
            end = parse_instant(until, now=now, param="until")
            hi = -(-int(end) // 60) * 60
            if hi < end:
                hi += 60
        if hi <= lo:
            raise QueryError("the window is empty: `since` must be before `until`", param="until")
        return cls(lo, hi)


@dataclass(frozen=True, slots=True)
class Filters:
    route: str | None = None
    backend: str | None = None
    team: str | None = None
    kind: str | None = None

    def __post_init__(self) -> None:
        for name in DIMENSIONS:
            check_filter(getattr(self, name), param=name)

    def items(self) -> dict[str, str]:
        return {name: getattr(self, name) for name in DIMENSIONS if getattr(self, name)}


@dataclass(slots=True)
class Figures:
    """Summed rollup columns and everything derived from them."""

    sums: dict[str, float] = field(default_factory=lambda: dict.fromkeys(VALUE_COLUMNS, 0))

    def add(self, other: Mapping[Any, Any]) -> None:
        for name in VALUE_COLUMNS:
            self.sums[name] += other[name] or 0

    def n(self, name: str) -> int:
        return int(self.sums[name])

    def to_json(self) -> dict[str, Any]:
        requests = self.n("requests")
        counts = [self.n(c) for c in histogram.COLUMNS]
        cost, baseline, savings = (
            self.n("cost_nanos"),
            self.n("baseline_cost_nanos"),
            self.n("savings_nanos"),
        )
        prompt, completion = self.n("prompt_tokens"), self.n("completion_tokens")
        return {
            "cost_nanos": cost,
            "cost_usd": format_usd(cost),
            "baseline_cost_nanos": baseline,
            "baseline_cost_usd": format_usd(baseline),
            "savings_nanos": savings,
            "savings_usd": format_usd(savings),
            "unknown_cost_attempts": self.n("unknown_cost_attempts"),
            "unknown_baseline_attempts": self.n("unknown_baseline_attempts"),
            "requests": requests,
            "errors": self.n("errors"),
            "escalations": self.n("escalations"),
            "escalation_rate": round(self.n("escalations") / requests, 4) if requests else None,
            "drafts": self.n("drafts"),
            "attempts": self.n("attempts"),
            "attempt_errors": self.n("attempt_errors"),
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "cached_tokens": self.n("cached_tokens"),
            "tokens": prompt + completion,
            "latency_mean_ms": round(self.sums["latency_ms_sum"] / requests, 1)
            if requests
            else None,
            "latency_p50_ms": histogram.percentile(counts, 0.50),
            "latency_p95_ms": histogram.percentile(counts, 0.95),
        }


def cover(window: Window, *, coarsest: Grain = "day") -> list[tuple[str, int, int]]:
    """(grain, lo, hi) pieces whose rollup rows add up to exactly `window`."""
    sizes = [size for grain, size in GRAINS.items() if size <= GRAINS[coarsest]]
    names = [grain for grain, size in GRAINS.items() if size <= GRAINS[coarsest]]

    def split(level: int, lo: int, hi: int) -> list[tuple[str, int, int]]:
        if level + 1 < len(sizes):
            size = sizes[level + 1]
            inner_lo, inner_hi = -(-lo // size) * size, hi - hi % size
            if inner_lo < inner_hi:
                return [
                    *split(level, lo, inner_lo),
                    *split(level + 1, inner_lo, inner_hi),
                    *split(level, inner_hi, hi),
                ]
        return [(names[level], lo, hi)] if lo < hi else []

    return split(0, window.since, window.until)


def _where(
    window: Window, filters: Filters, coarsest: Grain, table: Table = rollups
) -> ColumnElement[bool]:
    pieces = [
        and_(table.c.grain == grain, table.c.bucket_start >= lo, table.c.bucket_start < hi)
        for grain, lo, hi in cover(window, coarsest=coarsest)
    ]
    conditions = [or_(*pieces) if pieces else false()]
    conditions += [table.c[name] == value for name, value in filters.items().items()]
    return and_(*conditions)


def _sums() -> list[ColumnElement[Any]]:
    return [func.sum(rollups.c[name]).label(name) for name in VALUE_COLUMNS]


def _bucket(size: int) -> ColumnElement[Any]:
    return (rollups.c.bucket_start - rollups.c.bucket_start % size).label("bucket")


def _group_key(group_by: str) -> ColumnElement[Any]:
    if group_by == "day":
        return _bucket(GRAINS["day"]).label("key")
    if group_by not in DIMENSIONS:
        raise QueryError(
            f"invalid group_by {group_by!r}: use one of {', '.join(GROUP_BYS)}", param="group_by"
        )
    return rollups.c[group_by].label("key")


def _key_json(group_by: str, key: Any) -> Any:
    if group_by == "day":
        return _iso(int(key))
    return key or None  # "" stands for "no team" / "no final backend"


def _iso(unix_s: int) -> str:
    return datetime.fromtimestamp(unix_s, tz=UTC).isoformat().replace("+00:00", "Z")


def _head(window: Window, filters: Filters) -> dict[str, Any]:
    return {
        "since": _iso(window.since),
        "until": _iso(window.until),
        "filters": filters.items(),
    }


@contextmanager
def _reading(engine: Engine) -> Iterator[Connection]:
    """A read connection. On PostgreSQL, JIT is off (compiling the ~45 aggregates costs more
    than running them) and sorts get enough memory to stay off disk; both reset at rollback."""
    with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql("SET LOCAL jit = off")
            conn.exec_driver_sql("SET LOCAL work_mem = '64MB'")
        yield conn


def summary(
    engine: Engine, *, window: Window, filters: Filters, group_by: str | None = None
) -> dict[str, Any]:
    """Totals over the window and, with `group_by`, one entry per group (largest cost first)."""
    where = _where(window, filters, "day")
    totals = Figures()
    groups: list[dict[str, Any]] = []
    with _reading(engine) as conn:
        if group_by is None:
            row = conn.execute(select(*_sums()).where(where)).mappings().one()
            if row["requests"] is not None:
                totals.add(row)
        else:
            key = _group_key(group_by)
            stmt = select(key, *_sums()).where(where).group_by(key)
            figures: list[tuple[Any, Figures]] = []
            for row in conn.execute(stmt).mappings():
                one = Figures()
                one.add(row)
                totals.add(row)
                figures.append((row["key"], one))
            figures.sort(key=lambda kf: (-kf[1].n("cost_nanos"), str(kf[0])))
            if group_by == "day":
                figures.sort(key=lambda kf: int(kf[0]))
            groups = [{"key": _key_json(group_by, k), **f.to_json()} for k, f in figures]
    body = _head(window, filters)
    body["group_by"] = group_by
    body["totals"] = totals.to_json()
    if group_by is not None:
        body["groups"] = groups
    return body


def timeseries(
    engine: Engine,
    *,
    window: Window,
    filters: Filters,
    bucket: Grain = "hour",
    group_by: str | None = None,
) -> dict[str, Any]:
    """One point per bucket (and group); ungrouped series are filled with empty buckets.

    The first and last buckets hold only the part of them inside the window, so the points
    always add up to the summary of the same window.
    """
    if bucket not in GRAINS:
        raise QueryError(f"invalid bucket {bucket!r}: use minute, hour or day", param="bucket")
    size = GRAINS[bucket]
    first = window.since - window.since % size
    if (window.until - first) // size > MAX_POINTS:
        raise QueryError(
            f"{bucket} buckets over this window make more than {MAX_POINTS} points; "
            "use a coarser bucket or a shorter window",
            param="bucket",
        )
    if group_by == "day":
        raise QueryError(
            "group_by=day is for the summary; use bucket=day for a time series", param="group_by"
        )
    where = _where(window, filters, bucket)
    bucket_col = _bucket(size)
    columns: Sequence[ColumnElement[Any]] = (
        [bucket_col, _group_key(group_by)] if group_by else [bucket_col, literal("").label("key")]
    )
    stmt = select(*columns, *_sums()).where(where).group_by(*columns[: 2 if group_by else 1])
    points: dict[tuple[int, Any], Figures] = {}
    with _reading(engine) as conn:
        for row in conn.execute(stmt).mappings():
            figures = points.setdefault((int(row["bucket"]), row["key"]), Figures())
            figures.add(row)
    if group_by is None:
        for start in range(first, window.until, size):
            points.setdefault((start, ""), Figures())
    rendered: list[dict[str, Any]] = []
    for (start, key), figures in sorted(points.items(), key=lambda p: (p[0][0], str(p[0][1]))):
        point: dict[str, Any] = {"t": _iso(start)}
        if group_by:
            point["key"] = _key_json(group_by, key)
        point.update(figures.to_json())
        rendered.append(point)
    body = _head(window, filters)
    body["bucket"] = bucket
    body["group_by"] = group_by
    body["points"] = rendered
    return body


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _reason_json(sums: Mapping[str, int], route_requests: int, failed: int) -> dict[str, Any]:
    cost, extra = sums["cost_nanos"], sums["escalation_cost_nanos"]
    return {
        "requests": sums["requests"],
        "escalated": sums["escalated"],
        "drafts": sums["drafts"],
        # Of all the route's requests, and of its requests that failed a check.
        "rate": _rate(sums["requests"], route_requests),
        "share": _rate(sums["requests"], failed),
        "cost_nanos": cost,
        "cost_usd": format_usd(cost),
        "escalation_cost_nanos": extra,
        "escalation_cost_usd": format_usd(extra),
        "unknown_cost_attempts": sums["unknown_cost_attempts"],
    }


def escalations(engine: Engine, *, window: Window, filters: Filters) -> dict[str, Any]:
    """Per route: requests, escalations and drafts with their rates, and per escalation reason
    how many requests failed their check for it (escalated or drafted), the rate against the
    route's requests, the share of the route's failed checks, and what those requests and
    their escalation attempts cost. Routes are ordered by escalations, reasons by count."""
    if filters.backend:
        raise QueryError(
            "escalation reasons are kept per route, team and kind, not per backend: "
            "drop the backend filter",
            param="backend",
        )
    per_route = (
        select(
            rollups.c.route,
            func.sum(rollups.c.requests).label("requests"),
            func.sum(rollups.c.escalations).label("escalations"),
            func.sum(rollups.c.drafts).label("drafts"),
        )
        .where(_where(window, filters, "day"))
        .group_by(rollups.c.route)
    )
    table = escalation_rollups
    per_reason = (
        select(
            table.c.route,
            table.c.reason,
            *(func.sum(table.c[name]).label(name) for name in ESCALATION_SUM_COLUMNS),
        )
        .where(_where(window, filters, "day", table))
        .group_by(table.c.route, table.c.reason)
    )
    routes: dict[str, dict[str, int]] = {}
    reasons: dict[str, list[tuple[str, dict[str, int]]]] = {}
    with _reading(engine) as conn:
        for row in conn.execute(per_route).mappings():
            routes[row["route"]] = {
                k: int(row[k] or 0) for k in ("requests", "escalations", "drafts")
            }
        for row in conn.execute(per_reason).mappings():
            sums = {name: int(row[name] or 0) for name in ESCALATION_SUM_COLUMNS}
            reasons.setdefault(row["route"], []).append((row["reason"], sums))
    totals = dict.fromkeys(("requests", "escalations", "drafts", "failed", "extra"), 0)
    rendered: list[dict[str, Any]] = []
    for route in sorted(set(routes) | set(reasons)):
        figures = routes.get(route, dict.fromkeys(("requests", "escalations", "drafts"), 0))
        these = sorted(reasons.get(route, []), key=lambda rs: (-rs[1]["requests"], rs[0]))
        failed = sum(sums["requests"] for _, sums in these)
        extra = sum(sums["escalation_cost_nanos"] for _, sums in these)
        for name in ("requests", "escalations", "drafts"):
            totals[name] += figures[name]
        totals["failed"] += failed
        totals["extra"] += extra
        rendered.append(
            {
                "route": route,
                **figures,
                "failed_checks": failed,
                "escalation_rate": _rate(figures["escalations"], figures["requests"]),
                "draft_rate": _rate(figures["drafts"], figures["requests"]),
                "escalation_cost_nanos": extra,
                "escalation_cost_usd": format_usd(extra),
                "reasons": [
                    {"reason": reason, **_reason_json(sums, figures["requests"], failed)}
                    for reason, sums in these
                ],
            }
        )
    rendered.sort(key=lambda r: (-r["failed_checks"], -r["escalations"], r["route"]))
    body = _head(window, filters)
    body["totals"] = {
        "requests": totals["requests"],
        "escalations": totals["escalations"],
        "drafts": totals["drafts"],
        "failed_checks": totals["failed"],
        "escalation_rate": _rate(totals["escalations"], totals["requests"]),
        "draft_rate": _rate(totals["drafts"], totals["requests"]),
        "escalation_cost_nanos": totals["extra"],
        "escalation_cost_usd": format_usd(totals["extra"]),
    }
    overall: dict[str, dict[str, int]] = {}
    for these in reasons.values():
        for reason, sums in these:
            acc = overall.setdefault(reason, dict.fromkeys(ESCALATION_SUM_COLUMNS, 0))
            for name, value in sums.items():
                acc[name] += value
    body["reasons"] = [
        {"reason": reason, **_reason_json(sums, totals["requests"], totals["failed"])}
        for reason, sums in sorted(overall.items(), key=lambda rs: (-rs[1]["requests"], rs[0]))
    ]
    body["routes"] = rendered
    return body
