"""Every module that registers tables on `Base.metadata`, for alembic and the drift test.

A new table module is added to `TABLE_MODULES`; a listed module that does not exist yet
(`gateway.limits.tables` before the keys schema lands) is skipped.
"""

from __future__ import annotations

import importlib

from sqlalchemy import MetaData

from gateway.db.base import Base

TABLE_MODULES: tuple[str, ...] = ("gateway.ledger.tables", "gateway.limits.tables")


def load_metadata() -> MetaData:
    """Import every table module and return the shared metadata."""
    for name in TABLE_MODULES:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name is None or not name.startswith(exc.name):
                raise
    return Base.metadata
