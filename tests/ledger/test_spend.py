"""GET /v1/spend/summary and /v1/spend/timeseries against a seeded ledger, on SQLite and
PostgreSQL; the same figures as `stepgate costs`; exact windows from minute/hour/day rollups."""

from __future__ import annotations

import asyncio
import random
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import typer
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from typer.testing import CliRunner

from gateway.api.spend import spend_routes
from gateway.core.errors import StepgateError
from gateway.core.records import RequestRecord
from gateway.db.engine import create_db_engine
from gateway.db.migrate import upgrade
from gateway.ingress.openai import render_error as render
from gateway.ledger.commands import register
from gateway.ledger.store import write_batch
from gateway.ledger.writer import Ledger
from gateway.settings import Settings
from tests.support.ledger import attempt, record, sqlite_url, temp_postgres

ADMIN = "spend-test-admin-key-0123456789"
T0 = datetime(2026, 1, 1, tzinfo=UTC).timestamp()
ROUTES = ("fast", "deep")
TEAMS = ("support", "billing", None)
REASONS = ("invalid_json", "label_not_allowed", "low_token_confidence")


def _records() -> list[RequestRecord]:
    rng = random.Random(7)
    out: list[RequestRecord] = []
    for i in range(400):
        started = T0 + rng.uniform(0, 3 * 86400)
        route = rng.choice(ROUTES)
        rid = f"q{i}"
        tries = [
            attempt(
                rid,
                0,
                backend="dllm" if route == "fast" else "ar",
                cost=rng.randint(100, 5000),
                baseline=rng.randint(5000, 9000),
                prompt=rng.randint(10, 500),
                completion=rng.randint(1, 100),
                started_at=started,
            )
        ]
        escalated = route == "fast" and rng.random() < 0.2
        if escalated:
            tries.append(
                attempt(
                    rid,
                    1,
                    backend="ar",
                    role="escalation",
                    cost=None if i % 7 == 0 else 8000,
                    baseline=8000,
                    started_at=started,
                )
            )
        # Why the cheap answer failed its check (chosen without the rng: the rest stays put).
        reason, disposition = None, "final"
        if escalated:
            reason = REASONS[i % len(REASONS)]
        elif route == "fast" and i % 9 == 0:
            reason, disposition = REASONS[(i // 9) % len(REASONS)], "draft"
        out.append(
            record(
                rid,
                started_at=started,
                route=route,
                team=rng.choice(TEAMS),
                kind=rng.choice(("classify", "extract", "reason")),
                latency_ms=rng.lognormvariate(4, 1),
                escalated=escalated,
                reason=reason,
                disposition=disposition,
                status=502 if rng.random() < 0.05 else 200,
                attempts_=tuple(tries),
            )
        )
    return out


RECORDS = _records()


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    def seed(url: str) -> None:
        upgrade(url)
        engine = create_db_engine(url)
        try:
            write_batch(engine, RECORDS)
        finally:
            engine.dispose()

    if request.param == "sqlite":
        url = sqlite_url(tmp_path_factory.mktemp("spend"))
        seed(url)
        yield url
    else:
        with temp_postgres() as url:
            seed(url)
            yield url


async def _handle(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StepgateError)
    status, body, headers = render(exc)
    return Response(body, status_code=status, headers=headers, media_type="application/json")


def _get(
    database_url: str, path: str, params: dict[str, str], key: str | None = ADMIN
) -> httpx.Response:
    async def go() -> httpx.Response:
        with tempfile.TemporaryDirectory() as spool_dir:
            ledger = await Ledger.open(database_url=database_url, spool_dir=spool_dir)
            return await ask(ledger)

    async def ask(ledger: Ledger) -> httpx.Response:
        app = Starlette(routes=spend_routes, exception_handlers={StepgateError: _handle})
        app.state.settings = Settings(admin_key=ADMIN)
        app.state.ledger = ledger
        try:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                headers = {"authorization": f"Bearer {key}"} if key else {}
                return await client.get(path, params=params, headers=headers)
        finally:
            await ledger.aclose()

    return asyncio.run(go())


def _expected(since: float, until: float, **match: Any) -> dict[str, int]:
    chosen = [
        r
        for r in RECORDS
        if since <= r.started_at < until and all(getattr(r, k) == v for k, v in match.items())
    ]
    tries = [a for r in chosen for a in r.attempts]
    return {
        "requests": len(chosen),
        "escalations": sum(r.escalated for r in chosen),
        "errors": sum(r.status >= 400 for r in chosen),
        "cost_nanos": sum(a.cost_nanos or 0 for a in tries),
        "baseline_cost_nanos": sum(a.baseline_cost_nanos or 0 for a in tries),
        "savings_nanos": sum(
            a.baseline_cost_nanos - a.cost_nanos
            for a in tries
            if a.cost_nanos is not None and a.baseline_cost_nanos is not None
        ),
        "unknown_cost_attempts": sum(a.cost_nanos is None for a in tries),
        "tokens": sum(a.prompt_tokens + a.completion_tokens for a in tries),
    }


def _pick(figures: dict[str, Any]) -> dict[str, int]:
    return {k: figures[k] for k in _expected(0, 0)}


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, tz=UTC).isoformat()


# A window with ragged edges: minute rows at both ends, hour rows, and a full day in the middle.
SINCE = T0 + 13 * 3600 + 17 * 60
UNTIL = T0 + 2 * 86400 + 5 * 3600 + 41 * 60


def test_summary_is_exact_over_a_ragged_window(database_url: str) -> None:
    resp = _get(
        database_url,
        "/v1/spend/summary",
        {"since": _iso(SINCE), "until": _iso(UNTIL), "group_by": "route"},
    )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert _pick(body["totals"]) == _expected(SINCE, UNTIL)
    groups = {g["key"]: g for g in body["groups"]}
    for route in ROUTES:
        assert _pick(groups[route]) == _expected(SINCE, UNTIL, route=route)
    totals = body["totals"]
    assert totals["cost_usd"] == f"{totals['cost_nanos'] / 1e9:.9f}".rstrip("0")
    assert totals["unknown_cost_attempts"] > 0
    assert 0 < totals["latency_p50_ms"] < totals["latency_p95_ms"]
    assert 0 < totals["escalation_rate"] < 1


def test_filters_and_no_team_group(database_url: str) -> None:
    resp = _get(
        database_url,
        "/v1/spend/summary",
        {"since": _iso(T0), "until": _iso(T0 + 4 * 86400), "route": "fast", "group_by": "team"},
    )
    body = resp.json()
    groups = {g["key"]: g for g in body["groups"]}
    assert set(groups) == {"support", "billing", None}
    assert _pick(groups[None]) == _expected(T0, T0 + 4 * 86400, route="fast", team=None)
    assert body["filters"] == {"route": "fast"}


def test_timeseries_adds_up_to_the_summary(database_url: str) -> None:
    params = {"since": _iso(SINCE), "until": _iso(UNTIL)}
    summary = _get(database_url, "/v1/spend/summary", params).json()["totals"]
    for bucket in ("hour", "day"):
        resp = _get(database_url, "/v1/spend/timeseries", {**params, "bucket": bucket})
        assert resp.status_code == 200, resp.text
        points = resp.json()["points"]
        assert sum(p["requests"] for p in points) == summary["requests"]
        assert sum(p["cost_nanos"] for p in points) == summary["cost_nanos"]
    hourly = _get(database_url, "/v1/spend/timeseries", {**params, "bucket": "hour"}).json()
    # ungrouped series are contiguous: one point per hour, empty ones included
    assert len(hourly["points"]) == len({p["t"] for p in hourly["points"]}) == 41
    grouped = _get(
        database_url, "/v1/spend/timeseries", {**params, "bucket": "day", "group_by": "kind"}
    ).json()
    assert {p["key"] for p in grouped["points"]} == {"classify", "extract", "reason"}
    assert sum(p["requests"] for p in grouped["points"]) == summary["requests"]


def _expected_reasons(since: float, until: float, **match: Any) -> dict[str, Any]:
    """Per route: (requests, escalations, drafts) and per reason (requests, escalated, drafts,
    cost, escalation cost), straight from the seeded records."""
    chosen = [
        r
        for r in RECORDS
        if since <= r.started_at < until and all(getattr(r, k) == v for k, v in match.items())
    ]
    routes: dict[str, Any] = {}
    for r in chosen:
        entry = routes.setdefault(r.route, {"figures": [0, 0, 0], "reasons": {}})
        entry["figures"][0] += 1
        entry["figures"][1] += int(r.escalated)
        entry["figures"][2] += int(r.disposition == "draft")
        if r.escalation_reason is None:
            continue
        acc = entry["reasons"].setdefault(r.escalation_reason, [0, 0, 0, 0, 0])
        acc[0] += 1
        acc[1] += int(r.escalated)
        acc[2] += int(r.disposition == "draft")
        acc[3] += sum(a.cost_nanos or 0 for a in r.attempts)
        acc[4] += sum(a.cost_nanos or 0 for a in r.attempts if a.role == "escalation")
    return {
        route: {
            "figures": tuple(e["figures"]),
            "reasons": {k: tuple(v) for k, v in e["reasons"].items()},
        }
        for route, e in routes.items()
    }


def _reported_reasons(body: dict[str, Any]) -> dict[str, Any]:
    names = ("requests", "escalated", "drafts", "cost_nanos", "escalation_cost_nanos")
    return {
        route["route"]: {
            "figures": (route["requests"], route["escalations"], route["drafts"]),
            "reasons": {r["reason"]: tuple(r[n] for n in names) for r in route["reasons"]},
        }
        for route in body["routes"]
    }


def test_escalations_per_route_and_reason(database_url: str) -> None:
    params = {"since": _iso(SINCE), "until": _iso(UNTIL)}
    resp = _get(database_url, "/v1/spend/escalations", params)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    expected = _expected_reasons(SINCE, UNTIL)
    assert _reported_reasons(body) == expected
    fast = next(r for r in body["routes"] if r["route"] == "fast")
    n, esc, drafts = expected["fast"]["figures"]
    assert fast["escalation_rate"] == round(esc / n, 4) and fast["draft_rate"] == round(
        drafts / n, 4
    )
    failed = sum(v[0] for v in expected["fast"]["reasons"].values())
    assert fast["failed_checks"] == failed
    for reason in fast["reasons"]:
        assert reason["rate"] == round(reason["requests"] / n, 4)
        assert reason["share"] == round(reason["requests"] / failed, 4)
    counts = [r["requests"] for r in fast["reasons"]]
    assert counts == sorted(counts, reverse=True) and len(counts) == len(REASONS)
    deep = next(r for r in body["routes"] if r["route"] == "deep")
    assert deep["reasons"] == [] and deep["escalation_rate"] == 0
    # The rates agree with the summary's figures for the same window.
    summary = _get(database_url, "/v1/spend/summary", params).json()["totals"]
    assert body["totals"]["escalations"] == summary["escalations"]
    assert body["totals"]["escalation_rate"] == summary["escalation_rate"]
    assert sum(r["requests"] for r in body["reasons"]) == body["totals"]["failed_checks"]
    # Filters narrow both the route figures and the reasons.
    team = _get(database_url, "/v1/spend/escalations", {**params, "team": "billing"}).json()
    assert _reported_reasons(team) == _expected_reasons(SINCE, UNTIL, team="billing")
    bad = _get(database_url, "/v1/spend/escalations", {**params, "backend": "dllm"})
    assert bad.status_code == 400 and "backend" in bad.json()["error"]["message"]


def test_cli_costs_by_reason_matches_the_api(database_url: str) -> None:
    app = typer.Typer()
    register(app)

    @app.callback()
    def _root() -> None:
        pass

    params = {"since": _iso(SINCE), "until": _iso(UNTIL), "kind": "extract"}
    api = _get(database_url, "/v1/spend/escalations", params).json()
    base = ["costs", "--since", params["since"], "--until", params["until"], "--kind", "extract",
            "--by", "reason", "--database-url", database_url]  # fmt: skip
    runner = CliRunner()
    result = runner.invoke(app, [*base, "--format", "json"])
    assert result.exit_code == 0, result.output
    assert orjson.loads(result.stdout) == api
    table = runner.invoke(app, base)
    assert table.exit_code == 0, table.output
    top = next(r for r in api["routes"] if r["route"] == "fast")["reasons"][0]
    row = next(line for line in table.stdout.splitlines() if f" {top['reason']} " in line)
    assert str(top["requests"]) in row and f"{100 * top['rate']:.1f}%" in row
    csv_out = runner.invoke(app, [*base, "--format", "csv"])
    lines = csv_out.stdout.splitlines()
    assert lines[0].startswith("route,reason,requests,escalated,drafts,rate,share")
    assert sum(1 for line in lines if line.startswith("fast,")) == 1 + len(REASONS)
    bad = runner.invoke(app, [*base, "--backend", "dllm"])
    assert bad.exit_code == 2 and "backend" in bad.output


def test_cli_costs_shows_the_same_figures_as_the_api(database_url: str) -> None:
    app = typer.Typer()
    register(app)

    @app.callback()
    def _root() -> None:  # keep `costs` a subcommand
        pass

    params = {"since": _iso(SINCE), "until": _iso(UNTIL), "group_by": "team"}
    api = _get(database_url, "/v1/spend/summary", params).json()
    runner = CliRunner()
    base = [
        "costs",
        "--since",
        params["since"],
        "--until",
        params["until"],
        "--by",
        "team",
        "--database-url",
        database_url,
    ]
    result = runner.invoke(app, [*base, "--format", "json"])
    assert result.exit_code == 0, result.output
    assert orjson.loads(result.stdout) == api
    csv_out = runner.invoke(app, [*base, "--format", "csv"])
    assert csv_out.exit_code == 0, csv_out.output
    lines = csv_out.stdout.splitlines()
    assert lines[0].startswith("key,cost_usd,baseline_cost_usd,savings_usd")
    assert lines[-1].startswith(f"TOTAL,{api['totals']['cost_usd']},")
    # CSV has every column of the JSON report (dollars first, for spreadsheets)
    header = lines[0].split(",")
    assert sorted(header) == sorted(["key", *api["totals"].keys()])
    table = runner.invoke(app, base)
    assert table.exit_code == 0, table.output
    # Money for a person: to the cent from a cent up, else 3 significant figures.
    savings = api["totals"]["savings_nanos"] / 1e9
    shown = f"{savings:,.2f}" if abs(savings) >= 0.01 else f"{savings:.3g}"
    assert shown in table.stdout
    assert not any(len(c) > 12 and c.count(".") == 1 and c.replace(".", "").lstrip("-").isdigit()
                   for c in table.stdout.split())  # no 9-decimal figures  # fmt: skip
    assert "(none)" in table.stdout and "no known price" in table.stdout
    assert "estimated from histogram buckets" in table.stdout
    by_day = runner.invoke(app, [*base[:-4], "--by", "day", "--database-url", database_url])
    assert by_day.exit_code == 0, by_day.output
    days = [line.split()[0] for line in by_day.stdout.splitlines()[3:-2] if line[:2] == "20"]
    assert days and all(len(d) == 10 and d[4] == "-" and d[7] == "-" for d in days), days
    bad = runner.invoke(app, ["costs", "--since", "yesterday", "--database-url", database_url])
    assert bad.exit_code == 2 and "invalid time 'yesterday'" in bad.output


@pytest.mark.parametrize(
    ("path", "params", "message"),
    [
        ("/v1/spend/summary", {"range": "7 days"}, "invalid duration"),
        ("/v1/spend/summary", {"range": "7d", "since": "1d"}, "not both"),
        ("/v1/spend/summary", {"group_by": "colour"}, "invalid group_by"),
        ("/v1/spend/summary", {"tema": "x"}, "unknown query parameter(s) tema"),
        ("/v1/spend/timeseries", {"bucket": "week"}, "invalid bucket"),
        ("/v1/spend/timeseries", {"range": "30d", "bucket": "minute"}, "more than 5000 points"),
        ("/v1/spend/summary", {"since": "2026-01-02", "until": "2026-01-01"}, "window is empty"),
    ],
)
def test_bad_parameters_are_400_with_a_clear_message(
    database_url: str, path: str, params: dict[str, str], message: str
) -> None:
    resp = _get(database_url, path, params)
    assert resp.status_code == 400
    assert message in resp.json()["error"]["message"]


def test_admin_key_is_required(database_url: str) -> None:
    assert _get(database_url, "/v1/spend/summary", {}, key=None).status_code == 401
    assert _get(database_url, "/v1/spend/summary", {}, key="wrong-key-wrong-key").status_code == 401
    ok = _get(database_url, "/v1/spend/summary", {"range": "24h"})
    assert ok.status_code == 200 and ok.json()["totals"]["requests"] == 0


def test_db_upgrade_command(tmp_path: Path) -> None:
    app = typer.Typer()
    register(app)
    url = sqlite_url(tmp_path)
    result = CliRunner().invoke(app, ["db", "upgrade", "--database-url", url])
    assert result.exit_code == 0, result.output
    engine = create_db_engine(url)
    try:
        write_batch(engine, [record("after-upgrade")])
    finally:
        engine.dispose()
