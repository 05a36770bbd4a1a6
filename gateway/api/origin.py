"""Where a request says it comes from, and whether to believe it.

`request_scheme` is the scheme the client used: the connection's own, or `X-Forwarded-Proto`
when (and only when) the direct peer is one of `STEPGATE_TRUSTED_PROXIES`.
`require_same_origin` refuses a state-changing admin request whose `Origin` (or, without
one, `Referer`) is another site: a browser always sends one on a cross-site POST, while
the CLI and curl send neither and stay allowed.
"""

from __future__ import annotations

from ipaddress import ip_address
from urllib.parse import urlsplit

from starlette.requests import Request

from gateway.core.errors import Forbidden
from gateway.settings import Settings

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_DEFAULT_PORTS = {"http": 80, "https": 443}

Origin = tuple[str, str, int]  # scheme, host (lower case), port


def _from_trusted_proxy(request: Request) -> bool:
    settings: Settings = request.app.state.settings
    if not settings.trusted_proxies or request.client is None:
        return False
    try:
        peer = ip_address(request.client.host)
    except ValueError:  # not an IP (a unix socket, a test client)
        return False
    return any(peer in network for network in settings.trusted_proxies)


def request_scheme(request: Request) -> str:
    """`https` or `http`: what the client used to reach us (or the trusted proxy in front)."""
    scheme = request.url.scheme
    forwarded = request.headers.get("x-forwarded-proto")
    if scheme != "https" and forwarded and _from_trusted_proxy(request):
        # Each proxy appends its own view; the last one is our direct, trusted peer's.
        last = forwarded.rsplit(",", 1)[-1].strip().lower()
        if last in _DEFAULT_PORTS:
            return last
    return scheme


def _parse(scheme: str, netloc: str) -> Origin | None:
    try:
        parts = urlsplit(f"//{netloc}")
        host, port = parts.hostname, parts.port
    except ValueError:  # a bad port or bracket
        return None
    if not host or scheme not in _DEFAULT_PORTS:
        return None
    return scheme, host.lower(), port or _DEFAULT_PORTS[scheme]


def own_origin(request: Request) -> Origin | None:
    """This request's own origin, from its scheme and `Host` header."""
    host = request.headers.get("host")
    if host is None:
        server = request.scope.get("server")
        if not server:
            return None
        host = f"{server[0]}:{server[1]}"
    return _parse(request_scheme(request), host)


def claimed_origin(text: str) -> Origin | None:
    """The scheme://host:port of an `Origin` or `Referer` value; None for `null` or junk."""
    try:
        parts = urlsplit(text.strip())
    except ValueError:
        return None
    return _parse(parts.scheme.lower(), parts.netloc)


def _show(origin: Origin | None) -> str:
    return "unknown" if origin is None else f"{origin[0]}://{origin[1]}:{origin[2]}"


def require_same_origin(request: Request) -> None:
    """Forbidden when a browser sent this request from another origin (a CSRF attempt)."""
    header = "origin"
    sent = request.headers.get(header)
    if sent is None:
        header = "referer"
        sent = request.headers.get(header)
        if sent is None:
            return  # not a browser's cross-site request: the CLI, curl, a script
    own = own_origin(request)
    claimed = claimed_origin(sent)
    if claimed is None or own is None or claimed != own:
        raise Forbidden(
            f"cross-origin request refused: the {header.capitalize()} header {sent[:120]!r} "
            f"is not this gateway's origin ({_show(own)}); state-changing admin requests must "
            "come from the dashboard's own pages, or from a client that sends no Origin",
            code="cross_origin_refused",
        )
