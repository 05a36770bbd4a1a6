"""GET /dashboard: the cost dashboard page, its login/logout, static assets and extra JSON reads.

The page itself is static HTML + JS (gateway/dashboard/) that calls `/v1/spend/*` for every
rollup figure and `/dashboard/api/*` for what the rollups do not hold (recent requests,
top keys, filter choices). Sign-in starts a server-side session (gateway.api.sessions) and
puts only its random token in an HttpOnly, SameSite=Strict cookie, limited to the paths the
page reads; sign-out revokes the session, so a copied cookie stops working too.
"""

from __future__ import annotations

import hashlib
import html
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import orjson
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from gateway.api.admin_auth import (
    ADMIN_COOKIE,
    COOKIE_PATHS,
    is_admin,
    key_ok,
    presented_key,
    require_admin,
    session_token,
)
from gateway.api.origin import request_scheme, require_same_origin
from gateway.api.sessions import SessionStore, admin_fingerprint
from gateway.api.spend import LedgerUnavailable, _one, _parse, bad_request
from gateway.core.errors import BadRequest
from gateway.core.profile import STEP_KINDS
from gateway.ledger import recent
from gateway.ledger.queries import QueryError
from gateway.ledger.writer import Ledger
from gateway.settings import Settings

ASSETS = Path(__file__).resolve().parent.parent / "dashboard"
STATIC = ASSETS / "static"
TEMPLATES = ASSETS / "templates"
# Everything the page loads comes from this origin: no CDN, no inline script.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'"
)
PAGE_HEADERS = {
    "content-security-policy": CSP,
    "cache-control": "no-store",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
}
FILTERS = frozenset(("since", "until", "range", "team", "route", "kind", "backend"))
RECENT_PARAMS = frozenset((*FILTERS, "limit", "cursor", "escalated"))
KEYS_PARAMS = frozenset((*FILTERS, "limit"))


class DashboardStatic(StaticFiles):
    """Static assets with long-lived caching: the page links them with a `?v=<content hash>`,
    so a changed file gets a new URL; unversioned requests revalidate by ETag."""

    def file_response(
        self, full_path: Any, stat_result: Any, scope: Scope, status_code: int = 200
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        versioned = b"v=" in scope.get("query_string", b"")
        response.headers["cache-control"] = (
            "public, max-age=31536000, immutable"
            if versioned
            else "public, max-age=0, must-revalidate"
        )
        response.headers["x-content-type-options"] = "nosniff"
        return response


def _asset_url(name: str) -> str:
    digest = hashlib.sha256((STATIC / name).read_bytes()).hexdigest()[:12]
    return f"/dashboard/static/{name}?v={digest}"


def _render(template: str, **values: str) -> str:
    text = (TEMPLATES / template).read_text(encoding="utf-8")
    for name, value in values.items():
        text = text.replace("{{" + name + "}}", value)
    return text


def _admin_configured(request: Request) -> bool:
    settings: Settings = request.app.state.settings
    return settings.admin_key is not None


def _login_page(request: Request, *, error: str = "", status: int = 401) -> HTMLResponse:
    disabled = not _admin_configured(request)
    if disabled:
        error = "The dashboard is disabled: set STEPGATE_ADMIN_KEY on the gateway and restart it."
        status = 403
    body = _render(
        "login.html",
        css=_asset_url("dashboard.css"),
        error=f'<p class="login-error" role="alert">{html.escape(error)}</p>' if error else "",
        disabled="disabled" if disabled else "",
    )
    return HTMLResponse(body, status_code=status, headers=PAGE_HEADERS)


async def dashboard_page(request: Request) -> Response:
    """The page for a valid admin key (bearer or x-api-key) or session; else the sign-in form."""
    if not await is_admin(request):
        stale = presented_key(request) or session_token(request)
        message = "Your session has ended or that admin key is not valid; sign in again."
        return _login_page(request, error=message if stale else "")
    body = _render(
        "dashboard.html",
        css=_asset_url("dashboard.css"),
        chartjs=_asset_url("vendor/chart.umd.min.js"),
        js=_asset_url("dashboard.js"),
    )
    return HTMLResponse(body, headers=PAGE_HEADERS)


async def login_form(request: Request) -> Response:
    if await is_admin(request):
        return RedirectResponse("/dashboard", status_code=303)
    return _login_page(request, status=200)


async def login(request: Request) -> Response:
    """POST key=<admin key> (form-encoded): start a session, set its cookie, go to the page."""
    require_same_origin(request)
    settings: Settings = request.app.state.settings
    if settings.admin_key is None:
        return _login_page(request)
    body = (await request.body()).decode("utf-8", errors="replace")
    key = (parse_qs(body).get("key") or [""])[0].strip()
    if not key_ok(settings, key):
        return _login_page(request, error="Invalid admin key. Check STEPGATE_ADMIN_KEY.")
    sessions: SessionStore = request.app.state.sessions
    token = await sessions.create(fingerprint=admin_fingerprint(key))
    response = RedirectResponse("/dashboard", status_code=303)
    secure = request_scheme(request) == "https"
    for path in COOKIE_PATHS:
        response.set_cookie(ADMIN_COOKIE, token, max_age=settings.session_ttl_s, path=path,
                            httponly=True, samesite="strict", secure=secure)  # fmt: skip
    return response


async def logout(request: Request) -> Response:
    """End the session on the server (the old cookie value stops working) and drop the cookie."""
    require_same_origin(request)
    token = session_token(request)
    if token is not None:
        sessions: SessionStore = request.app.state.sessions
        await sessions.revoke(token)
    response = RedirectResponse("/dashboard/login", status_code=303)
    secure = request_scheme(request) == "https"
    # "/" too: earlier versions set the cookie there (holding the admin key itself).
    for path in (*COOKIE_PATHS, "/"):
        response.delete_cookie(ADMIN_COOKIE, path=path, httponly=True, samesite="strict",
                               secure=secure)  # fmt: skip
    return response


async def _read(request: Request, query: Any, **kwargs: Any) -> Response:
    ledger: Ledger = request.app.state.ledger
    try:
        body = await run_in_threadpool(query, ledger.engine, **kwargs)
    except QueryError as exc:
        raise bad_request(exc) from exc
    except SQLAlchemyError as exc:
        raise LedgerUnavailable("the ledger database cannot be read right now") from exc
    return Response(orjson.dumps(body), media_type="application/json",
                    headers={"cache-control": "no-store"})  # fmt: skip


def _window_filters(request: Request, allowed: frozenset[str]) -> dict[str, Any]:
    # The spend API's parser, so both read the same windows and filters; extra params are ours.
    parsed = _parse(request, allowed)
    parsed.pop("group_by", None)
    return parsed


def _int(request: Request, name: str, default: int) -> int:
    text = _one(request, name)
    if text is None:
        return default
    # ASCII digits only, and few of them: int() would also take other scripts' digits,
    # underscores and (slowly) thousands of digits.
    if not (text.isascii() and text.isdigit() and len(text) <= 6):
        raise BadRequest(f"invalid {name} {text[:40]!r}: use a whole number", param=name)
    return int(text)


async def recent_requests(request: Request) -> Response:
    await require_admin(request)
    args = _window_filters(request, RECENT_PARAMS)
    cursor_text = _one(request, "cursor")
    try:
        cursor = recent.Cursor.decode(cursor_text) if cursor_text else None
    except QueryError as exc:
        raise bad_request(exc) from exc
    escalated = _one(request, "escalated")
    if escalated not in (None, "true", "false"):
        raise BadRequest("invalid escalated: use true or false", param="escalated")
    return await _read(
        request,
        recent.recent_requests,
        limit=_int(request, "limit", 25),
        cursor=cursor,
        escalated_only=escalated == "true",
        **args,
    )


async def keys(request: Request) -> Response:
    await require_admin(request)
    args = _window_filters(request, KEYS_PARAMS)
    return await _read(request, recent.top_keys, limit=_int(request, "limit", 10), **args)


async def meta(request: Request) -> Response:
    """What the filters offer and which tier each backend belongs to (from the live policy)."""
    await require_admin(request)
    policy = request.app.state.services.holder.current.policy
    ledger: Ledger = request.app.state.ledger
    try:
        teams = await run_in_threadpool(recent.known_teams, ledger.engine)
    except SQLAlchemyError as exc:
        raise LedgerUnavailable("the ledger database cannot be read right now") from exc
    body = {
        "backends": {name: backend.type for name, backend in policy.backends.items()},
        "baseline": policy.baseline,
        "routes": [route.name for route in policy.routes],
        "kinds": list(STEP_KINDS),
        "teams": teams,
    }
    return Response(orjson.dumps(body), media_type="application/json",
                    headers={"cache-control": "no-store"})  # fmt: skip


dashboard_routes: list[BaseRoute] = [
    Route("/dashboard", dashboard_page, methods=["GET"]),
    Route("/dashboard/", dashboard_page, methods=["GET"]),
    Route("/dashboard/login", login_form, methods=["GET"]),
    Route("/dashboard/login", login, methods=["POST"]),
    Route("/dashboard/logout", logout, methods=["POST"]),
    Route("/dashboard/api/requests", recent_requests, methods=["GET"]),
    Route("/dashboard/api/keys", keys, methods=["GET"]),
    Route("/dashboard/api/meta", meta, methods=["GET"]),
    Mount("/dashboard/static", app=DashboardStatic(directory=STATIC), name="dashboard-static"),
]
