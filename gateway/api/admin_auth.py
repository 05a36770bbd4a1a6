"""The admin-key check shared by admin, spend and dashboard handlers."""

from __future__ import annotations

import hmac

from starlette.requests import Request

from gateway.core.errors import Forbidden, Unauthorized
from gateway.settings import Settings

ADMIN_COOKIE = "stepgate_admin"


def presented_key(request: Request) -> str | None:
    """The bearer token, `x-api-key` header or admin cookie, whichever the caller sent."""
    auth = request.headers.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip()
    return request.headers.get("x-api-key") or request.cookies.get(ADMIN_COOKIE)


def require_admin(request: Request) -> None:
    settings: Settings = request.app.state.settings
    if settings.admin_key is None:
        raise Forbidden(
            "admin endpoints are disabled: set STEPGATE_ADMIN_KEY on the gateway to enable them"
        )
    key = presented_key(request)
    if not key:
        raise Unauthorized("admin key required: send `Authorization: Bearer <STEPGATE_ADMIN_KEY>`")
    if not hmac.compare_digest(key.encode(), settings.admin_key.get_secret_value().encode()):
        raise Unauthorized("invalid admin key")
