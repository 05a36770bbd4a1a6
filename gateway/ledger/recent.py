"""Dashboard reads that the rollups cannot answer: recent requests, top keys, known teams.

Every query is bounded by a window on `requests.started_at` (index `ix_requests_started_at`,
or `ix_requests_team_started_at` with a team filter). The recent-requests list is keyset
paginated on (started_at, request_id), newest first, so page N costs the same as page 1.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    and_,
    desc,
    func,
    literal,
    or_,
    select,
    tuple_,
)

from gateway.core.money import format_usd
from gateway.ledger.queries import EARLIEST_S, LATEST_S, Filters, QueryError, Window
from gateway.ledger.tables import GRAINS, requests, rollups

MAX_PAGE = 200
TOP_LIMIT = 10
# Top keys sum raw rows (keys are no rollup dimension): they read at most this much of the
# window, the most recent part, so they stay fast on a large ledger.
RAW_MAX_SPAN_S = 7 * 86400
# A cursor is a timestamp and a request id, base64-encoded: far shorter than this.
MAX_CURSOR_CHARS = 512

# Filters name the rollup dimensions; these are the same facts on the raw rows.
_FILTER_COLUMNS = {
    "route": requests.c.route,
    "backend": requests.c.final_backend,
    "team": requests.c.team,
    "kind": requests.c.step_kind,
}


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where the next page starts: strictly older than (started_at, request_id)."""

    started_at: datetime
    request_id: str

    def encode(self) -> str:
        raw = orjson.dumps([self.started_at.timestamp(), self.request_id])
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> Cursor:
        """The cursor `encode` made; QueryError for anything else (it comes from the caller)."""
        invalid = QueryError(
            f"invalid cursor {text[:80]!r}: pass back `next_cursor` exactly as given",
            param="cursor",
        )
        if len(text) > MAX_CURSOR_CHARS:
            raise invalid
        try:
            stamp, rid = orjson.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
        except (ValueError, TypeError) as exc:  # binascii.Error and JSONDecodeError included
            raise invalid from exc
        if not (
            isinstance(stamp, int | float)
            and not isinstance(stamp, bool)
            and EARLIEST_S <= stamp <= LATEST_S
            and isinstance(rid, str)
            and 0 < len(rid) <= MAX_CURSOR_CHARS
            and "\x00" not in rid
        ):
            raise invalid
        return cls(datetime.fromtimestamp(stamp, tz=UTC), rid)


@contextmanager
def _reading(engine: Engine) -> Iterator[Connection]:
    """A read connection; on PostgreSQL without JIT, which costs more than these queries."""
    with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql("SET LOCAL jit = off")
        yield conn


def _where(window: Window, filters: Filters) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = [
        requests.c.started_at >= datetime.fromtimestamp(window.since, tz=UTC),
        requests.c.started_at < datetime.fromtimestamp(window.until, tz=UTC),
    ]
    conditions += [_FILTER_COLUMNS[name] == value for name, value in filters.items().items()]
    return conditions


def _iso(moment: datetime) -> str:
    if moment.tzinfo is None:  # SQLite hands back naive UTC
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _usd(nanos: int | None) -> str | None:
    return None if nanos is None else format_usd(nanos)


def _head(window: Window, filters: Filters) -> dict[str, Any]:
    return {
        "since": datetime.fromtimestamp(window.since, tz=UTC).isoformat().replace("+00:00", "Z"),
        "until": datetime.fromtimestamp(window.until, tz=UTC).isoformat().replace("+00:00", "Z"),
        "filters": filters.items(),
    }


def recent_requests(
    engine: Engine,
    *,
    window: Window,
    filters: Filters,
    limit: int = 50,
    cursor: Cursor | None = None,
    escalated_only: bool = False,
) -> dict[str, Any]:
    """Newest requests first, `limit` per page; `next_cursor` is None on the last page."""
    if not 1 <= limit <= MAX_PAGE:
        raise QueryError(f"invalid limit {limit}: use a whole number from 1 to {MAX_PAGE}",
                         param="limit")  # fmt: skip
    conditions = _where(window, filters)
    if escalated_only:
        conditions.append(requests.c.escalated.is_(True))
    if cursor is not None:
        conditions.append(
            tuple_(requests.c.started_at, requests.c.request_id)
            < tuple_(literal(cursor.started_at), literal(cursor.request_id))
            if engine.dialect.name == "postgresql"
            else or_(
                requests.c.started_at < cursor.started_at,
                and_(
                    requests.c.started_at == cursor.started_at,
                    requests.c.request_id < cursor.request_id,
                ),
            )
        )
    stmt = (
        select(
            requests.c.request_id,
            requests.c.client_request_id,
            requests.c.started_at,
            requests.c.api_key_id,
            requests.c.team,
            requests.c.route,
            requests.c.step_kind,
            requests.c.final_backend,
            requests.c.status,
            requests.c.error_class,
            requests.c.latency_ms,
            requests.c.escalated,
            requests.c.escalation_reason,
            requests.c.disposition,
            requests.c.confidence,
            requests.c.attempt_count,
            requests.c.prompt_tokens,
            requests.c.completion_tokens,
            requests.c.cost_nanos,
            requests.c.baseline_cost_nanos,
        )
        .where(and_(*conditions))
        .order_by(desc(requests.c.started_at), desc(requests.c.request_id))
        .limit(limit + 1)
    )
    with _reading(engine) as conn:
        rows = list(conn.execute(stmt).mappings())
    more = len(rows) > limit
    rows = rows[:limit]
    items = [
        {
            "request_id": r["request_id"],
            "client_request_id": r["client_request_id"],
            "started_at": _iso(r["started_at"]),
            "api_key_id": r["api_key_id"],
            "team": r["team"],
            "route": r["route"],
            "kind": r["step_kind"],
            "backend": r["final_backend"],
            "status": r["status"],
            "error_class": r["error_class"],
            "latency_ms": round(float(r["latency_ms"]), 1),
            "escalated": bool(r["escalated"]),
            "escalation_reason": r["escalation_reason"],
            "disposition": r["disposition"],
            "confidence": r["confidence"],
            "attempts": r["attempt_count"],
            "tokens": int(r["prompt_tokens"]) + int(r["completion_tokens"]),
            "cost_nanos": r["cost_nanos"],
            "cost_usd": _usd(r["cost_nanos"]),
            "baseline_cost_nanos": r["baseline_cost_nanos"],
            "baseline_cost_usd": _usd(r["baseline_cost_nanos"]),
        }
        for r in rows
    ]
    next_cursor = None
    if more and rows:
        last = rows[-1]
        started = last["started_at"]
        if started.tzinfo is None:
            started = started.replace(tzinfo=UTC)
        next_cursor = Cursor(started, last["request_id"]).encode()
    body = _head(window, filters)
    body.update({"limit": limit, "items": items, "next_cursor": next_cursor})
    return body


def _capped(window: Window, max_span_s: int) -> tuple[Window, bool]:
    """The last `max_span_s` of `window` (a "7d" window runs to the end of the current minute:
    that minute is allowed before capping)."""
    if window.until - window.since > max_span_s + GRAINS["minute"]:
        return Window(window.until - max_span_s, window.until), True
    return window, False


def top_keys(
    engine: Engine,
    *,
    window: Window,
    filters: Filters,
    limit: int = TOP_LIMIT,
    max_span_s: int = RAW_MAX_SPAN_S,
) -> dict[str, Any]:
    """API keys by spend, largest first (requests without a key as None).

    Keys are not a rollup dimension, so this sums raw rows; to stay fast on a large ledger it
    reads at most the last `max_span_s` seconds of the window (`capped` says so, and `since`
    is the start actually read).
    """
    if not 1 <= limit <= MAX_PAGE:
        raise QueryError(f"invalid limit {limit}: use a whole number from 1 to {MAX_PAGE}",
                         param="limit")  # fmt: skip
    read, capped = _capped(window, max_span_s)
    cost = func.sum(func.coalesce(requests.c.cost_nanos, 0))
    stmt = (
        select(
            requests.c.api_key_id,
            func.count().label("requests"),
            cost.label("cost_nanos"),
            func.sum(func.coalesce(requests.c.baseline_cost_nanos, 0)).label("baseline_nanos"),
            # A key belongs to one team; max() picks it without a per-group DISTINCT sort.
            func.max(requests.c.team).label("team"),
        )
        .where(and_(*_where(read, filters)))
        .group_by(requests.c.api_key_id)
        .order_by(desc(cost), requests.c.api_key_id)
        .limit(limit)
    )
    with _reading(engine) as conn:
        rows: Sequence[Any] = list(conn.execute(stmt).mappings())
    body = _head(read, filters)
    body["capped"] = capped
    body["requested_since"] = _head(window, filters)["since"]
    body["keys"] = [
        {
            "api_key_id": r["api_key_id"],
            "team": r["team"],
            "requests": int(r["requests"]),
            "cost_nanos": int(r["cost_nanos"] or 0),
            "cost_usd": format_usd(int(r["cost_nanos"] or 0)),
            "baseline_cost_nanos": int(r["baseline_nanos"] or 0),
            "baseline_cost_usd": format_usd(int(r["baseline_nanos"] or 0)),
        }
        for r in rows
    ]
    return body


def known_teams(engine: Engine, *, days: int = 90, now: float | None = None) -> list[str]:
    """Teams seen in the day rollups of the last `days` days, for the team filter."""
    now = time.time() if now is None else now
    since = int(now) - int(now) % GRAINS["day"] - days * GRAINS["day"]
    stmt = (
        select(rollups.c.team)
        .where(rollups.c.grain == "day", rollups.c.bucket_start >= since, rollups.c.team != "")
        .distinct()
        .order_by(rollups.c.team)
    )
    with _reading(engine) as conn:
        return [str(team) for team in conn.execute(stmt).scalars()]
