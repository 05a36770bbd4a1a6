"""Rollup deltas from ledger records, and the dialect-specific upsert that adds them.

Only rows that were actually inserted contribute (the caller passes those), so replaying a
record that is already stored never changes a rollup. `Deltas` feed `rollups`; `ReasonDeltas`
feed `escalation_rollups` (requests whose cheap answer failed its check, per reason).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, Executable, Table
from sqlalchemy.dialects import postgresql, sqlite

from gateway.core.records import AttemptRecord, RequestRecord
from gateway.ledger import histogram
from gateway.ledger.tables import (
    ESCALATION_KEY_COLUMNS,
    ESCALATION_SUM_COLUMNS,
    GRAINS,
    KEY_COLUMNS,
    NAME_LEN,
    VALUE_COLUMNS,
    escalation_rollups,
    rollups,
)

RollupKey = tuple[str, int, str, str, str, str]
Deltas = dict[RollupKey, dict[str, int | float]]
# (grain, bucket_start, route, team, kind, reason)
ReasonDeltas = dict[RollupKey, dict[str, int | float]]
UNSPECIFIED = "unspecified"


def _keys(record: RequestRecord, backend: str | None) -> list[RollupKey]:
    started = int(record.started_at)
    dims = (record.route, backend or "", record.team or "", record.step_kind)
    return [(grain, started - started % size, *dims) for grain, size in GRAINS.items()]


def _add(deltas: Deltas, keys: Iterable[RollupKey], values: dict[str, int | float]) -> None:
    for key in keys:
        row = deltas.setdefault(key, {})
        for name, value in values.items():
            row[name] = row.get(name, 0) + value


def add_request(deltas: Deltas, record: RequestRecord) -> None:
    """The request-level figures, counted under the request's final backend."""
    values: dict[str, int | float] = {
        "requests": 1,
        "errors": int(record.status >= 400),
        "escalations": int(record.escalated),
        "drafts": int(record.disposition == "draft"),
        "latency_ms_sum": record.latency_ms,
        histogram.COLUMNS[histogram.bucket_index(record.latency_ms)]: 1,
    }
    _add(deltas, _keys(record, record.final_backend), values)


def add_attempt(deltas: Deltas, record: RequestRecord, attempt: AttemptRecord) -> None:
    """The attempt-level figures (usage and money), counted under the attempt's backend."""
    cost, baseline = attempt.cost_nanos, attempt.baseline_cost_nanos
    values: dict[str, int | float] = {
        "attempts": 1,
        "attempt_errors": int(attempt.outcome == "error"),
        "prompt_tokens": attempt.prompt_tokens,
        "completion_tokens": attempt.completion_tokens,
        "cached_tokens": attempt.cached_tokens,
        "cost_nanos": cost or 0,
        "baseline_cost_nanos": baseline or 0,
        "savings_nanos": baseline - cost if cost is not None and baseline is not None else 0,
        "unknown_cost_attempts": int(cost is None),
        "unknown_baseline_attempts": int(baseline is None),
    }
    _add(deltas, _keys(record, attempt.backend), values)


def failed_check(record: RequestRecord) -> bool:
    """True when the request's cheap answer was not accepted (escalated or returned as a draft)."""
    return record.escalation_reason is not None or record.escalated or record.disposition == "draft"


def _reason_keys(record: RequestRecord) -> list[RollupKey]:
    started = int(record.started_at)
    reason = (record.escalation_reason or UNSPECIFIED)[:NAME_LEN]
    dims = (record.route, record.team or "", record.step_kind, reason)
    return [(grain, started - started % size, *dims) for grain, size in GRAINS.items()]


def add_reason_request(deltas: ReasonDeltas, record: RequestRecord) -> None:
    """Count a stored request under its escalation reason (no-op for an accepted answer)."""
    if not failed_check(record):
        return
    values: dict[str, int | float] = {
        "requests": 1,
        "escalated": int(record.escalated),
        "drafts": int(record.disposition == "draft"),
    }
    _add(deltas, _reason_keys(record), values)


def add_reason_attempt(deltas: ReasonDeltas, record: RequestRecord, attempt: AttemptRecord) -> None:
    """Add a stored attempt's cost to its request's reason row (no-op for accepted answers)."""
    if not failed_check(record):
        return
    cost = attempt.cost_nanos
    values: dict[str, int | float] = {
        "cost_nanos": cost or 0,
        "escalation_cost_nanos": (cost or 0) if attempt.role == "escalation" else 0,
        "unknown_cost_attempts": int(cost is None),
    }
    _add(deltas, _reason_keys(record), values)


def _upsert(
    conn: Connection,
    table: Table,
    keys: tuple[str, ...],
    values: tuple[str, ...],
    deltas: dict[RollupKey, dict[str, int | float]],
) -> None:
    if not deltas:
        return
    rows: list[dict[str, Any]] = []
    for key in sorted(deltas):
        row: dict[str, Any] = dict.fromkeys(values, 0)
        row.update(zip(keys, key, strict=True))
        row.update(deltas[key])
        rows.append(row)
    conn.execute(_upsert_statement(conn.dialect.name, table, keys, values), rows)


@functools.cache
def _upsert_statement(
    dialect: str, table: Table, keys: tuple[str, ...], values: tuple[str, ...]
) -> Executable:
    """Built once per dialect and table: building it costs more than a typical batch's rows."""
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(table)
    return stmt.on_conflict_do_update(
        index_elements=list(keys),
        set_={name: table.c[name] + stmt.excluded[name] for name in values},
    )


def upsert(conn: Connection, deltas: Deltas, reasons: ReasonDeltas | None = None) -> None:
    """Add `deltas` to the rollup rows and `reasons` to the escalation rollup rows, creating
    missing ones (ON CONFLICT ... DO UPDATE).

    Rows are written in key order, `rollups` first, so concurrent writers lock them in the
    same order.
    """
    _upsert(conn, rollups, KEY_COLUMNS, VALUE_COLUMNS, deltas)
    _upsert(conn, escalation_rollups, ESCALATION_KEY_COLUMNS, ESCALATION_SUM_COLUMNS, reasons or {})
