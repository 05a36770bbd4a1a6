"""State-changing admin requests refuse a foreign Origin/Referer (CSRF), and the trailing-slash
redirect never echoes the request's Host into `Location`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from starlette.testclient import TestClient

from tests.security.support import ADMIN, BEARER, admin_app

FOREIGN = [
    {"origin": "http://evil.example"},
    {"origin": "https://testserver"},  # same host, other scheme
    {"origin": "http://testserver:8080"},  # same host, other port
    {"origin": "null"},  # sandboxed frames, file: pages
    {"origin": "garbage"},
    {"referer": "http://evil.example/page?x=1"},  # no Origin: the Referer decides
]
SAME = [
    {},  # CLI, curl: no Origin, no Referer
    {"origin": "http://testserver"},
    {"origin": "HTTP://TestServer:80"},
    {"referer": "http://testserver/dashboard"},
]


@pytest.fixture
def app(tmp_path: Path) -> Iterator[TestClient]:
    with admin_app(tmp_path) as client:
        yield client


def _refused(response: httpx.Response) -> None:
    body = response.json()
    assert response.status_code == 403, body
    assert body["error"]["type"] == "permission_error"
    assert "cross-origin request refused" in body["error"]["message"]


@pytest.mark.parametrize("headers", FOREIGN)
def test_policy_reload_from_another_origin_is_refused(
    app: TestClient, headers: dict[str, str]
) -> None:
    _refused(app.post("/admin/policy/reload", headers={**BEARER, **headers}))


@pytest.mark.parametrize("headers", SAME)
def test_policy_reload_from_our_origin_or_no_browser_is_allowed(
    app: TestClient, headers: dict[str, str]
) -> None:
    response = app.post("/admin/policy/reload", headers={**BEARER, **headers})
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("headers", FOREIGN)
def test_dashboard_sign_in_and_out_from_another_origin_are_refused(
    app: TestClient, headers: dict[str, str]
) -> None:
    login = app.post("/dashboard/login", data={"key": ADMIN}, headers=headers,
                     follow_redirects=False)  # fmt: skip
    _refused(login)
    assert "set-cookie" not in login.headers
    # A real session survives a forged sign-out.
    ok = app.post("/dashboard/login", data={"key": ADMIN}, follow_redirects=False)
    assert ok.status_code == 303
    _refused(app.post("/dashboard/logout", headers=headers, follow_redirects=False))
    assert app.get("/v1/spend/summary").status_code == 200


@pytest.mark.parametrize("headers", SAME)
def test_dashboard_sign_in_from_our_origin_works(app: TestClient, headers: dict[str, str]) -> None:
    login = app.post("/dashboard/login", data={"key": ADMIN}, headers=headers,
                     follow_redirects=False)  # fmt: skip
    assert login.status_code == 303
    out = app.post("/dashboard/logout", headers=headers, follow_redirects=False)
    assert out.status_code == 303


def test_the_origin_is_compared_with_the_host_the_request_names(tmp_path: Path) -> None:
    with admin_app(tmp_path, base_url="https://gw.example:8443") as client:
        ours = {**BEARER, "origin": "https://gw.example:8443"}
        assert client.post("/admin/policy/reload", headers=ours).status_code == 200
        _refused(client.post("/admin/policy/reload",
                             headers={**BEARER, "origin": "http://gw.example:8443"}))  # fmt: skip


@pytest.mark.parametrize(
    ("path", "location"),
    [
        ("/dashboard/login/", "/dashboard/login"),
        ("/healthz/", "/healthz"),
        ("/v1/spend/summary/?range=7d", "/v1/spend/summary?range=7d"),
        ("/dashboard/api/meta/", "/dashboard/api/meta"),
    ],
)
def test_slash_redirect_is_relative_whatever_the_host_header(
    app: TestClient, path: str, location: str
) -> None:
    response = app.get(path, headers={"host": "evil.example"}, follow_redirects=False)
    assert response.status_code == 307
    assert response.headers["location"] == location
    assert "evil" not in response.headers["location"]


def test_paths_without_a_slash_twin_are_404_in_the_error_tree(app: TestClient) -> None:
    for path in ("/nope/", "/nope", "//evil.example/", "/v1/spend/"):
        response = app.get(path, headers={"host": "evil.example"}, follow_redirects=False)
        assert response.status_code == 404, (path, response.headers.get("location"))
        assert response.json()["error"]["code"] == "caller_not_found"
