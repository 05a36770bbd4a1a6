"""`stepgate keys create|list|revoke`: the keys' command-line surface.

`register(app)` adds the `keys` group to the lead's typer app. Commands use
$STEPGATE_DATABASE_URL (or `--database-url`) and bring its schema up to date first.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Annotated

import orjson
import typer

if TYPE_CHECKING:
    from sqlalchemy import Engine

DatabaseOption = Annotated[
    str | None,
    typer.Option("--database-url", help="default $STEPGATE_DATABASE_URL", show_default=False),
]


def register(app: typer.Typer) -> None:
    keys_app = typer.Typer(
        no_args_is_help=True, help="Virtual API keys (per team)", rich_markup_mode=None
    )
    keys_app.command("create")(create)
    keys_app.command("list")(list_)
    keys_app.command("revoke")(revoke)
    app.add_typer(keys_app, name="keys")


def _engine(database_url: str | None, *, reading: str | None = None) -> Engine:
    """The keys database, migrated. `reading`: the command only reads it, so a SQLite file
    that does not exist is an error naming where it looked, not a new empty database."""
    from gateway.db.engine import create_db_engine
    from gateway.db.migrate import upgrade
    from gateway.ledger.commands import refuse_missing_ledger
    from gateway.settings import Settings

    url = database_url or Settings().database_url
    if reading is not None:
        refuse_missing_ledger(url, reading)
    upgrade(url)
    return create_db_engine(url)


def _usd(value: str | None, option: str) -> int | None:
    from gateway.core.money import usd_to_nanos

    if value is None:
        return None
    try:
        amount = Decimal(value)
    except InvalidOperation as exc:
        raise typer.BadParameter(f"{value!r} is not an amount in USD", param_hint=option) from exc
    if not amount.is_finite() or amount <= 0:
        raise typer.BadParameter("must be a positive amount in USD", param_hint=option)
    return usd_to_nanos(amount)


def create(
    team: Annotated[str, typer.Option(help="the team the key belongs to (created if new)")],
    name: Annotated[str | None, typer.Option(help="a label, e.g. the service using it")] = None,
    rpm: Annotated[int | None, typer.Option(min=1, help="requests per minute")] = None,
    tpm: Annotated[int | None, typer.Option(min=1, help="tokens per minute")] = None,
    daily_budget_usd: Annotated[str | None, typer.Option(help="USD per UTC day")] = None,
    monthly_budget_usd: Annotated[str | None, typer.Option(help="USD per UTC month")] = None,
    database_url: DatabaseOption = None,
) -> None:
    """Create a key and print it once (only its hash is stored)."""
    from gateway.limits.keys import KeyLimits, create_key

    team = team.strip()
    if not team or len(team) > 128:
        raise typer.BadParameter("give a team name of 1 to 128 characters", param_hint="--team")
    limits = KeyLimits(
        rpm=rpm,
        tpm=tpm,
        daily_budget_nanos=_usd(daily_budget_usd, "--daily-budget-usd"),
        monthly_budget_nanos=_usd(monthly_budget_usd, "--monthly-budget-usd"),
    )
    engine = _engine(database_url)
    try:
        plaintext, info = create_key(engine, team=team, name=name, limits=limits)
    finally:
        engine.dispose()
    typer.echo(plaintext)
    typer.echo(
        f"created key {info.key_id} for team {team!r}; store it now, it is not shown again",
        err=True,
    )


def list_(
    team: Annotated[str | None, typer.Option(help="only this team's keys")] = None,
    json: Annotated[bool, typer.Option("--json", help="JSON lines instead of a table")] = False,
    database_url: DatabaseOption = None,
) -> None:
    """List keys (ids, teams, limits, status); never the secrets."""
    from gateway.core.money import format_usd
    from gateway.limits.keys import list_keys

    engine = _engine(database_url, reading="keys list")
    try:
        keys = list_keys(engine, team=team)
    finally:
        engine.dispose()
    rows = [
        {
            "key_id": k.key_id,
            "team": k.team,
            "name": k.name,
            "status": "revoked" if k.revoked_at else "active",
            "created_at": k.created_at.isoformat(timespec="seconds"),
            "revoked_at": k.revoked_at.isoformat(timespec="seconds") if k.revoked_at else None,
            "rpm": k.limits.rpm,
            "tpm": k.limits.tpm,
            "daily_budget_usd": _money(k.limits.daily_budget_nanos, format_usd),
            "monthly_budget_usd": _money(k.limits.monthly_budget_nanos, format_usd),
        }
        for k in keys
    ]
    if json:
        for row in rows:
            typer.echo(orjson.dumps(row).decode())
        return
    columns = (
        "key_id",
        "team",
        "name",
        "status",
        "rpm",
        "tpm",
        "daily_budget_usd",
        "monthly_budget_usd",
        "created_at",
    )
    from gateway.core.sanitize import for_terminal

    table = [columns] + [
        tuple("-" if r[c] is None else for_terminal(str(r[c])) for c in columns) for r in rows
    ]
    widths = [max(len(line[i]) for line in table) for i in range(len(columns))]
    for line in table:
        typer.echo("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip())


def _money(nanos: int | None, fmt: Callable[[int], str]) -> str | None:
    return None if nanos is None else fmt(nanos)


def revoke(key_id: str, database_url: DatabaseOption = None) -> None:
    """Revoke a key by its id (`keys list`); gateways refuse it within their key-cache TTL (5 s)."""
    from gateway.limits.keys import revoke_key

    key_id = key_id.removeprefix("sg-").split("-")[0]
    engine = _engine(database_url, reading="keys revoke")
    try:
        done = revoke_key(engine, key_id)
    finally:
        engine.dispose()
    if not done:
        typer.echo(f"no active key {key_id!r}", err=True)
        raise typer.Exit(1)
    typer.echo(f"revoked key {key_id}")
