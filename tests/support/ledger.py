"""Helpers shared by the ledger, spend and migration tests (no tests here)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import Engine, and_, func, literal, or_, select, text

from gateway.core.records import AttemptRecord, RequestRecord
from gateway.ledger import histogram
from gateway.ledger.tables import GRAINS, attempts, escalation_rollups, requests, rollups

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"


def postgres_up() -> bool:
    try:
        with psycopg.connect(PG_ADMIN, connect_timeout=2):
            return True
    except psycopg.OperationalError:
        return False


@contextmanager
def temp_postgres() -> Iterator[str]:
    """A fresh, empty PostgreSQL database, dropped afterwards."""
    if not postgres_up():
        pytest.fail("PostgreSQL is not running on 127.0.0.1:5432")
    name = f"stepgate_ledger_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'ledger.db'}"


def attempt(
    request_id: str,
    n: int,
    *,
    backend: str = "dllm",
    role: str = "primary",
    outcome: str = "ok",
    prompt: int = 100,
    completion: int = 20,
    cached: int = 0,
    cost: int | None = 1_000,
    baseline: int | None = 5_000,
    latency_ms: float = 40.0,
    started_at: float = 1_767_225_600.0,
) -> AttemptRecord:
    return AttemptRecord(
        request_id=request_id,
        attempt=n,
        role=role,  # type: ignore[arg-type]
        backend=backend,
        backend_type="dllm" if backend == "dllm" else "litellm",
        model=f"model-{backend}",
        outcome=outcome,  # type: ignore[arg-type]
        error_class=None if outcome == "ok" else "provider_unavailable",
        prompt_tokens=prompt,
        completion_tokens=completion,
        cached_tokens=cached,
        cost_nanos=cost,
        baseline_cost_nanos=baseline,
        latency_ms=latency_ms,
        started_at=started_at,
    )


def record(
    request_id: str | None = None,
    *,
    started_at: float = 1_767_225_600.0,  # 2026-01-01T00:00:00Z
    route: str = "fast",
    team: str | None = "support",
    kind: str = "classify",
    status: int = 200,
    latency_ms: float = 42.0,
    escalated: bool = False,
    reason: str | None = None,
    disposition: str = "final",
    attempts_: tuple[AttemptRecord, ...] | None = None,
) -> RequestRecord:
    rid = request_id or uuid.uuid4().hex
    tries = attempts_ if attempts_ is not None else (attempt(rid, 0, started_at=started_at),)
    return RequestRecord(
        request_id=rid,
        started_at=started_at,
        api_key_id="key-1",
        team=team,
        route=route,
        step_kind=kind,
        difficulty=0.2,
        final_backend=tries[-1].backend if tries else None,
        status=status,
        error_class=None if status < 400 else "provider_all_failed",
        latency_ms=latency_ms,
        ttft_ms=None,
        escalated=escalated,
        confidence=0.9,
        disposition=disposition,
        escalation_reason=reason or ("low_confidence" if escalated else None),
        stream=False,
        cache_hit=False,
        attempts=tries,
    )


def raw_totals(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        req = conn.execute(
            select(
                func.count(),
                func.count().filter(requests.c.status >= 400),
            )
        ).one()
        att = conn.execute(
            select(
                func.count(),
                func.coalesce(func.sum(attempts.c.cost_nanos), 0),
                func.coalesce(func.sum(attempts.c.baseline_cost_nanos), 0),
                func.coalesce(func.sum(attempts.c.prompt_tokens + attempts.c.completion_tokens), 0),
                func.count().filter(attempts.c.cost_nanos.is_(None)),
            )
        ).one()
    return {
        "requests": int(req[0]),
        "errors": int(req[1]),
        "attempts": int(att[0]),
        "cost_nanos": int(att[1]),
        "baseline_cost_nanos": int(att[2]),
        "tokens": int(att[3]),
        "unknown_cost_attempts": int(att[4]),
    }


def rollup_totals(engine: Engine, grain: str) -> dict[str, int]:
    hist = sum(rollups.c[c] for c in histogram.COLUMNS)
    with engine.connect() as conn:
        row = conn.execute(
            select(
                func.coalesce(func.sum(rollups.c.requests), 0),
                func.coalesce(func.sum(rollups.c.errors), 0),
                func.coalesce(func.sum(rollups.c.attempts), 0),
                func.coalesce(func.sum(rollups.c.cost_nanos), 0),
                func.coalesce(func.sum(rollups.c.baseline_cost_nanos), 0),
                func.coalesce(func.sum(rollups.c.prompt_tokens + rollups.c.completion_tokens), 0),
                func.coalesce(func.sum(rollups.c.unknown_cost_attempts), 0),
                func.coalesce(func.sum(hist), 0),
            ).where(rollups.c.grain == grain)
        ).one()
    totals = dict(
        zip(
            [
                "requests",
                "errors",
                "attempts",
                "cost_nanos",
                "baseline_cost_nanos",
                "tokens",
                "unknown_cost_attempts",
                "histogram",
            ],
            (int(v) for v in row),
            strict=True,
        )
    )
    assert totals.pop("histogram") == totals["requests"]
    return totals


def raw_reasons(engine: Engine) -> dict[str, tuple[int, int, int, int, int]]:
    """Per reason, from the raw rows: (requests, escalated, drafts, cost, escalation cost) of
    the requests whose cheap answer was not accepted."""
    failed = or_(
        requests.c.escalation_reason.is_not(None),
        requests.c.escalated.is_(True),
        requests.c.disposition == "draft",
    )
    reason = func.coalesce(requests.c.escalation_reason, literal("unspecified"))
    out: dict[str, list[int]] = {}
    with engine.connect() as conn:
        for row in conn.execute(select(requests).where(failed)).mappings():
            acc = out.setdefault(row["escalation_reason"] or "unspecified", [0, 0, 0, 0, 0])
            acc[0] += 1
            acc[1] += int(row["escalated"])
            acc[2] += int(row["disposition"] == "draft")
        stmt = (
            select(
                reason.label("reason"),
                func.coalesce(func.sum(attempts.c.cost_nanos), 0),
                func.coalesce(
                    func.sum(attempts.c.cost_nanos).filter(attempts.c.role == "escalation"), 0
                ),
            )
            .select_from(requests.join(attempts, attempts.c.request_id == requests.c.request_id))
            .where(failed)
            .group_by(reason)
        )
        for key, cost, extra in conn.execute(stmt).tuples():
            out[key][3] += int(cost)
            out[key][4] += int(extra)
    return {k: (v[0], v[1], v[2], v[3], v[4]) for k, v in out.items()}


def rollup_reasons(engine: Engine, grain: str) -> dict[str, tuple[int, int, int, int, int]]:
    t = escalation_rollups
    names = ("requests", "escalated", "drafts", "cost_nanos", "escalation_cost_nanos")
    with engine.connect() as conn:
        rows = conn.execute(
            select(t.c.reason, *(func.sum(t.c[n]) for n in names))
            .where(and_(t.c.grain == grain))
            .group_by(t.c.reason)
        ).all()
    return {r[0]: (int(r[1]), int(r[2]), int(r[3]), int(r[4]), int(r[5])) for r in rows}


def assert_rollups_match_raw(engine: Engine) -> dict[str, int]:
    raw = raw_totals(engine)
    reasons = raw_reasons(engine)
    for grain in GRAINS:
        assert rollup_totals(engine, grain) == raw, grain
        assert rollup_reasons(engine, grain) == reasons, grain
    return raw


def duplicate_rows(engine: Engine) -> int:
    """0 when every request_id is stored once (the PK guarantees it; checked anyway)."""
    with engine.connect() as conn:
        return int(
            conn.execute(
                text("SELECT count(*) - count(DISTINCT request_id) FROM requests")
            ).scalar_one()
        )
