"""The real app in-process (lifespan run) behind Starlette's TestClient."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from starlette.testclient import TestClient

from gateway.app import create_app
from gateway.settings import Settings


@contextmanager
def running_app(policy: Path, workdir: Path, **settings: Any) -> Iterator[TestClient]:
    """A TestClient over `create_app` with a SQLite ledger in `workdir`, unless overridden."""
    full: dict[str, Any] = {
        "policy": policy,
        "database_url": f"sqlite:///{workdir}/ledger.db",
        "spool_dir": workdir / "spool",
        "policy_poll_s": 0,
        **settings,
    }
    with TestClient(create_app(Settings(**full)), raise_server_exceptions=False) as client:
        yield client
