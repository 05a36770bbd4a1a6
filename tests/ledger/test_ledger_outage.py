"""PostgreSQL goes down mid-load and comes back: every request is in the ledger exactly once,
and the rollups still equal the raw rows. Keeps the outage to about two seconds because other
test runs share the server; the server is restarted in `finally` whatever happens."""

from __future__ import annotations

import asyncio
import subprocess
import time
from pathlib import Path

import pytest

from gateway.db.engine import create_db_engine
from gateway.db.migrate import upgrade
from gateway.ledger.writer import Ledger, LedgerOptions
from tests.support.ledger import (
    assert_rollups_match_raw,
    duplicate_rows,
    postgres_up,
    record,
    temp_postgres,
)

pytestmark = pytest.mark.postgres


def _cluster(action: str) -> None:
    version = sorted(p.name for p in Path("/etc/postgresql").iterdir())[0]
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", action],
        check=True,
        capture_output=True,
        timeout=60,
    )


def _ensure_started() -> None:
    if not postgres_up():
        _cluster("start")
    deadline = time.monotonic() + 30
    while not postgres_up() and time.monotonic() < deadline:
        time.sleep(0.2)


def test_postgres_outage_mid_load_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    with temp_postgres() as url:
        upgrade(url)
        submitted: list[str] = []
        max_spooled = 0

        async def scenario() -> None:
            nonlocal max_spooled
            ledger = await Ledger.open(
                database_url=url,
                spool_dir=tmp_path / "spool",
                options=LedgerOptions(batch_interval_s=0.05, retry_interval_s=0.2),
            )
            stop = asyncio.Event()

            async def produce() -> None:
                i = 0
                while not stop.is_set():
                    rid = f"load-{i:06d}"
                    ledger.submit(record(rid, started_at=1_767_225_600.0 + 7 * i))
                    submitted.append(rid)
                    i += 1
                    await asyncio.sleep(0.002)

            async def watch() -> None:
                nonlocal max_spooled
                while not stop.is_set():
                    max_spooled = max(max_spooled, ledger.spool_depth)
                    await asyncio.sleep(0.01)

            producer = asyncio.create_task(produce())
            watcher = asyncio.create_task(watch())
            try:
                await asyncio.sleep(0.5)
                try:
                    await asyncio.to_thread(_cluster, "stop")
                    await asyncio.sleep(1.0)
                    assert not await ledger.ping()
                finally:
                    await asyncio.to_thread(_ensure_started)
                await asyncio.sleep(0.5)
                stop.set()
                await producer
                await watcher
                deadline = time.monotonic() + 30
                await ledger.flush()
                while ledger.spool_depth and time.monotonic() < deadline:
                    await asyncio.sleep(0.2)
                    await ledger.flush()
                assert ledger.spool_depth == 0
            finally:
                stop.set()
                await ledger.aclose()

        try:
            asyncio.run(scenario())
        finally:
            _ensure_started()
        assert max_spooled > 0, "the outage never reached the spool"
        engine = create_db_engine(url)
        try:
            totals = assert_rollups_match_raw(engine)
            assert duplicate_rows(engine) == 0
            assert totals["requests"] == len(submitted) == len(set(submitted))
            assert totals["attempts"] == len(submitted)
            assert totals["cost_nanos"] == 1_000 * len(submitted)
        finally:
            engine.dispose()
