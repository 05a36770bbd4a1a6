"""Writes one batch of ledger records in one transaction, idempotently.

Requests are keyed by `request_id`, which the gateway generates for every request (a caller's
own id is stored beside it, never used as a key: callers repeat ids), and attempts by
`(request_id, attempt)`; both inserts use ON CONFLICT DO NOTHING ... RETURNING (so a replayed
spool line is harmless), and only the rows that came back are added to the
rollups and escalation-reason rollups. Storing the same record twice therefore changes nothing.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, Executable
from sqlalchemy.dialects import postgresql, sqlite

from gateway.core.records import RequestRecord
from gateway.ledger import rollups
from gateway.ledger.tables import (
    CLIENT_ID_LEN,
    ID_LEN,
    NAME_LEN,
    REASON_LEN,
    SHORT_LEN,
    attempts,
    requests,
)


def _clip(value: str | None, size: int) -> str | None:
    return value if value is None or len(value) <= size else value[:size]


def _time(unix_s: float) -> datetime:
    return datetime.fromtimestamp(unix_s, tz=UTC)


def request_row(record: RequestRecord) -> dict[str, Any]:
    usage = [(a.prompt_tokens, a.completion_tokens, a.cached_tokens) for a in record.attempts]
    return {
        "request_id": record.request_id,
        "client_request_id": _clip(record.client_request_id, CLIENT_ID_LEN),
        "started_at": _time(record.started_at),
        "api_key_id": _clip(record.api_key_id, ID_LEN),
        "team": _clip(record.team, NAME_LEN),
        "route": _clip(record.route, NAME_LEN),
        "step_kind": _clip(record.step_kind, SHORT_LEN),
        "difficulty": record.difficulty,
        "final_backend": _clip(record.final_backend, NAME_LEN),
        "status": record.status,
        "error_class": _clip(record.error_class, NAME_LEN),
        "latency_ms": record.latency_ms,
        "ttft_ms": record.ttft_ms,
        "escalated": record.escalated,
        "confidence": record.confidence,
        "disposition": _clip(record.disposition, SHORT_LEN),
        "escalation_reason": _clip(record.escalation_reason, REASON_LEN),
        "stream": record.stream,
        "cache_hit": record.cache_hit,
        "attempt_count": len(record.attempts),
        "prompt_tokens": sum(u[0] for u in usage),
        "completion_tokens": sum(u[1] for u in usage),
        "cached_tokens": sum(u[2] for u in usage),
        "cost_nanos": record.cost_nanos,
        "baseline_cost_nanos": record.baseline_cost_nanos,
    }


def attempt_rows(record: RequestRecord) -> list[dict[str, Any]]:
    return [
        {
            "request_id": record.request_id,
            "attempt": a.attempt,
            "role": _clip(a.role, SHORT_LEN),
            "backend": _clip(a.backend, NAME_LEN),
            "backend_type": _clip(a.backend_type, SHORT_LEN),
            "model": _clip(a.model, REASON_LEN),
            "outcome": _clip(a.outcome, SHORT_LEN),
            "error_class": _clip(a.error_class, NAME_LEN),
            "prompt_tokens": a.prompt_tokens,
            "completion_tokens": a.completion_tokens,
            "cached_tokens": a.cached_tokens,
            "cost_nanos": a.cost_nanos,
            "baseline_cost_nanos": a.baseline_cost_nanos,
            "latency_ms": a.latency_ms,
            "started_at": _time(a.started_at),
        }
        for a in record.attempts
    ]


@functools.cache
def _inserts(dialect: str) -> tuple[Executable, Executable]:
    """The two idempotent inserts, built once per dialect (building them costs more than
    executing them for a typical batch)."""
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return (
        insert(requests).on_conflict_do_nothing().returning(requests.c.request_id),
        insert(attempts)
        .on_conflict_do_nothing()
        .returning(attempts.c.request_id, attempts.c.attempt),
    )


def write_batch(engine: Engine, records: Sequence[RequestRecord]) -> int:
    """Store `records` in one transaction; returns how many requests were new."""
    # A batch may hold the same request twice (e.g. a replayed spool line): keep the first.
    unique: dict[str, RequestRecord] = {}
    for record in records:
        unique.setdefault(record.request_id, record)
    if not unique:
        return 0
    with engine.begin() as conn:
        insert_requests, insert_attempts = _inserts(conn.dialect.name)
        new_requests = {
            row.request_id
            for row in conn.execute(insert_requests, [request_row(r) for r in unique.values()])
        }
        rows = [row for r in unique.values() for row in attempt_rows(r)]
        new_attempts: set[tuple[str, int]] = set()
        if rows:
            result = conn.execute(insert_attempts, rows)
            new_attempts = {(row.request_id, row.attempt) for row in result}
        deltas: rollups.Deltas = {}
        reasons: rollups.ReasonDeltas = {}
        for record in unique.values():
            if record.request_id in new_requests:
                rollups.add_request(deltas, record)
                rollups.add_reason_request(reasons, record)
            for attempt in record.attempts:
                if (record.request_id, attempt.attempt) in new_attempts:
                    rollups.add_attempt(deltas, record, attempt)
                    rollups.add_reason_attempt(reasons, record, attempt)
        rollups.upsert(conn, deltas, reasons)
    return len(new_requests)
