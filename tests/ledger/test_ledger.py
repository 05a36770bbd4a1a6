"""The ledger writer on SQLite and PostgreSQL: idempotent storage, rollups equal to the raw
rows, unknown prices, cancelled attempts, and the spool while the database is unreachable."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from gateway.db.migrate import upgrade
from gateway.ledger import histogram
from gateway.ledger.spool import PATTERN
from gateway.ledger.tables import attempts, requests, rollups
from gateway.ledger.writer import Ledger, LedgerOptions
from tests.support.ledger import (
    assert_rollups_match_raw,
    attempt,
    record,
    rollup_reasons,
    sqlite_url,
    temp_postgres,
)

FAST = LedgerOptions(batch_interval_s=0.02, retry_interval_s=0.05)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        url = sqlite_url(tmp_path)
        upgrade(url)
        yield url
    else:
        with temp_postgres() as url:
            upgrade(url)
            yield url


def test_records_are_stored_once_and_rollups_equal_raw_rows(
    database_url: str, tmp_path: Path
) -> None:
    escalated = record(
        "esc",
        escalated=True,
        latency_ms=900.0,
        attempts_=(
            attempt("esc", 0, backend="dllm", cost=1_000, baseline=4_000),
            attempt("esc", 1, backend="ar", role="escalation", cost=7_000, baseline=7_000),
        ),
    )
    drafted = record("draft", reason="low_token_confidence", disposition="draft")
    batch = [record(f"r{i}", latency_ms=10.0 * (i + 1)) for i in range(20)] + [escalated, drafted]

    async def scenario() -> None:
        ledger = await Ledger.open(database_url=database_url, spool_dir=tmp_path / "spool")
        try:
            for r in batch:
                ledger.submit(r)
            await ledger.flush()
            # The same records again (a retried submit, a replayed spool): nothing changes.
            for r in batch:
                ledger.submit(r)
            await ledger.flush()
            assert ledger.spool_depth == 0
            assert await ledger.ping()
        finally:
            await ledger.aclose()

    asyncio.run(scenario())
    from gateway.db.engine import create_db_engine

    engine = create_db_engine(database_url)
    try:
        totals = assert_rollups_match_raw(engine)
        assert totals["requests"] == 22
        assert totals["attempts"] == 23
        assert totals["cost_nanos"] == 21 * 1_000 + 8_000
        assert totals["baseline_cost_nanos"] == 21 * 5_000 + 11_000
        # Escalation reasons: counted once per failed check, with the escalation's own cost.
        assert rollup_reasons(engine, "minute") == {
            "low_confidence": (1, 1, 0, 8_000, 7_000),
            "low_token_confidence": (1, 0, 1, 1_000, 0),
        }
        with engine.connect() as conn:
            esc = conn.execute(
                select(rollups).where(rollups.c.grain == "day", rollups.c.backend == "ar")
            ).one()
            # The escalation attempt's money counts under its own backend; the request (and
            # its latency) under the final backend, which is also "ar" here.
            assert (esc.cost_nanos, esc.requests, esc.escalations) == (7_000, 1, 1)
            assert esc.lat_le_1000 == 1
            dllm = conn.execute(
                select(rollups).where(rollups.c.grain == "day", rollups.c.backend == "dllm")
            ).one()
            assert dllm.savings_nanos == 21 * 4_000 + 3_000
            stored = conn.execute(
                select(requests.c.cost_nanos, requests.c.baseline_cost_nanos).where(
                    requests.c.request_id == "esc"
                )
            ).one()
            assert tuple(stored) == (8_000, 11_000)
    finally:
        engine.dispose()


def test_unknown_price_is_null_counted_and_kept_out_of_savings(
    database_url: str, tmp_path: Path
) -> None:
    rid = "unknown-price"
    unknown = record(rid, attempts_=(attempt(rid, 0, backend="ar", cost=None, baseline=9_000),))

    async def scenario() -> None:
        ledger = await Ledger.open(database_url=database_url, spool_dir=tmp_path / "spool")
        ledger.submit(unknown)
        ledger.submit(record("known"))
        await ledger.aclose()

    asyncio.run(scenario())
    from gateway.db.engine import create_db_engine

    engine = create_db_engine(database_url)
    try:
        with engine.connect() as conn:
            assert (
                conn.execute(
                    select(requests.c.cost_nanos).where(requests.c.request_id == rid)
                ).scalar_one()
                is None
            )
            day = conn.execute(
                select(
                    func.sum(rollups.c.unknown_cost_attempts),
                    func.sum(rollups.c.cost_nanos),
                    func.sum(rollups.c.baseline_cost_nanos),
                    func.sum(rollups.c.savings_nanos),
                ).where(rollups.c.grain == "day")
            ).one()
        assert tuple(int(v) for v in day) == (1, 1_000, 14_000, 4_000)
    finally:
        engine.dispose()


def test_cancelled_stream_is_billed_for_partial_usage(database_url: str, tmp_path: Path) -> None:
    """A client that disconnects mid-stream: the attempt is 'cancelled' with the tokens
    generated so far, and its cost is stored and rolled up like any other."""
    rid = "disconnected"
    cut = attempt(
        rid,
        0,
        backend="ar",
        outcome="cancelled",
        prompt=300,
        completion=37,
        cost=1_234,
        baseline=1_234,
    )
    rec = record(rid, status=499, attempts_=(cut,))

    async def scenario() -> None:
        ledger = await Ledger.open(database_url=database_url, spool_dir=tmp_path / "spool")
        ledger.submit(rec)
        await ledger.aclose()

    asyncio.run(scenario())
    from gateway.db.engine import create_db_engine

    engine = create_db_engine(database_url)
    try:
        with engine.connect() as conn:
            row = conn.execute(select(attempts).where(attempts.c.request_id == rid)).one()
            assert (row.outcome, row.completion_tokens, row.cost_nanos) == ("cancelled", 37, 1_234)
        totals = assert_rollups_match_raw(engine)
        assert totals == {
            "requests": 1,
            "errors": 1,
            "attempts": 1,
            "cost_nanos": 1_234,
            "baseline_cost_nanos": 1_234,
            "tokens": 337,
            "unknown_cost_attempts": 0,
        }
    finally:
        engine.dispose()


def test_spools_while_schema_is_missing_and_replays_exactly_once(tmp_path: Path) -> None:
    """SQLite without tables behaves like an unreachable database: records are spooled to disk
    and replayed, once, when the database becomes usable."""
    url = sqlite_url(tmp_path)
    spool_dir = tmp_path / "spool"
    batch = [record(f"s{i}") for i in range(30)]

    async def scenario() -> None:
        ledger = await Ledger.open(database_url=url, spool_dir=spool_dir, options=FAST)
        try:
            for r in batch[:20]:
                ledger.submit(r)
            await ledger.flush()
            assert ledger.spool_depth == 20
            (spool_file,) = spool_dir.glob(PATTERN)
            assert len(spool_file.read_bytes().splitlines()) == 20
            await asyncio.to_thread(upgrade, url)
            for r in batch[10:]:  # ten of these are already spooled
                ledger.submit(r)
            await ledger.flush()
            assert ledger.spool_depth == 0
        finally:
            await ledger.aclose()

    asyncio.run(scenario())
    from gateway.db.engine import create_db_engine

    engine = create_db_engine(url)
    try:
        assert assert_rollups_match_raw(engine)["requests"] == 30
    finally:
        engine.dispose()
    assert list(spool_dir.glob(PATTERN)) == []


def test_spool_left_by_a_dead_process_is_adopted(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path)
    spool_dir = tmp_path / "spool"

    async def first() -> None:  # database unusable all along: records stay in the spool file
        ledger = await Ledger.open(database_url=url, spool_dir=spool_dir, options=FAST)
        for i in range(5):
            ledger.submit(record(f"o{i}"))
        await ledger.aclose()

    async def second() -> None:
        ledger = await Ledger.open(
            database_url=url, spool_dir=spool_dir, options=LedgerOptions(upgrade=True)
        )
        ledger.submit(record("fresh"))
        await ledger.aclose()

    asyncio.run(first())
    assert len(list(spool_dir.glob(PATTERN))) == 1
    asyncio.run(second())
    assert list(spool_dir.glob(PATTERN)) == []
    from gateway.db.engine import create_db_engine

    engine = create_db_engine(url)
    try:
        assert assert_rollups_match_raw(engine)["requests"] == 6
    finally:
        engine.dispose()


def test_latency_histogram_percentiles() -> None:
    counts = [0] * len(histogram.COLUMNS)
    for ms in [4.0] * 50 + [40.0] * 45 + [400.0] * 5:
        counts[histogram.bucket_index(ms)] += 1
    p50 = histogram.percentile(counts, 0.50)
    p95 = histogram.percentile(counts, 0.95)
    assert p50 is not None and 3 < p50 <= 5
    assert p95 is not None and 30 < p95 <= 50
    assert histogram.percentile([0] * len(counts), 0.5) is None
    assert histogram.bucket_index(5.0) == histogram.BOUNDS_MS.index(5)  # upper bound inclusive


def test_sqlite_batches_of_any_size_reuse_a_bounded_set_of_statements(tmp_path: Path) -> None:
    """sqlite3 caches a prepared statement per SQL text and connection; a multi-row insert has
    one text per row count. Batches of every size from 1 to 80 must map onto a bounded set of
    texts (fixed pages), or that cache grows the process by tens of MiB under load."""
    from sqlalchemy import event

    from gateway.db.engine import SQLITE_INSERT_PAGE_ROWS, create_db_engine
    from gateway.ledger.store import write_batch

    url = sqlite_url(tmp_path)
    upgrade(url)
    engine = create_db_engine(url)
    texts: set[str] = set()
    event.listen(engine, "before_cursor_execute", lambda *a: texts.add(a[2]))
    n = 0
    for size in range(1, 81):
        write_batch(engine, [record(f"b{n + i}") for i in range(size)])
        n += size
    inserts = [t for t in texts if t.lstrip().upper().startswith("INSERT INTO REQUESTS")]
    # one text per page length (full pages plus every possible remainder), not one per size
    assert len(inserts) <= SQLITE_INSERT_PAGE_ROWS < 40
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(requests)) == n
    assert_rollups_match_raw(engine)
    engine.dispose()
