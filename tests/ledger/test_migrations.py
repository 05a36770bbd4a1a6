"""`alembic upgrade head` on an empty database matches the models exactly (no drift), on
SQLite and PostgreSQL; and the migration chain has one head."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect

from gateway.db.engine import create_db_engine, normalize_url
from gateway.db.migrate import alembic_config, upgrade
from gateway.db.registry import load_metadata
from tests.support.ledger import sqlite_url, temp_postgres


def _assert_no_drift(url: str) -> None:
    upgrade(url)
    engine = create_db_engine(url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            diffs = compare_metadata(context, load_metadata())
            tables = set(inspect(conn).get_table_names())
    finally:
        engine.dispose()
    assert diffs == []
    assert {"requests", "attempts", "rollups", "alembic_version"} <= tables


def test_sqlite_upgrade_head_has_no_drift(tmp_path: Path) -> None:
    _assert_no_drift(sqlite_url(tmp_path))


@pytest.mark.postgres
def test_postgres_upgrade_head_has_no_drift() -> None:
    with temp_postgres() as url:
        _assert_no_drift(url)


def test_single_head_and_stable_ledger_revision() -> None:
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    assert len(script.get_heads()) == 1
    # Later migrations (keys/teams) build on this id: it must never change.
    assert script.get_revision("0001_ledger_tables") is not None


def test_postgres_urls_are_normalised_to_psycopg() -> None:
    assert normalize_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalize_url("postgres://u:p%40@h:5/db") == "postgresql+psycopg://u:p%40@h:5/db"
    assert normalize_url("sqlite:///x.db") == "sqlite:///x.db"
    with pytest.raises(ValueError, match="unsupported"):
        normalize_url("mysql://u@h/db")


def test_start_up_head_check_names_alembic_head(tmp_path: Path) -> None:
    from gateway.db.engine import create_db_engine
    from gateway.db.migrate import upgrade
    from gateway.db.revision import HEAD_REVISION, at_head

    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    assert script.get_heads() == [HEAD_REVISION]
    url = f"sqlite:///{tmp_path}/head.db"
    engine = create_db_engine(url)
    assert not at_head(engine)  # empty database: the gateway must migrate at start-up
    upgrade(url)
    assert at_head(engine)
    engine.dispose()


def _upgrade_keeps_rows_from_0002(url: str) -> None:
    from datetime import UTC, datetime

    from sqlalchemy import text

    from gateway.db.engine import create_db_engine
    from gateway.db.migrate import upgrade

    upgrade(url, "0002_keys_teams")
    engine = create_db_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO requests (request_id, started_at, route, step_kind, difficulty,"
                    " status, latency_ms, escalated, disposition, stream, cache_hit,"
                    " attempt_count, prompt_tokens, completion_tokens, cached_tokens)"
                    " VALUES ('old-1', :at, 'fast', 'classify', 0.1, 200, 5.0, false, 'final',"
                    " false, false, 1, 10, 2, 0)"
                ),
                {"at": datetime(2026, 11, 30, tzinfo=UTC)},
            )
        upgrade(url)
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT request_id, client_request_id FROM requests")).all()
    finally:
        engine.dispose()
    assert [tuple(r) for r in rows] == [("old-1", None)]


def test_client_request_id_migration_keeps_sqlite_rows(tmp_path: Path) -> None:
    _upgrade_keeps_rows_from_0002(sqlite_url(tmp_path))


@pytest.mark.postgres
def test_client_request_id_migration_keeps_postgres_rows() -> None:
    with temp_postgres() as url:
        _upgrade_keeps_rows_from_0002(url)
