"""Every route of the app is classified: inference routes need a key (STEPGATE_REQUIRE_KEYS),
admin routes need STEPGATE_ADMIN_KEY, and only a short list is public. A new route that is not
classified here fails the test, so nobody adds an unauthenticated endpoint by accident."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from starlette.routing import Mount, Route

from gateway.app import create_app
from gateway.settings import Settings
from tests.support.fakes.upstream import FakeUpstream
from tests.support.limits import ADMIN_KEY, app_client, bearer, chat, mint, revoke

INFERENCE = {"/v1/chat/completions", "/chat/completions", "/v1/messages", "/v1/models"}
ADMIN_PREFIXES = ("/admin/", "/v1/spend/", "/dashboard/api/")
ADMIN = {"/dashboard", "/dashboard/"}
# Health for orchestrators, Prometheus scraping, and the dashboard's login page and assets.
PUBLIC = {"/healthz", "/readyz", "/metrics", "/dashboard/logout", "/dashboard/static"}
# The login form is public; posting it checks the admin key (form field `key`).
LOGIN = ("/dashboard/login", "POST")


def _classify(path: str, method: str = "GET") -> str:
    if (path, method) == LOGIN:
        return "login"
    if path == LOGIN[0]:
        return "public"
    if path in INFERENCE:
        return "inference"
    if path in ADMIN or path.startswith(ADMIN_PREFIXES):
        return "admin"
    if path in PUBLIC:
        return "public"
    raise AssertionError(
        f"route {path} is not classified: add it to INFERENCE, ADMIN or PUBLIC in "
        "tests/ingress/test_auth_routes.py (and make sure it checks the right key)"
    )


def _routes() -> list[tuple[str, str]]:
    app = create_app(Settings())
    out: list[tuple[str, str]] = []
    for route in app.routes:
        if isinstance(route, Route):
            for method in sorted((route.methods or set()) - {"HEAD"}):
                out.append((route.path, method))
        elif isinstance(route, Mount):
            out.append((route.path, "GET"))
        else:  # pragma: no cover - a new kind of route needs a look
            raise AssertionError(f"unexpected route type {route!r}")
    return out


def _call(client: Any, path: str, method: str, headers: dict[str, str]) -> Any:
    if path == "/dashboard/static":
        path = "/dashboard/static/none.js"
    if path == "/v1/messages":
        body = {"model": "auto", "max_tokens": 50, "messages": chat()["messages"]}
        sent = {**headers, "anthropic-version": "2023-06-01"}
        return client.post(path, json=body, headers=sent, follow_redirects=False)
    if method == "POST":
        body = chat() if path in INFERENCE else {}
        return client.post(path, json=body, headers=headers, follow_redirects=False)
    return client.get(path, headers=headers, follow_redirects=False)


def test_every_route_is_classified() -> None:
    routes = _routes()
    assert routes
    kinds = {_classify(path, method) for path, method in routes}
    assert kinds == {"inference", "admin", "public", "login"}


@pytest.fixture
def secured(
    policy_file: Path, tmp_path: Path, fake_dllm: FakeUpstream, fake_openai: FakeUpstream
) -> Any:
    url = f"sqlite:///{tmp_path}/ledger.db"
    good, _ = mint(url, "support")
    revoked, revoked_id = mint(url, "support")
    revoke(url, revoked_id)
    with app_client(policy_file, tmp_path, require_keys=True, admin_key=ADMIN_KEY) as client:
        yield client, good, revoked


def test_inference_routes_need_a_valid_key(secured: Any) -> None:
    client, good, revoked = secured
    forged = good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB")
    unknown = "sg-000000000000-" + "x" * 43
    for path, method in _routes():
        if _classify(path, method) != "inference":
            continue
        for headers in ({}, bearer(unknown), bearer(forged), bearer(revoked), bearer(ADMIN_KEY)):
            r = _call(client, path, method, headers)
            assert r.status_code == 401, (path, method, headers, r.text)
            error = r.json()["error"]
            assert error["type"] == "authentication_error" and error["message"]
        r = _call(client, path, method, bearer(good))
        assert r.status_code == 200, (path, method, r.text)
        r = _call(client, path, method, {"x-api-key": good})
        assert r.status_code == 200, (path, method, r.text)


def test_admin_routes_need_the_admin_key(secured: Any) -> None:
    client, good, _ = secured
    for path, method in _routes():
        if _classify(path, method) != "admin":
            continue
        for headers in ({}, bearer(good), bearer("not-the-admin-key-at-all")):
            r = _call(client, path, method, headers)
            assert r.status_code == 401, (path, method, headers, r.status_code)
        r = _call(client, path, method, bearer(ADMIN_KEY))
        assert r.status_code not in (401, 403), (path, method, r.text)


def test_public_routes_answer_without_keys(secured: Any) -> None:
    client, _, _ = secured
    for path, method in _routes():
        if _classify(path, method) == "public":
            r = _call(client, path, method, {})
            assert r.status_code not in (401, 403), (path, method, r.status_code)


def test_keys_optional_still_refuses_a_bad_sg_key(
    policy_file: Path, tmp_path: Path, fake_dllm: FakeUpstream, fake_openai: FakeUpstream
) -> None:
    """Without REQUIRE_KEYS anonymous calls pass, but a revoked key is never served."""
    url = f"sqlite:///{tmp_path}/ledger.db"
    key, key_id = mint(url, "support")
    revoke(url, key_id)
    with app_client(policy_file, tmp_path) as client:
        assert client.post("/v1/chat/completions", json=chat()).status_code == 200
        assert (
            client.post("/v1/chat/completions", json=chat(), headers=bearer("sk-any")).status_code
            == 200
        )
        r = client.post("/v1/chat/completions", json=chat(), headers=bearer(key))
        assert r.status_code == 401


def test_dashboard_login_checks_the_admin_key(secured: Any) -> None:
    client, good, _ = secured
    form = {"content-type": "application/x-www-form-urlencoded"}
    for key in ("", good, "not-the-admin-key-at-all"):
        r = client.post(LOGIN[0], content=f"key={key}", headers=form, follow_redirects=False)
        assert r.status_code == 401
    r = client.post(LOGIN[0], content=f"key={ADMIN_KEY}", headers=form, follow_redirects=False)
    assert r.status_code == 303
