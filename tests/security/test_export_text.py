"""Caller-chosen names (teams, routes) in exports: CSV cells cannot start a spreadsheet
formula (`stepgate costs --format csv`, the dashboard's CSV) while numbers stay numbers, and
CLI tables show control characters escaped."""

from __future__ import annotations

import csv
import dataclasses
import io
import time
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from gateway.core.records import RequestRecord
from gateway.db.engine import create_db_engine
from gateway.db.migrate import upgrade
from gateway.ledger import commands as ledger_commands
from gateway.ledger.store import write_batch
from gateway.limits import commands as limits_commands
from tests.ledger.test_dashboard_browser import CHROMIUM, chromium
from tests.security.support import ADMIN, idle_policy
from tests.support.e2e_server import serve
from tests.support.ledger import attempt, record, sqlite_url

TEAM = '=HYPERLINK("http://x")'
ROUTE = "@SUM(1+1)"
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cli(register: object) -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def _root() -> None:  # a group, as in gateway/cli.py
        pass

    register(app)  # type: ignore[operator]
    return app


def _records(now: float) -> list[RequestRecord]:
    """One escalated request on a formula-named route and team that cost more than its
    baseline (negative savings), and one ordinary request."""
    started = now - 3600
    evil = record("evil-1", started_at=started, route=ROUTE, team=TEAM, escalated=True,
                  attempts_=(attempt("evil-1", 0, cost=9_000, baseline=2_000, started_at=started),
                             attempt("evil-1", 1, role="escalation", cost=9_000, baseline=2_000,
                                     started_at=started)))  # fmt: skip
    plain = record("plain-1", started_at=started, team="support",
                   attempts_=(attempt("plain-1", 0, started_at=started),))  # fmt: skip
    return [dataclasses.replace(evil, escalation_reason="low_confidence"), plain]


def _seed(url: str, records: list[RequestRecord]) -> None:
    upgrade(url)
    engine = create_db_engine(url)
    try:
        write_batch(engine, records)
    finally:
        engine.dispose()


def _formula_cells(text: str) -> list[str]:
    """Cells a spreadsheet would evaluate: text starting with a formula character that is not
    a plain number."""
    out = []
    for row in csv.reader(io.StringIO(text)):
        for cell in row:
            if cell.startswith(FORMULA_START):
                try:
                    float(cell)
                except ValueError:
                    out.append(cell)
    return out


def test_cli_costs_csv_neutralises_formulas_and_keeps_negative_numbers(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path)
    _seed(url, _records(time.time()))
    runner = CliRunner()
    app = _cli(ledger_commands.register)
    by_team = runner.invoke(app, ["costs", "--since", "1d", "--by", "team", "--format", "csv",
                                  "--database-url", url])  # fmt: skip
    assert by_team.exit_code == 0, by_team.output
    assert _formula_cells(by_team.stdout) == []
    rows = {row["key"]: row for row in csv.DictReader(io.StringIO(by_team.stdout))}
    evil = rows["'" + TEAM]  # shown as text, with the name intact after the quote
    assert evil["savings_nanos"] == "-14000" and evil["savings_usd"].startswith("-0.0000")
    assert float(evil["savings_usd"]) < 0  # still a number in the spreadsheet

    by_route = runner.invoke(app, ["costs", "--since", "1d", "--by", "route", "--format", "csv",
                                   "--database-url", url])  # fmt: skip
    assert by_route.exit_code == 0 and _formula_cells(by_route.stdout) == []
    assert "'" + ROUTE in by_route.stdout

    reasons = runner.invoke(app, ["costs", "--since", "1d", "--by", "reason", "--format", "csv",
                                  "--database-url", url])  # fmt: skip
    assert reasons.exit_code == 0, reasons.output
    assert _formula_cells(reasons.stdout) == []
    assert {row["route"] for row in csv.DictReader(io.StringIO(reasons.stdout))} >= {"'" + ROUTE}


def test_cli_costs_table_escapes_control_characters(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path)
    started = time.time() - 600
    _seed(url, [record("ctl-1", started_at=started, team="red\x1b[31m\nTOTAL  $0",
                       attempts_=(attempt("ctl-1", 0, started_at=started),))])  # fmt: skip
    args = ["costs", "--since", "1d", "--by", "team", "--database-url", url]
    table = CliRunner().invoke(_cli(ledger_commands.register), args)
    assert table.exit_code == 0, table.output
    assert "\x1b" not in table.stdout
    assert "red\\x1b[31m\\nTOTAL  $0" in table.stdout
    assert sum(line.startswith("TOTAL") for line in table.stdout.splitlines()) == 1


def test_keys_list_escapes_control_characters_in_team_and_name(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/keys.db"
    runner = CliRunner()
    app = _cli(limits_commands.register)
    created = runner.invoke(app, ["keys", "create", "--team", "ops\nsg-fake  forged-row",
                                  "--name", "bell\x07\x1b[2Jclear\u202etxt.exe",
                                  "--database-url", url])  # fmt: skip
    assert created.exit_code == 0, created.output
    listed = runner.invoke(app, ["keys", "list", "--database-url", url])
    assert listed.exit_code == 0, listed.output
    lines = listed.stdout.splitlines()
    assert len(lines) == 2, lines  # the header and one key: no forged row
    assert "ops\\nsg-fake  forged-row" in lines[1]
    assert "bell\\x07\\x1b[2Jclear\\u202etxt.exe" in lines[1]
    assert not any(c in listed.stdout for c in "\x07\x1b\u202e")


@pytest.mark.e2e
@pytest.mark.browser
@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian chromium")
def test_dashboard_csv_neutralises_formulas_and_keeps_negative_numbers(tmp_path: Path) -> None:
    env = {"STEPGATE_ADMIN_KEY": ADMIN, "STEPGATE_PRELOAD_AR": "false",
           "TEST_OPENAI_KEY": "unused", "TEST_ANTHROPIC_KEY": "unused"}  # fmt: skip
    with serve(idle_policy(tmp_path), tmp_path, env=env) as base:
        _seed(f"sqlite:///{tmp_path}/ledger.db", _records(time.time()))
        with chromium() as page:
            page.goto(base + "/dashboard")
            page.evaluate(
                f"document.getElementById('key').value = {ADMIN!r};"
                "document.querySelector('form.login-form').submit(); true"
            )
            page.wait_for("document.body.dataset.state === 'ready'")
            text = page.evaluate("stepgateDashboard.csv()")
    assert _formula_cells(text) == []
    rows = list(csv.reader(io.StringIO(text)))
    teams = [row for row in rows if row and row[0] == "'" + TEAM]
    assert teams, text
    savings = teams[0][4]  # top_teams: team, requests, spend_usd, baseline_usd, savings_usd
    assert savings.startswith("-") and float(savings) < 0
    assert any(row[3] == "'" + ROUTE for row in rows if len(row) > 3)  # a recent request's route
