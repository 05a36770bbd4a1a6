"""`stepgate costs` and `stepgate db upgrade`: the ledger's command-line surface.

`register(app)` adds them to the lead's typer app. Heavy imports (SQLAlchemy, alembic) happen
inside the commands so the CLI starts fast.
"""

from __future__ import annotations

import csv
import io
import sys
from enum import StrEnum
from typing import Annotated, Any

import orjson
import typer

from gateway.core.sanitize import for_spreadsheet, for_terminal


class By(StrEnum):
    route = "route"
    backend = "backend"
    team = "team"
    kind = "kind"
    day = "day"
    reason = "reason"  # escalations per route and reason (from the escalation rollups)


class Format(StrEnum):
    table = "table"
    json = "json"
    csv = "csv"


DatabaseOption = Annotated[
    str | None,
    typer.Option(
        "--database-url", help="default $STEPGATE_DATABASE_URL", show_default=False, hidden=True
    ),
]

# The JSON report's columns, in its order (`queries.Figures.to_json`), after the group key.
CSV_FIELDS = (
    "key",
    "cost_usd",
    "baseline_cost_usd",
    "savings_usd",
    "cost_nanos",
    "baseline_cost_nanos",
    "savings_nanos",
    "unknown_cost_attempts",
    "unknown_baseline_attempts",
    "requests",
    "errors",
    "escalations",
    "escalation_rate",
    "drafts",
    "attempts",
    "attempt_errors",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "tokens",
    "latency_mean_ms",
    "latency_p50_ms",
    "latency_p95_ms",
)


def register(app: typer.Typer) -> None:
    """Add `costs` and the `db` group (`db upgrade`) to `app`."""
    app.command(name="costs")(costs)
    db_app = typer.Typer(
        no_args_is_help=True, help="Database schema (alembic migrations)", rich_markup_mode=None
    )
    db_app.command(name="upgrade")(db_upgrade)
    app.add_typer(db_app, name="db")


def refuse_missing_ledger(url: str, command: str) -> None:
    """Exit 1, saying where it looked, when `url` names a SQLite file that does not exist
    (reading it would leave an empty database behind and report nothing)."""
    from gateway.db.engine import missing_sqlite_file

    missing = missing_sqlite_file(url)
    if missing is not None:
        typer.echo(
            f"stepgate {command}: no ledger at {missing} (from STEPGATE_DATABASE_URL, default "
            "sqlite:///stepgate.db in the working folder); run it where the gateway runs, or "
            "point --database-url / STEPGATE_DATABASE_URL at the gateway's database",
            err=True,
        )
        raise typer.Exit(1)


def _database_url(explicit: str | None) -> str:
    if explicit:
        return explicit
    from gateway.settings import Settings

    try:
        return Settings().database_url
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        typer.echo(f"stepgate: invalid settings: {exc}", err=True)
        raise typer.Exit(2) from exc


def costs(
    since: Annotated[str, typer.Option(help="window start: 30m, 24h, 7d or ISO 8601")] = "7d",
    until: Annotated[str | None, typer.Option(help="window end (default: now)")] = None,
    by: Annotated[
        By, typer.Option(help="group rows by (`reason`: escalations per route and reason)")
    ] = By.route,
    output: Annotated[Format, typer.Option("--format", help="output format")] = Format.table,
    team: Annotated[str | None, typer.Option(help="only this team")] = None,
    route: Annotated[str | None, typer.Option(help="only this route")] = None,
    kind: Annotated[str | None, typer.Option(help="only this step kind")] = None,
    backend: Annotated[str | None, typer.Option(help="only this backend")] = None,
    database_url: DatabaseOption = None,
) -> None:
    """Cost, baseline cost, savings, requests, tokens, escalation rate and p50/p95 latency,
    read from the ledger rollups; `--by reason` shows why cheap answers were escalated or
    drafted, per route."""
    from sqlalchemy.exc import SQLAlchemyError

    from gateway.db.engine import create_db_engine
    from gateway.ledger import queries

    try:
        window = queries.Window.resolve(since=since, until=until)
        filters = queries.Filters(route=route, backend=backend, team=team, kind=kind)
    except queries.QueryError as exc:
        option = f"--{exc.param}: " if exc.param else ""
        typer.echo(f"stepgate costs: {option}{exc}", err=True)
        raise typer.Exit(2) from exc
    url = _database_url(database_url)
    refuse_missing_ledger(url, "costs")
    engine = create_db_engine(url)
    try:
        if by is By.reason:
            report = queries.escalations(engine, window=window, filters=filters)
        else:
            report = queries.summary(engine, window=window, filters=filters, group_by=by.value)
    except queries.QueryError as exc:
        typer.echo(f"stepgate costs: {exc}", err=True)
        raise typer.Exit(2) from exc
    except SQLAlchemyError as exc:
        typer.echo(
            f"stepgate costs: cannot read the ledger: {exc.__class__.__name__}: "
            f"{exc.orig if hasattr(exc, 'orig') else exc}",
            err=True,
        )
        raise typer.Exit(1) from exc
    finally:
        engine.dispose()
    if output is Format.json:
        sys.stdout.write(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode() + "\n")
    elif by is By.reason:
        render = render_reasons_csv if output is Format.csv else render_reasons_table
        sys.stdout.write(render(report))
    elif output is Format.csv:
        sys.stdout.write(render_csv(report))
    else:
        sys.stdout.write(render_table(report, color=sys.stdout.isatty()))


def db_upgrade(
    revision: Annotated[str, typer.Option(help="target revision")] = "head",
    database_url: DatabaseOption = None,
) -> None:
    """Apply the alembic migrations (ledger, keys) to $STEPGATE_DATABASE_URL."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    from gateway.db.engine import normalize_url
    from gateway.db.migrate import upgrade

    url = _database_url(database_url)
    shown = make_url(normalize_url(url)).render_as_string(hide_password=True)
    try:
        upgrade(url, revision)
    except SQLAlchemyError as exc:
        typer.echo(f"stepgate db upgrade: {shown}: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"{shown}: upgraded to {revision}")


def _percent(rate: float | None) -> str:
    return "-" if rate is None else f"{100 * rate:.1f}%"


def _align(lines: list[tuple[str, ...]], rules: set[int], left: int) -> str:
    """Columns padded to width (the first `left` left-aligned); a rule after each row in `rules`."""
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    out = io.StringIO()
    for n, line in enumerate(lines):
        cells = [
            c.ljust(w) if i < left else c.rjust(w)
            for i, (c, w) in enumerate(zip(line, widths, strict=True))
        ]
        out.write("  ".join(cells).rstrip() + "\n")
        if n in rules:
            out.write("  ".join("-" * w for w in widths) + "\n")
    return out.getvalue()


REASON_CSV_FIELDS = (
    "route",
    "reason",
    "requests",
    "escalated",
    "drafts",
    "rate",
    "share",
    "cost_usd",
    "escalation_cost_usd",
    "cost_nanos",
    "escalation_cost_nanos",
)


def _reason_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per route (reason "*": all its requests) followed by its reasons, then TOTAL."""
    rows: list[dict[str, Any]] = []
    for route in report["routes"]:
        rows.append(
            {
                "route": route["route"],
                "reason": "*",
                "requests": route["requests"],
                "escalated": route["escalations"],
                "drafts": route["drafts"],
                "rate": route["escalation_rate"],
                "share": None,
                "cost_usd": "",
                "escalation_cost_usd": route["escalation_cost_usd"],
                "cost_nanos": "",
                "escalation_cost_nanos": route["escalation_cost_nanos"],
            }
        )
        rows += [{"route": route["route"], **reason} for reason in route["reasons"]]
    return rows


def render_reasons_table(report: dict[str, Any]) -> str:
    header = ("ROUTE", "REASON", "REQUESTS", "ESCALATED", "DRAFTS", "RATE", "SHARE",
              "COST $", "ESCALATION $")  # fmt: skip
    lines: list[tuple[str, ...]] = [header]
    rules = {0}
    for row in _reason_rows(report):
        whole = row["reason"] == "*"
        if whole and len(lines) > 1:
            rules.add(len(lines) - 1)
        lines.append(
            (
                for_terminal(row["route"]) if whole else "",
                "(all requests)" if whole else for_terminal(row["reason"]),
                str(row["requests"]),
                str(row["escalated"]),
                str(row["drafts"]),
                _percent(row["rate"]),
                _percent(row["share"]),
                row["cost_usd"],
                row["escalation_cost_usd"],
            )
        )
    totals = report["totals"]
    rules.add(len(lines) - 1)
    lines.append(
        (
            "TOTAL",
            "(all requests)",
            str(totals["requests"]),
            str(totals["escalations"]),
            str(totals["drafts"]),
            _percent(totals["escalation_rate"]),
            "-",
            "",
            totals["escalation_cost_usd"],
        )
    )
    out = io.StringIO()
    out.write(f"escalations {report['since']} .. {report['until']}\n")
    out.write(_align(lines, rules, left=2))
    out.write(
        "RATE: share of the route's requests (ESCALATED/REQUESTS on route rows); "
        "SHARE: of the route's failed checks\n"
    )
    return out.getvalue()


def render_reasons_csv(report: dict[str, Any]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(
        out, fieldnames=REASON_CSV_FIELDS, extrasaction="ignore", lineterminator="\n"
    )
    writer.writeheader()
    for row in _reason_rows(report):
        writer.writerow({k: "" if v is None else for_spreadsheet(v) for k, v in row.items()})
    return out.getvalue()


def _rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    rows = [dict(group) for group in report.get("groups", [])]
    rows.append({"key": "TOTAL", **report["totals"]})
    return rows


def _key_text(key: Any, by: str = "") -> str:
    if key is None:
        return "(none)"
    if by == "day" and isinstance(key, str) and key.endswith("T00:00:00Z"):
        return key[:10]  # a day is a date, not midnight
    return for_terminal(str(key))


def _money(nanos: int | None) -> str:
    """Dollars for a person: to the cent from a cent up, else three significant figures
    (a $0.0000125 step is not $0.00); the exact figures are in --format json/csv."""
    if nanos is None:
        return "-"
    usd = nanos / 1e9
    if usd == 0:
        return "0.00"
    if abs(usd) >= 0.01:
        return f"{usd:,.2f}"
    return f"{usd:.3g}" if abs(usd) >= 1e-4 else f"{usd:.2e}"


def _red(text: str, negative: bool, color: bool) -> str:
    return typer.style(text, fg="red") if negative and color else text


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def render_table(report: dict[str, Any], *, color: bool = False) -> str:
    """The report for a person: money rounded (see `_money`), days as dates, negative savings
    in red on a terminal (`color`), latencies marked as bucketed."""
    by = report.get("group_by") or "all"
    header = (by.upper(), "COST $", "BASELINE $", "SAVINGS $", "SAVED", "REQUESTS", "TOKENS",
              "ESC RATE", "P50 MS*", "P95 MS*")  # fmt: skip
    lines: list[tuple[str, ...]] = [header]
    negative: set[int] = set()
    for row in _rows(report):
        baseline = row["baseline_cost_nanos"]
        saved = f"{100 * row['savings_nanos'] / baseline:.1f}%" if baseline else "-"
        rate = row["escalation_rate"]
        if row["savings_nanos"] < 0:
            negative.add(len(lines))
        lines.append(
            (
                _key_text(row["key"], by),
                _money(row["cost_nanos"]),
                _money(row["baseline_cost_nanos"]),
                _money(row["savings_nanos"]),
                saved,
                str(row["requests"]),
                str(row["tokens"]),
                "-" if rate is None else f"{100 * rate:.1f}%",
                _ms(row["latency_p50_ms"]),
                _ms(row["latency_p95_ms"]),
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = io.StringIO()
    out.write(f"ledger {report['since']} .. {report['until']}\n")
    for n, line in enumerate(lines):
        cells = [line[0].ljust(widths[0])] + [
            c.rjust(w) for c, w in zip(line[1:], widths[1:], strict=True)
        ]
        for i in (3, 4):  # savings $ and saved %
            cells[i] = _red(cells[i], n in negative, color)
        out.write("  ".join(cells).rstrip() + "\n")
        if n == 0 or n == len(lines) - 2:
            out.write("  ".join("-" * w for w in widths) + "\n")
    out.write(
        "* latency percentiles are estimated from histogram buckets (interpolated inside the "
        "bucket), not exact\n"
    )
    unknown = report["totals"]["unknown_cost_attempts"]
    if unknown:
        out.write(
            f"note: {unknown} attempt(s) had no known price and are not in COST; "
            "add `pricing` to those backends in the policy\n"
        )
    return out.getvalue()


def render_csv(report: dict[str, Any]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_FIELDS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in _rows(report):
        cells = {name: for_spreadsheet(value) for name, value in row.items()}
        writer.writerow({**cells, "key": "" if row["key"] is None else cells["key"]})
    return out.getvalue()
