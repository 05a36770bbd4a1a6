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
from tests.test_ledger_support import sqlite_url, temp_postgres


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
