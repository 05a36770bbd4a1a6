"""The admin check shared by admin, spend and dashboard handlers.

An admin request carries the admin key (`Authorization: Bearer`, or `x-api-key`), or the
dashboard's session cookie, which holds a server-side session token (gateway.api.sessions),
never the key. State-changing requests must also pass the same-origin check.
"""

from __future__ import annotations

import hmac

from starlette.requests import Request

from gateway.api.origin import SAFE_METHODS, require_same_origin
from gateway.api.sessions import SessionStore, admin_fingerprint
from gateway.core.errors import Forbidden, Unauthorized
from gateway.settings import Settings

ADMIN_COOKIE = "stepgate_admin"
# The cookie goes only where the dashboard reads: its own pages and the spend API.
COOKIE_PATHS = ("/dashboard", "/v1/spend")


def presented_key(request: Request) -> str | None:
    """The bearer token or `x-api-key` header, whichever the caller sent."""
    auth = request.headers.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip()
    return request.headers.get("x-api-key")


def session_token(request: Request) -> str | None:
    return request.cookies.get(ADMIN_COOKIE) or None


def key_ok(settings: Settings, key: str | None) -> bool:
    if settings.admin_key is None or not key:
        return False
    return hmac.compare_digest(key.encode(), settings.admin_key.get_secret_value().encode())


async def session_ok(request: Request, token: str) -> bool:
    """Whether `token` is a live session issued under the current admin key."""
    settings: Settings = request.app.state.settings
    if settings.admin_key is None:
        return False
    sessions: SessionStore = request.app.state.sessions
    fingerprint = admin_fingerprint(settings.admin_key.get_secret_value())
    return await sessions.valid(token, fingerprint=fingerprint)


async def is_admin(request: Request) -> bool:
    """The admin key or a live session, without raising (for the dashboard's HTML pages)."""
    settings: Settings = request.app.state.settings
    key = presented_key(request)
    if key:
        return key_ok(settings, key)
    token = session_token(request)
    return token is not None and await session_ok(request, token)


async def require_admin(request: Request) -> None:
    settings: Settings = request.app.state.settings
    if settings.admin_key is None:
        raise Forbidden(
            "admin endpoints are disabled: set STEPGATE_ADMIN_KEY on the gateway to enable them"
        )
    if request.method not in SAFE_METHODS:
        require_same_origin(request)
    key = presented_key(request)
    if key:
        if not key_ok(settings, key):
            raise Unauthorized("invalid admin key")
        return
    token = session_token(request)
    if token is None:
        raise Unauthorized("admin key required: send `Authorization: Bearer <STEPGATE_ADMIN_KEY>`")
    if not await session_ok(request, token):
        raise Unauthorized(
            "the dashboard session has ended (signed out, expired, or the admin key changed): "
            "sign in again at /dashboard/login"
        )
