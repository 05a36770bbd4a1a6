"""Helpers shared by the ledger, spend and migration tests (no tests here)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import Engine, func, select, text

from gateway.core.records import AttemptRecord, RequestRecord
from gateway.ledger import histogram
from gateway.ledger.tables import GRAINS, attempts, requests, rollups

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
        disposition="final",
        escalation_reason="low_confidence" if escalated else None,
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


def assert_rollups_match_raw(engine: Engine) -> dict[str, int]:
    raw = raw_totals(engine)
    for grain in GRAINS:
        assert rollup_totals(engine, grain) == raw, grain
    return raw


def duplicate_rows(engine: Engine) -> int:
    """0 when every request_id is stored once (the PK guarantees it; checked anyway)."""
    with engine.connect() as conn:
        return int(
            conn.execute(
                text("SELECT count(*) - count(DISTINCT request_id) FROM requests")
            ).scalar_one()
        )
