"""Is the database at the newest migration? A cheap check that does not import alembic.

`HEAD_REVISION` names the newest file in migrations/versions; tests/test_migrations.py checks
it against alembic's own head so it cannot drift.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

HEAD_REVISION = "0003_client_request_id"


def at_head(engine: Engine) -> bool:
    """True when alembic_version holds exactly HEAD_REVISION; False if unknown or behind."""
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    except SQLAlchemyError:
        return False
    return list(rows) == [HEAD_REVISION]
