"""Engines from a database URL: SQLite (embedded default) and PostgreSQL through psycopg 3.

`postgresql://` and `postgres://` are normalised to `postgresql+psycopg://`, so operators can
paste the URL their provider gives them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url

# Seconds to wait for a PostgreSQL connection: an unreachable database must fail fast so the
# ledger can spool instead of stalling its writer.
CONNECT_TIMEOUT_S = 3
SQLITE_INSERT_PAGE_ROWS = 32


def normalize_url(url: str) -> str:
    """The SQLAlchemy URL for `url`, with PostgreSQL forced onto the psycopg 3 driver."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgresql+psycopg2", "postgresql+psycopg"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    elif parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise ValueError(
            f"unsupported database URL scheme {parsed.drivername!r}: use sqlite:///PATH or "
            "postgresql://USER@HOST/DB"
        )
    return parsed.render_as_string(hide_password=False)


def create_db_engine(url: str) -> Engine:
    """A pooled engine for `url`; SQLite gets WAL and a busy timeout for concurrent readers."""
    normalized = normalize_url(url)
    if normalized.startswith("sqlite"):
        engine = create_engine(
            normalized,
            connect_args={"timeout": 30},
            # A multi-row INSERT ... RETURNING is one SQL text per row count, and sqlite3 keeps
            # up to 128 prepared statements per connection: with batches of any size up to 500
            # that cache alone grew the process by ~90 MiB under load. Fixed pages of 32 rows
            # bound it to 32 texts per table (the last page of a batch is shorter).
            insertmanyvalues_page_size=SQLITE_INSERT_PAGE_ROWS,
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(
        normalized,
        pool_pre_ping=True,
        pool_size=5,
        max_overflow=5,
        connect_args={"connect_timeout": CONNECT_TIMEOUT_S},
    )


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # In-memory databases do not support WAL; the pragma is then a harmless no-op.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def missing_sqlite_file(url: str) -> Path | None:
    """The file a SQLite URL names, when it does not exist: opening it would create an empty
    database (a command that only reads the ledger must say where it looked instead)."""
    parsed = make_url(normalize_url(url))
    if parsed.get_backend_name() != "sqlite":
        return None
    database = parsed.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    path = Path(database)
    return None if path.exists() else path.resolve()
