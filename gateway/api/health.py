"""GET /healthz (process up) and GET /readyz (policy loaded, dependencies reachable)."""

from __future__ import annotations

import orjson
from starlette.requests import Request
from starlette.responses import Response


async def healthz(request: Request) -> Response:
    return Response(b'{"status":"ok"}', media_type="application/json")


async def readyz(request: Request) -> Response:
    services = request.app.state.services
    report = await services.readiness()
    status = 200 if report["ready"] else 503
    return Response(orjson.dumps(report), status_code=status, media_type="application/json")
