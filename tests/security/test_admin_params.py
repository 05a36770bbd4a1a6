"""Bad time, cursor, limit and filter parameters on the admin reads (`/v1/spend/*`,
`/dashboard/api/*`) and `stepgate costs` are the caller's 400 / exit 2, never a 500 or 503."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest
import typer
from starlette.testclient import TestClient
from typer.testing import CliRunner

from gateway.db.migrate import upgrade
from gateway.ledger.commands import register
from tests.security.support import ADMIN, BEARER, admin_app, idle_policy
from tests.support.e2e_server import serve
from tests.support.ledger import sqlite_url, temp_postgres

SPEND = ("/v1/spend/summary", "/v1/spend/timeseries", "/v1/spend/escalations")
DASHBOARD = ("/dashboard/api/requests", "/dashboard/api/keys")

# (query, the parameter the 400 must name)
WINDOWS: list[tuple[dict[str, str], str]] = [
    ({"since": "inf"}, "since"),
    ({"since": "-inf"}, "since"),
    ({"since": "nan"}, "since"),
    ({"since": "NaN"}, "since"),
    ({"since": "1e400"}, "since"),
    ({"since": "-1"}, "since"),
    ({"since": "-1e18"}, "since"),
    ({"since": "1e15"}, "since"),
    ({"since": "0001-01-01T00:00:00+14:00"}, "since"),
    ({"since": "9" * 5000 + "d"}, "since"),
    ({"until": "1e15"}, "until"),
    ({"until": "inf"}, "until"),
    ({"until": "nan"}, "until"),
    ({"until": "9999-12-31T23:59:59"}, "until"),
    ({"range": "999999999999999999999w"}, "range"),
    ({"range": "999999999999w"}, "range"),
    ({"range": "-7d"}, "range"),
    ({"team": "a\x00b"}, "team"),
    ({"route": "\x00"}, "route"),
    ({"kind": "classify\x00"}, "kind"),
]


def _cursor(value: object) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(value)).decode().rstrip("=")


DASHBOARD_ONLY: list[tuple[str, dict[str, str], str]] = [
    ("/dashboard/api/requests", {"cursor": "garbage!!"}, "cursor"),
    ("/dashboard/api/requests", {"cursor": "é"}, "cursor"),
    ("/dashboard/api/requests", {"cursor": _cursor([1e20, "r"])}, "cursor"),
    ("/dashboard/api/requests", {"cursor": _cursor([-1e20, "r"])}, "cursor"),
    ("/dashboard/api/requests", {"cursor": _cursor(["nan", "r"])}, "cursor"),
    ("/dashboard/api/requests", {"cursor": _cursor([1.7e9, "r\x00"])}, "cursor"),
    ("/dashboard/api/requests", {"cursor": _cursor([1.7e9, "r", 3])}, "cursor"),
    ("/dashboard/api/requests", {"cursor": _cursor({"a": 1, "b": 2})}, "cursor"),
    ("/dashboard/api/requests", {"cursor": _cursor(5)}, "cursor"),
    ("/dashboard/api/requests", {"cursor": "A" * 10_000}, "cursor"),
    ("/dashboard/api/requests", {"limit": "-1"}, "limit"),
    ("/dashboard/api/requests", {"limit": "0"}, "limit"),
    ("/dashboard/api/requests", {"limit": "NaN"}, "limit"),
    ("/dashboard/api/requests", {"limit": "9" * 5000}, "limit"),
    ("/dashboard/api/keys", {"limit": "99999999999999999999"}, "limit"),
    ("/dashboard/api/keys", {"limit": "-5"}, "limit"),
]


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def app(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestClient]:
    workdir = tmp_path_factory.mktemp("params")
    if request.param == "sqlite":
        with admin_app(workdir) as client:
            yield client
    else:
        with temp_postgres() as url, admin_app(workdir, database_url=url) as client:
            yield client


def _assert_400(response: httpx.Response, param: str) -> None:
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param, error
    assert error["message"]


@pytest.mark.parametrize("path", SPEND + DASHBOARD)
@pytest.mark.parametrize(("query", "param"), WINDOWS)
def test_bad_window_or_filter_is_a_400_naming_the_parameter(
    app: TestClient, path: str, query: dict[str, str], param: str
) -> None:
    _assert_400(app.get(path, params=query, headers=BEARER), param)


@pytest.mark.parametrize(("path", "query", "param"), DASHBOARD_ONLY)
def test_bad_cursor_or_limit_is_a_400_naming_the_parameter(
    app: TestClient, path: str, query: dict[str, str], param: str
) -> None:
    _assert_400(app.get(path, params=query, headers=BEARER), param)


def test_the_accepted_forms_still_work(app: TestClient) -> None:
    # The widest windows there are (a time series over them is refused for its point count).
    for query in ({"since": "0"}, {"until": "9999-12-30T00:00:00Z"}):
        for path in SPEND + DASHBOARD:
            if path != "/v1/spend/timeseries":
                response = app.get(path, params=query, headers=BEARER)
                assert response.status_code == 200, (path, query, response.text)
    for query in ({"range": "30d"}, {"team": "support\n"}, {"since": f"{time.time() - 86400.5}"}):
        for path in SPEND + DASHBOARD:
            response = app.get(path, params=query, headers=BEARER)
            assert response.status_code == 200, (path, query, response.text)
    out_of_range = app.get("/v1/spend/summary", params={"until": "1e15"}, headers=BEARER)
    assert "1970 to 9999" in out_of_range.json()["error"]["message"]


@pytest.mark.e2e
def test_over_real_http_every_bad_parameter_gets_an_answer(tmp_path: Path) -> None:
    """Through `stepgate serve`: each bad value is answered with a 400 on a connection that
    stays usable (no reset, no 500)."""
    env = {"STEPGATE_ADMIN_KEY": ADMIN, "STEPGATE_PRELOAD_AR": "false",
           "TEST_OPENAI_KEY": "unused", "TEST_ANTHROPIC_KEY": "unused"}  # fmt: skip
    with (
        serve(idle_policy(tmp_path), tmp_path, env=env) as base,
        httpx.Client(base_url=base, headers=BEARER, timeout=10) as http,
    ):
        for path in SPEND + DASHBOARD:
            for query, param in WINDOWS:
                _assert_400(http.get(path, params=query), param)
        for path, query, param in DASHBOARD_ONLY:
            _assert_400(http.get(path, params=query), param)
        assert http.get("/v1/spend/summary").status_code == 200


@pytest.fixture
def costs_cli(tmp_path: Path) -> tuple[typer.Typer, str]:
    app = typer.Typer()
    register(app)

    @app.callback()
    def _root() -> None:  # keep `costs` a subcommand
        pass

    url = sqlite_url(tmp_path)
    upgrade(url)
    return app, url


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["--since", "inf"], "--since"),
        (["--since", "nan"], "--since"),
        (["--since", "-1"], "--since"),
        (["--since", "999999999999999999999w"], "--since"),
        (["--since", "999999999999w"], "--since"),
        (["--until", "1e15"], "--until"),
        (["--team", "a\x00b"], "--team"),
    ],
)
def test_cli_costs_rejects_the_same_values_with_exit_2(
    costs_cli: tuple[typer.Typer, str], args: list[str], option: str
) -> None:
    app, url = costs_cli
    result = CliRunner().invoke(app, ["costs", *args, "--database-url", url])
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert f"stepgate costs: {option}: invalid" in result.output
