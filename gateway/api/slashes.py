"""The trailing-slash redirect, with a relative `Location`.

Starlette's own (`redirect_slashes`) builds an absolute URL from the request's `Host`
header, so a forged Host would put another site into our redirect. This one answers
`307 Location: /path/` (path and query only); anything else is the router's 404.
"""

from __future__ import annotations

from urllib.parse import quote

from starlette.responses import RedirectResponse
from starlette.routing import Match, Router
from starlette.types import Receive, Scope, Send

# RFC 3986 path characters (pchar and "/"), left as they are; anything else is %-encoded.
_PATH_SAFE = "/!$&'()*+,;=:@-._~"


class SlashRedirect:
    """The router's fallback: redirect to the path with (or without) the trailing slash when
    that names a route, else the router's usual not-found."""

    def __init__(self, router: Router) -> None:
        self._router = router

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if scope["type"] == "http" and path not in ("", "/"):
            other = dict(scope)
            other["path"] = path.rstrip("/") if path.endswith("/") else path + "/"
            if other["path"] and any(
                route.matches(other)[0] is not Match.NONE for route in self._router.routes
            ):
                # One leading slash: `//host/...` would be read as another site.
                location = "/" + quote(other["path"], safe=_PATH_SAFE).lstrip("/")
                query = scope.get("query_string", b"")
                if query:
                    location += "?" + query.decode("latin-1")
                await RedirectResponse(location, status_code=307)(scope, receive, send)
                return
        await self._router.not_found(scope, receive, send)


def use_relative_slash_redirects(router: Router) -> None:
    """Turn Starlette's absolute redirect off and this one on."""
    router.redirect_slashes = False
    router.default = SlashRedirect(router)
