"""Helpers for the limits, keys, cache and replica tests (no tests here)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from gateway.db.engine import create_db_engine
from gateway.db.migrate import upgrade
from gateway.limits.keys import KeyLimits, create_key, revoke_key
from tests.support.app_client import running_app

ADMIN_KEY = "admin-key-for-tests-0123456789"


def mint(url: str, team: str, limits: KeyLimits = KeyLimits()) -> tuple[str, str]:
    """(plaintext key, key_id) in the database at `url` (migrated first)."""
    upgrade(url)
    engine = create_db_engine(url)
    try:
        plaintext, info = create_key(engine, team=team, limits=limits)
    finally:
        engine.dispose()
    return plaintext, info.key_id


def revoke(url: str, key_id: str) -> None:
    engine = create_db_engine(url)
    try:
        assert revoke_key(engine, key_id)
    finally:
        engine.dispose()


@contextmanager
def app_client(policy_file: Path, tmp_path: Path, **settings: Any) -> Iterator[Any]:
    """The app in-process over a SQLite ledger in tmp_path, with extra Settings fields."""

    with running_app(policy_file, tmp_path, **settings) as c:
        yield c


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def chat(content: str = "Is this about billing or shipping?", **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"model": "auto", "messages": [{"role": "user", "content": content}]}
    body.update(extra)
    return body
