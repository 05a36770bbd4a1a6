"""Alembic environment: the URL from code, `-x url=...`, or STEPGATE_DATABASE_URL."""

from __future__ import annotations

import logging.config
import os

from alembic import context
from sqlalchemy import create_engine, pool

from gateway.db.engine import normalize_url
from gateway.db.registry import load_metadata

config = context.config
if config.config_file_name is not None and config.attributes.get("database_url") is None:
    logging.config.fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = load_metadata()


def database_url() -> str:
    url = (
        config.attributes.get("database_url")
        or context.get_x_argument(as_dictionary=True).get("url")
        or os.environ.get("STEPGATE_DATABASE_URL")
        or "sqlite:///stepgate.db"
    )
    return normalize_url(url)


def run_migrations_offline() -> None:
    context.configure(
        url=database_url(),
        target_metadata=target_metadata,
        literal_binds=True,
        compare_type=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = create_engine(database_url(), poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            compare_type=True,
            # SQLite cannot ALTER most things: batch mode rebuilds tables instead.
            render_as_batch=connection.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
