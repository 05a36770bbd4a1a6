"""Dashboard sign-in: the cookie carries a random server-side session token, never the admin
key; sign-out, expiry and a new admin key end the session; cookie attributes (HttpOnly,
SameSite=Strict, limited Path, Secure on https, forwarded https only from trusted proxies)."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterator
from http.cookies import SimpleCookie
from pathlib import Path

import httpx
import pytest
import redis
from starlette.testclient import TestClient

from gateway.api.sessions import MemorySessions, admin_fingerprint
from tests.security.support import ADMIN, admin_app, idle_policy
from tests.support.e2e_server import serve

REDIS_URL = "redis://127.0.0.1:6379/13"
OTHER_ADMIN = "another-admin-key-after-rotation-42"


def _cookies(response: httpx.Response) -> list[SimpleCookie]:
    out = []
    for header in response.headers.get_list("set-cookie"):
        jar: SimpleCookie = SimpleCookie()
        jar.load(header)
        out.append(jar)
    return out


def _sign_in(client: TestClient) -> str:
    response = client.post("/dashboard/login", data={"key": ADMIN}, follow_redirects=False)
    assert response.status_code == 303, response.text
    values = {jar["stepgate_admin"].value for jar in _cookies(response)}
    assert len(values) == 1
    return values.pop()


def _as(client: TestClient, token: str, path: str = "/v1/spend/summary") -> int:
    """Status of `path` for a browser that sends `token` as its cookie (and nothing else)."""
    client.cookies.clear()
    return client.get(path, headers={"cookie": f"stepgate_admin={token}"}).status_code


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def redis_url(request: pytest.FixtureRequest) -> str | None:
    return REDIS_URL if request.param == "redis" else None


def test_the_cookie_is_a_random_token_not_the_admin_key(tmp_path: Path) -> None:
    with admin_app(tmp_path, session_ttl_s=3600) as client:
        response = client.post("/dashboard/login", data={"key": ADMIN}, follow_redirects=False)
        assert response.status_code == 303
        jars = _cookies(response)
        paths = sorted(jar["stepgate_admin"]["path"] for jar in jars)
        assert paths == ["/dashboard", "/v1/spend"]  # not "/": chat and /admin never see it
        tokens = {jar["stepgate_admin"].value for jar in jars}
        assert len(tokens) == 1
        token = tokens.pop()
        assert ADMIN not in token and token != hashlib.sha256(ADMIN.encode()).hexdigest()
        assert len(token) >= 43  # 256 bits, base64url
        for jar in jars:
            morsel = jar["stepgate_admin"]
            assert morsel["httponly"] and morsel["samesite"].lower() == "strict"
            assert morsel["max-age"] == "3600"
            assert not morsel["secure"]  # plain http here
        assert _as(client, token) == 200
        assert _as(client, token, "/dashboard") == 200
        # A second sign-in is another session with another token.
        assert _sign_in(client) != token
        # The admin key itself in the cookie is no session.
        assert _as(client, ADMIN) == 401
        assert _as(client, "made-up-token") == 401


def test_sign_out_revokes_the_session_even_for_a_copied_cookie(
    tmp_path: Path, redis_url: str | None
) -> None:
    with admin_app(tmp_path, redis_url=redis_url) as client:
        token = _sign_in(client)
        assert _as(client, token) == 200
        out = client.post(
            "/dashboard/logout", headers={"cookie": f"stepgate_admin={token}"},
            follow_redirects=False,
        )  # fmt: skip
        assert out.status_code == 303
        # The replayed old cookie value no longer works anywhere.
        assert _as(client, token) == 401
        assert _as(client, token, "/dashboard/api/meta") == 401
        page = client.get("/dashboard", headers={"cookie": f"stepgate_admin={token}"})
        assert page.status_code == 401 and 'action="/dashboard/login"' in page.text


@pytest.mark.redis
def test_with_redis_replicas_share_sessions_and_only_a_digest_is_stored(
    tmp_path: Path,
) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    store = redis.Redis.from_url(REDIS_URL)
    with (
        admin_app(tmp_path / "a", redis_url=REDIS_URL, session_ttl_s=600) as a,
        admin_app(tmp_path / "b", redis_url=REDIS_URL, session_ttl_s=600) as b,
    ):
        token = _sign_in(a)
        key = "stepgate:session:" + hashlib.sha256(token.encode()).hexdigest()
        assert store.get(key) == admin_fingerprint(ADMIN).encode()
        assert 590 <= store.ttl(key) <= 600  # Redis expires it with the session
        assert not [k for k in store.scan_iter("stepgate:session:*") if token.encode() in k]
        assert _as(b, token) == 200  # signed in on one replica, valid on the other
        b.post("/dashboard/logout", headers={"cookie": f"stepgate_admin={token}"})
        assert _as(a, token) == 401  # signed out on one, gone on both
        assert store.get(key) is None


@pytest.mark.redis
def test_a_new_admin_key_ends_existing_sessions(tmp_path: Path) -> None:
    (tmp_path / "old").mkdir()
    (tmp_path / "new").mkdir()
    with admin_app(tmp_path / "old", redis_url=REDIS_URL) as before:
        token = _sign_in(before)
        assert _as(before, token) == 200
    # The gateway restarts with a rotated key; the session is still in Redis.
    with admin_app(tmp_path / "new", redis_url=REDIS_URL, admin_key=OTHER_ADMIN) as after:
        assert _as(after, token) == 401
        assert _as(after, token, "/dashboard") == 401
    with admin_app(tmp_path / "old", redis_url=REDIS_URL) as again:
        assert _as(again, token) == 200  # same key again: the session was never the problem


def test_sessions_expire_on_the_server() -> None:
    async def go() -> tuple[bool, bool]:
        sessions = MemorySessions(ttl_s=1)
        token = await sessions.create(fingerprint="f")
        fresh = await sessions.valid(token, fingerprint="f")
        await asyncio.sleep(1.2)
        return fresh, await sessions.valid(token, fingerprint="f")

    assert asyncio.run(go()) == (True, False)


def _secure(response: httpx.Response) -> set[bool]:
    return {bool(jar["stepgate_admin"]["secure"]) for jar in _cookies(response)}


def test_cookie_is_secure_over_https(tmp_path: Path) -> None:
    with admin_app(tmp_path, base_url="https://testserver") as client:
        response = client.post("/dashboard/login", data={"key": ADMIN}, follow_redirects=False)
        assert response.status_code == 303 and _secure(response) == {True}


@pytest.mark.parametrize(
    ("trusted", "peer", "secure"),
    [
        ("", ("10.0.0.5", 4000), False),  # default: nobody's forwarded header is believed
        ("10.0.0.0/8", ("10.0.0.5", 4000), True),
        ("10.0.0.0/8", ("192.0.2.7", 4000), False),  # a client, not the proxy
        ("10.0.0.5, ::1", ("10.0.0.5", 4000), True),
    ],
)
def test_forwarded_https_is_believed_only_from_trusted_proxies(
    tmp_path: Path, trusted: str, peer: tuple[str, int], secure: bool
) -> None:
    with admin_app(tmp_path, peer=peer, trusted_proxies=trusted) as client:
        response = client.post(
            "/dashboard/login", data={"key": ADMIN}, follow_redirects=False,
            headers={"x-forwarded-proto": "https"},
        )  # fmt: skip
        assert response.status_code == 303 and _secure(response) == {secure}


@pytest.fixture
def served(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    env = {"STEPGATE_ADMIN_KEY": ADMIN, "STEPGATE_PRELOAD_AR": "false",
           "STEPGATE_TRUSTED_PROXIES": request.param,
           "TEST_OPENAI_KEY": "unused", "TEST_ANTHROPIC_KEY": "unused"}  # fmt: skip
    with serve(idle_policy(tmp_path), tmp_path, env=env) as base:
        yield base


@pytest.mark.e2e
@pytest.mark.parametrize(("served", "secure"), [("", False), ("127.0.0.1", True)],
                         indirect=["served"])  # fmt: skip
def test_stepgate_serve_believes_forwarded_https_only_from_trusted_proxies(
    served: str, secure: bool
) -> None:
    """Through uvicorn, which by itself believes X-Forwarded-Proto from 127.0.0.1."""
    response = httpx.post(
        served + "/dashboard/login", data={"key": ADMIN},
        headers={"x-forwarded-proto": "https"}, timeout=10,
    )  # fmt: skip
    assert response.status_code == 303 and _secure(response) == {secure}
