"""`stepgate keys create|list|revoke`, key storage (hash only) and the key cache's TTL."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import orjson
import pytest
import typer
from sqlalchemy import select
from typer.testing import CliRunner

from gateway.db.engine import create_db_engine
from gateway.limits.commands import register
from gateway.limits.keys import KeyCache, parse_key
from gateway.limits.tables import api_keys, teams
from tests.support.ledger import temp_postgres


def _app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def _root() -> None:  # a group, as in gateway/cli.py
        pass

    register(app)
    return app


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> object:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/keys.db"
        return
    with temp_postgres() as url:
        yield url


def test_create_list_revoke(database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STEPGATE_DATABASE_URL", database_url)
    runner = CliRunner()
    app = _app()
    created = runner.invoke(
        app,
        [
            "keys",
            "create",
            "--team",
            "billing-bot",
            "--rpm",
            "60",
            "--tpm",
            "10000",
            "--daily-budget-usd",
            "2.5",
            "--monthly-budget-usd",
            "40",
        ],
    )
    assert created.exit_code == 0, created.output
    plaintext = created.stdout.strip().splitlines()[0]
    parsed = parse_key(plaintext)
    assert parsed is not None
    key_id, secret = parsed

    engine = create_db_engine(database_url)
    try:
        with engine.connect() as conn:
            row = conn.execute(select(api_keys)).mappings().one()
            team_rows = conn.execute(select(teams.c.name)).scalars().all()
        # Only the hash is stored, never the key or its secret.
        assert row["secret_sha256"] == hashlib.sha256(secret.encode()).hexdigest()
        assert secret not in str(dict(row)) and plaintext not in str(dict(row))
        assert row["daily_budget_nanos"] == 2_500_000_000
        assert row["monthly_budget_nanos"] == 40_000_000_000
        assert (row["rpm"], row["tpm"]) == (60, 10_000)
        assert team_rows == ["billing-bot"]

        listed = runner.invoke(app, ["keys", "list", "--json"])
        assert listed.exit_code == 0, listed.output
        assert secret not in listed.stdout
        entry = orjson.loads(listed.stdout.splitlines()[0])
        assert entry["key_id"] == key_id and entry["status"] == "active"
        assert entry["daily_budget_usd"] == "2.5" and entry["rpm"] == 60
        table = runner.invoke(app, ["keys", "list"])
        assert key_id in table.stdout and "active" in table.stdout

        cache = KeyCache(engine, ttl_s=0.0, negative_ttl_s=0.0)
        principal = asyncio.run(cache.verify(plaintext))
        assert principal is not None and principal.team == "billing-bot"
        assert principal.limits.daily_budget_nanos == 2_500_000_000

        revoked = runner.invoke(app, ["keys", "revoke", key_id])
        assert revoked.exit_code == 0, revoked.output
        assert asyncio.run(cache.verify(plaintext)) is None
        again = runner.invoke(app, ["keys", "revoke", key_id])
        assert again.exit_code == 1
        listed = runner.invoke(app, ["keys", "list", "--json"])
        assert orjson.loads(listed.stdout.splitlines()[0])["status"] == "revoked"
    finally:
        engine.dispose()


def test_bad_options_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STEPGATE_DATABASE_URL", f"sqlite:///{tmp_path}/keys.db")
    runner = CliRunner()
    for args in (
        ["--team", "t", "--daily-budget-usd", "lots"],
        ["--team", "t", "--monthly-budget-usd", "-3"],
        ["--team", "t", "--rpm", "0"],
        ["--team", "  "],
    ):
        result = runner.invoke(_app(), ["keys", "create", *args])
        assert result.exit_code == 2, (args, result.output)


def test_revocation_takes_effect_within_the_cache_ttl(tmp_path: Path) -> None:
    from tests.support.limits import mint, revoke

    url = f"sqlite:///{tmp_path}/keys.db"
    key, key_id = mint(url, "t")
    engine = create_db_engine(url)

    async def scenario() -> None:
        cache = KeyCache(engine, ttl_s=0.3)
        assert await cache.verify(key) is not None
        revoke(url, key_id)
        assert await cache.verify(key) is not None  # still cached: the documented TTL
        await asyncio.sleep(0.35)
        assert await cache.verify(key) is None
        # A wrong secret for a real key id is refused; malformed keys never reach the database.
        assert await cache.verify(key[:-1] + ("A" if key[-1] != "A" else "B")) is None
        assert await cache.verify("sg-nothing") is None

    try:
        asyncio.run(scenario())
    finally:
        engine.dispose()


def test_concurrent_lookups_of_one_key_share_one_database_read(tmp_path: Path) -> None:
    from tests.support.limits import mint

    url = f"sqlite:///{tmp_path}/keys.db"
    key, _ = mint(url, "t")
    engine = create_db_engine(url)
    reads = 0

    from sqlalchemy import event

    def count(*_args: object) -> None:
        nonlocal reads
        reads += 1

    event.listen(engine, "before_cursor_execute", count)

    async def scenario() -> None:
        cache = KeyCache(engine)
        results = await asyncio.gather(*[cache.verify(key) for _ in range(50)])
        assert all(r is not None and r.team == "t" for r in results)

    try:
        asyncio.run(scenario())
    finally:
        engine.dispose()
    assert reads == 1
