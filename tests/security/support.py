"""Helpers shared by the admin-surface security tests (no tests here)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from gateway.app import create_app
from gateway.settings import Settings
from tests.conftest import TEST_POLICY

ADMIN = "security-test-admin-key-0123456789"
BEARER = {"authorization": f"Bearer {ADMIN}"}
# Nothing listens here: the admin surface never calls a backend.
_NOWHERE = "http://127.0.0.1:9/v1"


def idle_policy(directory: Path) -> Path:
    """The tests' policy with every backend pointing nowhere (admin tests send no chat)."""
    path = directory / "policy.yaml"
    path.write_text(
        TEST_POLICY.format(dllm=_NOWHERE, openai=_NOWHERE, anthropic=_NOWHERE, timeout=2.0)
    )
    return path


@contextmanager
def admin_app(
    directory: Path,
    *,
    base_url: str = "http://testserver",
    peer: tuple[str, int] = ("testclient", 50000),
    **settings: Any,
) -> Iterator[TestClient]:
    """The real app in process (lifespan run) with an admin key and a SQLite ledger in
    `directory`, unless `settings` say otherwise; `peer` is the client address it sees."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("TEST_OPENAI_KEY", "unused")
        env.setenv("TEST_ANTHROPIC_KEY", "unused")
        full: dict[str, Any] = {
            "admin_key": ADMIN,
            "policy": idle_policy(directory),
            "database_url": f"sqlite:///{directory}/ledger.db",
            "spool_dir": directory / "spool",
            "policy_poll_s": 0,
            "preload_ar": False,
            **settings,
        }
        app = create_app(Settings(**full))
        with TestClient(
            app, base_url=base_url, client=peer, raise_server_exceptions=False
        ) as client:
            yield client


def ledger_rows(database_url: str, at_least: int, *, wait_s: float = 10.0) -> list[dict[str, Any]]:
    """The ledger's request rows, oldest first, once at least `at_least` have been written."""
    import time

    from sqlalchemy import create_engine, select
    from sqlalchemy.exc import OperationalError

    from gateway.ledger.tables import requests

    engine = create_engine(database_url)
    deadline = time.monotonic() + wait_s
    try:
        while True:
            try:
                with engine.connect() as conn:
                    stmt = select(requests).order_by(requests.c.started_at)
                    rows = [dict(r._mapping) for r in conn.execute(stmt)]
            except OperationalError:  # the gateway has not created the tables yet
                rows = []
            if len(rows) >= at_least or time.monotonic() > deadline:
                return rows
            time.sleep(0.1)
    finally:
        engine.dispose()
