"""GET /healthz (process up) and GET /readyz (policy loaded, dependencies reachable).

/readyz is public unless `STEPGATE_READYZ_ADMIN_ONLY`; either way its report is masked like the
logs (credential-shaped strings) and, beyond them, the exact provider keys the live policy's
backends read (`api_key_env`): a rejected policy's problem text may quote a `${VAR}` it expanded.
"""

from __future__ import annotations

import os

import orjson
from starlette.requests import Request
from starlette.responses import Response

from gateway.api.admin_auth import require_admin
from gateway.core.redact import redact_strings
from gateway.runtime import Generation
from gateway.settings import Settings


async def healthz(request: Request) -> Response:
    return Response(b'{"status":"ok"}', media_type="application/json")


async def readyz(request: Request) -> Response:
    settings: Settings = request.app.state.settings
    if settings.readyz_admin_only:
        await require_admin(request)
    services = request.app.state.services
    report = await services.readiness()
    body = redact_strings(report, known=_provider_keys(services.holder.current))
    status = 200 if report["ready"] else 503
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


def _provider_keys(gen: Generation) -> list[str]:
    """The values of the environment variables the backends take their keys from."""
    names = {b.api_key_env for b, _ in gen.backends.values() if b.api_key_env}
    return [value for name in names if (value := os.environ.get(name))]
