"""The cost dashboard: sign-in, assets, its JSON reads (SQLite and PostgreSQL) and, in headless
Chromium against a real `stepgate serve`, KPIs equal to the ledger, charts drawn, filters, CSV,
and the backend health panel over the circuit breakers (issue 15, item 2)."""

from __future__ import annotations

import dataclasses
import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from gateway.app import create_app
from gateway.core.records import RequestRecord
from gateway.db.engine import create_db_engine
from gateway.db.migrate import upgrade
from gateway.ledger.store import write_batch
from gateway.settings import Settings
from tests.ledger.test_dashboard_browser import CHROMIUM, Page, chromium
from tests.support.app_client import running_app
from tests.support.e2e_server import serve
from tests.support.fakes.upstream import FakeUpstream, persistent, status
from tests.support.ledger import attempt, record, temp_postgres

ADMIN = "dashboard-test-admin-key-0123456789"
CHARTS = ("chart-route-spend", "chart-savings", "chart-kind", "chart-latency", "chart-escalations")
REASONS = ("low_confidence", "schema_invalid", "label_not_allowed")

needs_chromium = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian chromium")


def _seed_records(now: float, n: int = 120) -> list[RequestRecord]:
    """Traffic from the last two days: two routes, three teams, three keys, some escalations."""
    rng = random.Random(3)
    out: list[RequestRecord] = []
    for i in range(n):
        started = now - 3600 - rng.uniform(0, 2 * 86400)
        route = "fast" if i % 3 else "deep"
        rid = f"seed-{i:04d}"
        backend = "dllm" if route == "fast" else "ar-openai"
        tries = [attempt(rid, 0, backend=backend, cost=rng.randint(1_000, 90_000),
                         baseline=rng.randint(100_000, 200_000), started_at=started)]  # fmt: skip
        escalated = route == "fast" and i % 5 == 0
        if escalated:
            tries.append(attempt(rid, 1, backend="ar-openai", role="escalation", cost=150_000,
                                 baseline=150_000, started_at=started))  # fmt: skip
        base = record(
            rid,
            started_at=started,
            route=route,
            team=("support", "billing", None)[i % 3 if i % 7 else 0],
            kind="reason" if route == "deep" else ("classify", "extract", "format")[i % 3],
            latency_ms=rng.lognormvariate(4 if route == "fast" else 6, 0.5),
            escalated=escalated,
            attempts_=tuple(tries),
        )
        out.append(
            dataclasses.replace(
                base,
                api_key_id=f"key-{i % 3}",
                escalation_reason=REASONS[i % 3] if escalated else None,
            )
        )
    return out


def _seed(url: str, records: list[RequestRecord]) -> None:
    upgrade(url)
    engine = create_db_engine(url)
    try:
        write_batch(engine, records)
    finally:
        engine.dispose()


# ---- sign-in, assets and the JSON reads, in process -------------------------------------------


@pytest.fixture
def app_client(policy_file: Path, tmp_path: Path) -> Iterator[TestClient]:
    with running_app(policy_file, tmp_path, admin_key=ADMIN) as client:
        yield client


def test_sign_in_sets_an_httponly_cookie_and_sign_out_clears_it(app_client: TestClient) -> None:
    page = app_client.get("/dashboard")
    assert page.status_code == 401
    assert page.headers["content-type"].startswith("text/html")
    assert 'action="/dashboard/login"' in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]

    wrong = app_client.post("/dashboard/login", data={"key": "nope"}, follow_redirects=False)
    assert wrong.status_code == 401 and "Invalid admin key" in wrong.text
    assert "set-cookie" not in wrong.headers
    assert app_client.get("/v1/spend/summary").status_code == 401

    ok = app_client.post("/dashboard/login", data={"key": ADMIN}, follow_redirects=False)
    assert ok.status_code == 303 and ok.headers["location"] == "/dashboard"
    cookie = ok.headers["set-cookie"].lower()
    assert cookie.startswith("stepgate_admin=")
    for attribute in ("httponly", "samesite=strict", "path=/", "max-age=43200"):
        assert attribute in cookie

    page = app_client.get("/dashboard")  # the client keeps the cookie
    assert page.status_code == 200
    assert "/dashboard/static/vendor/chart.umd.min.js?v=" in page.text
    assert "cdn" not in page.text.lower() and "https://" not in page.text
    assert app_client.get("/v1/spend/summary").status_code == 200
    assert app_client.get("/dashboard/api/meta").status_code == 200

    out = app_client.post("/dashboard/logout", follow_redirects=False)
    assert out.status_code == 303
    assert (
        'stepgate_admin=""' in out.headers["set-cookie"]
        or "max-age=0" in out.headers["set-cookie"].lower()
    )
    app_client.cookies.clear()
    assert app_client.get("/dashboard").status_code == 401
    api = app_client.get("/dashboard/api/requests")
    assert api.status_code == 401 and api.json()["error"]["type"] == "authentication_error"

    bearer = {"authorization": f"Bearer {ADMIN}"}
    assert app_client.get("/dashboard", headers=bearer).status_code == 200


def test_dashboard_is_disabled_without_an_admin_key(client: TestClient) -> None:
    page = client.get("/dashboard")
    assert page.status_code == 403 and "STEPGATE_ADMIN_KEY" in page.text
    assert client.post("/dashboard/login", data={"key": "x"}).status_code == 403


def test_static_assets_have_content_types_and_cache_headers(app_client: TestClient) -> None:
    page = app_client.get("/dashboard", headers={"authorization": f"Bearer {ADMIN}"}).text
    versioned = [part.split('"')[0] for part in page.split('src="')[1:] + page.split('href="')[1:]]
    assets = {u.split("?")[0].rsplit(".", 1)[-1]: u for u in versioned if "/static/" in u}
    expected = {"js": "javascript", "css": "text/css"}
    assert set(assets) == set(expected)
    for ext, url in assets.items():
        response = app_client.get(url)
        assert response.status_code == 200
        assert expected[ext] in response.headers["content-type"]
        assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert response.headers["etag"]
    chart = app_client.get("/dashboard/static/vendor/chart.umd.min.js")
    assert "javascript" in chart.headers["content-type"]
    assert "must-revalidate" in chart.headers["cache-control"]
    assert chart.text.startswith("/*!\n * Chart.js v4.")
    again = app_client.get(
        "/dashboard/static/vendor/chart.umd.min.js",
        headers={"if-none-match": chart.headers["etag"]},
    )
    assert again.status_code == 304
    assert app_client.get("/dashboard/static/nope.js").status_code == 404
    assert app_client.get("/dashboard/static/../../api/dashboard.py").status_code == 404


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def seeded(
    request: pytest.FixtureRequest, policy_file: Path, tmp_path: Path
) -> Iterator[tuple[TestClient, list[RequestRecord]]]:
    records = _seed_records(time.time())

    def client_for(url: str) -> Iterator[tuple[TestClient, list[RequestRecord]]]:
        _seed(url, records)
        settings = Settings(policy=policy_file, database_url=url, spool_dir=tmp_path / "spool",
                            policy_poll_s=0, admin_key=ADMIN)  # fmt: skip
        with TestClient(create_app(settings), raise_server_exceptions=False) as client:
            client.headers["authorization"] = f"Bearer {ADMIN}"
            yield client, records

    if request.param == "sqlite":
        yield from client_for(f"sqlite:///{tmp_path}/ledger.db")
    else:
        with temp_postgres() as url:
            yield from client_for(url)


def test_recent_requests_pages_cover_the_window_once_newest_first(
    seeded: tuple[TestClient, list[RequestRecord]],
) -> None:
    client, records = seeded
    seen: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        params = {"range": "7d", "limit": "25", **({"cursor": cursor} if cursor else {})}
        page = client.get("/dashboard/api/requests", params=params)
        assert page.status_code == 200, page.text
        body = page.json()
        assert len(body["items"]) <= 25
        seen += body["items"]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    expected = sorted(records, key=lambda r: (r.started_at, r.request_id), reverse=True)
    assert [item["request_id"] for item in seen] == [r.request_id for r in expected]
    first = seen[0]
    newest = expected[0]
    assert first["cost_nanos"] == newest.cost_nanos
    assert first["backend"] == newest.final_backend and first["kind"] == newest.step_kind

    deep = client.get("/dashboard/api/requests", params={"range": "7d", "route": "deep",
                                                         "limit": "200"}).json()  # fmt: skip
    assert {i["route"] for i in deep["items"]} == {"deep"}
    assert len(deep["items"]) == sum(r.route == "deep" for r in records)
    escalated = client.get("/dashboard/api/requests", params={"range": "7d", "escalated": "true",
                                                              "limit": "200"}).json()  # fmt: skip
    assert len(escalated["items"]) == sum(r.escalated for r in records)
    assert all(i["escalated"] and i["escalation_reason"] in REASONS for i in escalated["items"])

    bad = client.get("/dashboard/api/requests", params={"cursor": "!!", "range": "7d"})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "cursor"
    assert client.get("/dashboard/api/requests", params={"limit": "0"}).status_code == 400
    assert client.get("/dashboard/api/requests", params={"group_by": "team"}).status_code == 400


def test_top_keys_and_filter_choices_match_the_records(
    seeded: tuple[TestClient, list[RequestRecord]],
) -> None:
    client, records = seeded
    keys = client.get("/dashboard/api/keys", params={"range": "7d", "team": "billing"}).json()
    spend: dict[str, int] = {}
    for r in records:
        if r.team == "billing":
            spend[str(r.api_key_id)] = spend.get(str(r.api_key_id), 0) + (r.cost_nanos or 0)
    assert {k["api_key_id"]: k["cost_nanos"] for k in keys["keys"]} == spend
    assert [k["cost_nanos"] for k in keys["keys"]] == sorted(spend.values(), reverse=True)
    assert keys["capped"] is False
    month = client.get("/dashboard/api/keys", params={"range": "30d"}).json()
    assert month["capped"] is True and month["since"] > month["requested_since"]

    meta = client.get("/dashboard/api/meta").json()
    assert meta["backends"] == {"dllm": "dllm", "ar-openai": "litellm", "ar-anthropic": "litellm"}
    assert meta["routes"] == ["fast", "deep"] and meta["teams"] == ["billing", "support"]


# ---- backend health: /v1/spend/health over the circuit breakers --------------------------------

# A dLLM backend and a dLLM fallback (no litellm import: a gateway start stays fast). The
# fallback's name is markup, which the panel must show as text.
HEALTH_POLICY = """
version: 1
backends:
  dllm:
    type: dllm
    engine: vllm
    base_url: {dllm}
    model: test-diffusion
    timeouts: {{connect_s: 1, request_s: 5}}
    pricing: {{input_per_mtok_usd: "0.05", output_per_mtok_usd: "0.20"}}
  '{backup}':
    type: dllm
    engine: openai
    base_url: {openai}
    model: test-backup
    timeouts: {{connect_s: 1, request_s: 5}}
    pricing: {{input_per_mtok_usd: "0.40", output_per_mtok_usd: "1.60"}}
baseline: '{backup}'
retry: {{max_attempts: 2, backoff_base_ms: 1, backoff_max_ms: 2}}
circuit_breaker: {{failures: 3, cooldown_s: {cooldown}}}
routes:
  - name: fast
    target: dllm
    fallbacks: ['{backup}']
default_route: fast
"""
CHAT = {"model": "auto", "messages": [{"role": "user", "content": "billing or shipping?"}]}
MARKUP_BACKUP = "backup<img src=x onerror=window.__pwned=1>"
NONE = "\u2013"  # the panel's en dash for "no value"


def _health_policy(
    tmp_path: Path,
    fake_dllm: FakeUpstream,
    fake_openai: FakeUpstream,
    *,
    backup: str = "backup",
    cooldown: float = 60,
) -> Path:
    path = tmp_path / "health-policy.yaml"
    path.write_text(HEALTH_POLICY.format(dllm=fake_dllm.openai_base, openai=fake_openai.openai_base,
                                         backup=backup, cooldown=cooldown))  # fmt: skip
    return path


def test_spend_health_reports_an_open_breaker_and_a_closed_fallback(
    tmp_path: Path, fake_dllm: FakeUpstream, fake_openai: FakeUpstream
) -> None:
    fake_dllm.script([persistent(status(503))])
    fake_openai.set_reply("shipping")
    policy = _health_policy(tmp_path, fake_dllm, fake_openai)
    with running_app(policy, tmp_path, admin_key=ADMIN) as client:
        denied = client.get("/v1/spend/health")
        assert denied.status_code == 401
        assert denied.json()["error"]["type"] == "authentication_error"
        wrong = client.get("/v1/spend/health", headers={"authorization": "Bearer nope"})
        assert wrong.status_code == 401

        bearer = {"authorization": f"Bearer {ADMIN}"}
        before = client.get("/v1/spend/health", headers=bearer)
        assert before.status_code == 200, before.text
        assert before.headers["cache-control"] == "no-store"
        body = before.json()
        assert [b["name"] for b in body["backends"]] == ["dllm", "backup"]  # policy order
        assert {b["state"] for b in body["backends"]} == {"closed"}
        assert body["circuit_breaker"]["failures"] == 3
        assert body["circuit_breaker"]["cooldown_s"] == 60

        started = time.time()
        for _ in range(4):
            r = client.post("/v1/chat/completions", json=CHAT)
            assert r.status_code == 200, r.text
            assert r.headers["x-stepgate-backend"] == "backup"
        assert len(fake_dllm.requests) == 3  # opened after 3 failures, then skipped

        body = client.get("/v1/spend/health", headers=bearer).json()
        assert started - 1 <= body["now"] <= time.time() + 1
        backends = {b["name"]: b for b in body["backends"]}
        dllm, backup = backends["dllm"], backends["backup"]
        assert dllm["type"] == "dllm" and dllm["state"] == "open" and dllm["ready"] is False
        assert dllm["window_failures"] == 3 and dllm["window_calls"] == 3
        assert dllm["consecutive_failures"] == 3
        assert started - 1 <= dllm["opened_at"] <= body["now"]
        assert dllm["retry_at"] == pytest.approx(dllm["opened_at"] + 60, abs=0.5)
        assert dllm["retry_at"] > body["now"]
        assert backup["state"] == "closed" and backup["ready"] is True
        assert backup["window_failures"] == 0 and backup["window_calls"] == 4
        assert backup["opened_at"] is None and backup["retry_at"] is None

        # The dashboard's session cookie reaches it too (the cookie covers /v1/spend).
        client.post("/dashboard/login", data={"key": ADMIN}, follow_redirects=False)
        assert client.get("/v1/spend/health").json()["backends"][0]["state"] == "open"
        bad = client.get("/v1/spend/health", params={"range": "7d"})
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "range"


def test_spend_health_is_disabled_without_an_admin_key(client: TestClient) -> None:
    assert client.get("/v1/spend/health").status_code == 403


# ---- the page in headless Chromium against `stepgate serve` ------------------------------------


def _api(base: str, path: str, **params: str) -> dict[str, Any]:
    response = httpx.get(
        base + path, params=params, headers={"authorization": f"Bearer {ADMIN}"}, timeout=30
    )
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body


def _wait_for_requests(base: str, count: int) -> dict[str, Any]:
    """The ledger writes in batches: poll until it holds `count` requests."""
    deadline = time.monotonic() + 15
    while True:
        totals: dict[str, Any] = _api(base, "/v1/spend/summary", range="7d")["totals"]
        if totals["requests"] >= count or time.monotonic() > deadline:
            assert totals["requests"] == count
            return totals
        time.sleep(0.1)


def _sign_in(page: Page, base: str) -> None:
    page.goto(base + "/dashboard")
    assert page.evaluate("document.querySelector('form.login-form') !== null")
    page.evaluate(
        f"document.getElementById('key').value = {ADMIN!r};"
        "document.querySelector('form.login-form').submit(); true"
    )
    page.wait_for("document.body.dataset.state && document.body.dataset.state !== 'loading'")


def _kpis(page: Page) -> dict[str, str]:
    return dict(
        page.evaluate(
            "Object.fromEntries([...document.querySelectorAll('[data-kpi]')]"
            ".map(el => [el.dataset.kpi, el.dataset.value]))"
        )
    )


CHART_STATE = """
Object.fromEntries(%s.map(id => {
  const canvas = document.getElementById(id);
  const chart = Chart.getChart(canvas);
  if (!chart) return [id, null];
  const points = chart.data.datasets.map(d => d.data.filter(v => v !== null && v !== 0).length);
  const ctx = canvas.getContext('2d');
  const pixels = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
  let painted = 0;
  for (let i = 3; i < pixels.length; i += 16) if (pixels[i] > 0) painted++;
  return [id, {datasets: chart.data.datasets.length, points, painted, visible: !canvas.hidden}];
}))
"""


@needs_chromium
def test_dashboard_in_chromium_empty_then_matching_the_ledger(
    policy_file: Path, tmp_path: Path, fake_dllm: FakeUpstream, fake_openai: FakeUpstream
) -> None:
    fake_dllm.set_reply(content="refund", logprobs=[-0.01])
    with serve(policy_file, tmp_path, env={"STEPGATE_ADMIN_KEY": ADMIN}) as base:
        # One gateway for both states (a start costs seconds): first the empty ledger.
        with chromium() as page:
            _sign_in(page, base)
            assert page.evaluate("document.body.dataset.state") == "empty", page.console
            assert page.evaluate("document.getElementById('empty').hidden") is False
            assert "No traffic in this range yet" in page.evaluate(
                "document.getElementById('empty').innerText"
            )
            assert page.evaluate("document.getElementById('content').hidden") is True
            assert page.evaluate("Object.keys(Chart.instances).length") == 0
            assert page.evaluate("document.getElementById('error').hidden") is True
            # Backend health sits outside the spend figures: shown with an empty ledger too.
            page.wait_for("document.getElementById('health').dataset.state === 'ready'")
            assert page.evaluate("document.getElementById('health').hidden") is False
            assert page.evaluate(
                "[...document.querySelectorAll('#t-health .badge-text')].map(b => b.textContent)"
            ) == ["up", "up", "up"]
            assert not page.exceptions, page.exceptions
            page.screenshot(tmp_path / "dashboard-empty.png")

        # Then history (written straight into the gateway's SQLite ledger) and live traffic.
        seeded = _seed_records(time.time())
        _seed(f"sqlite:///{tmp_path}/ledger.db", seeded)
        sent: list[str] = []
        # Live traffic on the dLLM route (the seeded rows cover the AR route: an AR call would
        # load litellm, which takes seconds on a loaded CI machine).
        for i in range(9):
            kind = ("classify", "extract", "format")[i % 3]
            response = httpx.post(
                base + "/v1/chat/completions",
                json={"model": "auto", "messages": [{"role": "user", "content": f"step {i}"}]},
                headers={"X-Step-Kind": kind},
                timeout=20,
            )
            assert response.status_code == 200, response.text
            sent.append(response.headers["x-request-id"])
        totals = _wait_for_requests(base, len(seeded) + len(sent))

        with chromium() as page:
            _sign_in(page, base)
            assert page.evaluate("document.body.dataset.state") == "ready", page.console
            cookies = page.send("Network.getCookies", {"urls": [base + "/dashboard"]})["cookies"]
            admin_cookie = next(c for c in cookies if c["name"] == "stepgate_admin")
            assert admin_cookie["httpOnly"] and admin_cookie["sameSite"] == "Strict"
            assert "stepgate_admin" not in page.evaluate("document.cookie")

            # KPI tiles carry the exact figures of the spend API (same range, same filters).
            kpis = _kpis(page)
            assert int(kpis["spend"]) == totals["cost_nanos"]
            assert int(kpis["baseline"]) == totals["baseline_cost_nanos"]
            assert int(kpis["savings"]) == totals["savings_nanos"]
            assert int(kpis["requests"]) == totals["requests"]
            assert float(kpis["escalation_rate"]) == totals["escalation_rate"]
            assert float(kpis["p95"]) == totals["latency_p95_ms"]
            by_backend = _api(base, "/v1/spend/summary", range="7d", group_by="backend")
            dllm = sum(g["requests"] for g in by_backend["groups"] if g["key"] == "dllm")
            assert float(kpis["dllm_share"]) == pytest.approx(dllm / totals["requests"])
            savings_pct = page.evaluate("document.querySelector('[data-kpi=savings]').dataset.pct")
            assert float(savings_pct) == pytest.approx(
                totals["savings_nanos"] / totals["baseline_cost_nanos"]
            )
            assert (
                page.evaluate(
                    "document.querySelector('[data-kpi=requests] .kpi-value').textContent"
                )
                == f"{totals['requests']:,}"
            )

            # Every chart is a Chart.js instance with data, and its canvas has paint on it.
            charts = page.evaluate(CHART_STATE % list(CHARTS))
            for name in CHARTS:
                state = charts[name]
                assert state is not None, f"{name} was not drawn"
                assert state["visible"] and state["datasets"] >= 1, (name, state)
                assert max(state["points"]) > 0, (name, state)
                assert state["painted"] > 500, (name, state)
            reasons = _api(base, "/v1/spend/escalations", range="7d")["reasons"]
            drawn = page.evaluate(
                "(() => { const c = Chart.getChart('chart-escalations');"
                " return [c.data.labels, c.data.datasets[0].data]; })()"
            )
            assert drawn == [[r["reason"] for r in reasons], [r["escalated"] for r in reasons]]
            assert set(drawn[0]) == {r.escalation_reason for r in seeded if r.escalated}
            route_spend = page.evaluate(
                "Chart.getChart('chart-route-spend').data.datasets.map(d => d.label)"
            )
            assert sorted(route_spend) == ["deep", "fast"]

            # Tables: the newest requests are the ones just sent; teams and keys are listed.
            ids = page.evaluate(
                "[...document.querySelectorAll('#t-recent tbody td[title]')].map(td => td.title)"
            )
            assert set(sent) <= set(ids)
            teams = page.evaluate("[...document.querySelectorAll('#t-teams tbody tr')].length")
            assert teams == 3  # support, billing, (no team)
            keys = page.evaluate(
                "[...document.querySelectorAll('#t-keys tbody code')].map(c => c.textContent)"
            )
            assert set(keys) == {"key-0", "key-1", "key-2"}

            # Paging to older requests and back.
            first_page = page.evaluate("document.querySelector('#t-recent tbody td[title]').title")
            page.evaluate("document.getElementById('next').click(); true")
            page.wait_for("document.getElementById('page').textContent.startsWith('Page 2')")
            page.wait_for(
                f"document.querySelector('#t-recent tbody td[title]').title !== {first_page!r}"
            )

            csv = page.evaluate("stepgateDashboard.csv()")
            assert f"spend_usd,{totals['cost_usd']}" in csv
            assert "spend_per_route_usd" in csv and "escalation_reasons" in csv

            # A filter changes the figures, to exactly the filtered ledger figures.
            loads = int(page.evaluate("document.body.dataset.loads"))
            page.evaluate(
                "const s = document.getElementById('f-route'); s.value = 'deep';"
                "s.dispatchEvent(new Event('change')); true"
            )
            page.wait_for(
                f"Number(document.body.dataset.loads) > {loads} "
                "&& document.body.dataset.state === 'ready'"
            )
            filtered = _api(base, "/v1/spend/summary", range="7d", route="deep")["totals"]
            kpis = _kpis(page)
            assert int(kpis["requests"]) == filtered["requests"] < totals["requests"]
            assert int(kpis["spend"]) == filtered["cost_nanos"] != totals["cost_nanos"]
            assert float(kpis["dllm_share"]) == 0.0
            assert "route=deep" in page.evaluate("location.search")
            assert not page.exceptions, page.exceptions

            page.screenshot(tmp_path / "dashboard.png")
            assert (tmp_path / "dashboard.png").stat().st_size > 20_000

            page.evaluate("document.getElementById('logout').click(); true")
            page.wait_for("location.pathname === '/dashboard/login'")
            cookies = page.send("Network.getCookies", {"urls": [base + "/dashboard"]})["cookies"]
            assert not [c for c in cookies if c["name"] == "stepgate_admin"]


# Each row's cells as a screen reader gets them: text, without the aria-hidden badge icons.
HEALTH_ROWS = """
Object.fromEntries([...document.querySelectorAll('#t-health tbody tr')].map(tr => [
  tr.dataset.backend,
  {state: tr.dataset.state, badge: tr.querySelector('.badge-text').textContent,
   cells: [...tr.cells].map(td => {
     const copy = td.cloneNode(true);
     copy.querySelectorAll('[aria-hidden=true]').forEach(e => e.remove());
     return copy.textContent.trim();
   })},
]))
"""


@needs_chromium
def test_health_panel_in_chromium_shows_the_open_backend_then_its_recovery(
    tmp_path: Path, fake_dllm: FakeUpstream, fake_openai: FakeUpstream
) -> None:
    fake_dllm.script([persistent(status(503))])
    fake_openai.set_reply("shipping")
    policy = _health_policy(tmp_path, fake_dllm, fake_openai, backup=MARKUP_BACKUP, cooldown=2)
    with serve(policy, tmp_path, env={"STEPGATE_ADMIN_KEY": ADMIN}) as base:
        for _ in range(3):
            r = httpx.post(base + "/v1/chat/completions", json=CHAT, timeout=20)
            assert r.status_code == 200, r.text
        assert len(fake_dllm.requests) == 3
        health = _api(base, "/v1/spend/health")
        assert [b["state"] for b in health["backends"]] == ["open", "closed"]

        with chromium() as page:
            _sign_in(page, base)
            page.wait_for("document.getElementById('health').dataset.state === 'ready'")
            rows = page.evaluate(HEALTH_ROWS)
            assert set(rows) == {"dllm", MARKUP_BACKUP}
            dllm, backup = rows["dllm"], rows[MARKUP_BACKUP]
            # Backend | Type | State | Failures / calls | Open since | Next probe
            assert dllm["state"] == "open" and dllm["badge"] == "open"
            assert dllm["cells"][2] == "open" and dllm["cells"][3] == "3 / 3"
            assert dllm["cells"][4].endswith("ago)") and dllm["cells"][5] != NONE
            assert backup["state"] == "closed" and backup["badge"] == "up"
            assert backup["cells"][0] == MARKUP_BACKUP and backup["cells"][3] == "0 / 3"
            assert backup["cells"][4] == backup["cells"][5] == NONE
            assert page.evaluate("document.querySelector('#t-health img') === null")
            assert page.evaluate("window.__pwned") is None
            assert page.evaluate("document.getElementById('health-summary').textContent") == (
                "1 open of 2 backends"
            )
            assert page.evaluate("document.getElementById('health').dataset.worst") == "open"
            # The backend recovers: after the cooldown one request probes it and closes the
            # breaker; the panel sees it on its own (it polls while a breaker is not closed).
            fake_dllm.reset_script()
            fake_dllm.set_reply("billing")
            time.sleep(2.1)
            r = httpx.post(base + "/v1/chat/completions", json=CHAT, timeout=20)
            assert r.headers["x-stepgate-backend"] == "dllm"
            loads = int(page.evaluate("document.getElementById('health').dataset.loads"))
            page.wait_for(
                "document.querySelector('#t-health tr[data-backend=dllm] .badge-text')"
                ".textContent === 'up'",
                timeout_s=12,
            )
            assert int(page.evaluate("document.getElementById('health').dataset.loads")) > loads
            assert page.evaluate("document.body.dataset.loads") == "1"  # no full reload
            assert page.evaluate("document.getElementById('health-summary').textContent") == (
                "All 2 backends up"
            )
            assert not page.exceptions, page.exceptions
            page.screenshot(tmp_path / "dashboard-health.png")


@needs_chromium
def test_negative_savings_are_red_in_chromium(policy_file: Path, tmp_path: Path) -> None:
    """A team whose routed steps cost more than the all-AR baseline: its savings (and the
    total's) show in the danger colour, never in the savings green."""
    now = time.time()
    losing = [
        record(
            f"loss-{i}",
            started_at=now - 600 - i,
            route="fast",
            team="billing",
            kind="classify",
            latency_ms=50.0,
            attempts_=(
                attempt(
                    f"loss-{i}",
                    0,
                    backend="dllm",
                    cost=90_000,
                    baseline=10_000,
                    started_at=now - 600 - i,
                ),
            ),
        )
        for i in range(3)
    ]
    _seed(f"sqlite:///{tmp_path}/ledger.db", losing)
    with serve(policy_file, tmp_path, env={"STEPGATE_ADMIN_KEY": ADMIN}) as base:
        totals = _wait_for_requests(base, len(losing))
        assert totals["savings_nanos"] == 3 * (10_000 - 90_000)
        with chromium() as page:
            _sign_in(page, base)
            assert page.evaluate("document.body.dataset.state") == "ready", page.console
            tile = "document.querySelector('[data-kpi=savings]')"
            assert page.evaluate(f"{tile}.classList.contains('kpi-bad')") is True
            assert page.evaluate(f"{tile}.classList.contains('kpi-good')") is False
            red = page.evaluate(f"getComputedStyle({tile}.querySelector('.kpi-value')).color")
            assert red == "rgb(185, 28, 28)"  # --bad: #b91c1c
            cells = page.evaluate(
                "[...document.querySelectorAll('#t-teams tbody td.num')]"
                ".filter(td => td.textContent.trim().startsWith('-'))"
                ".map(td => getComputedStyle(td).color)"
            )
            assert cells and set(cells) == {"rgb(185, 28, 28)"}, cells
            assert not page.exceptions, page.exceptions
