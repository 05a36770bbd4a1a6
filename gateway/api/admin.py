"""Admin endpoints (admin key): policy reload, and Prometheus metrics."""

from __future__ import annotations

import orjson
from starlette.requests import Request
from starlette.responses import Response

from gateway.api.admin_auth import require_admin


async def reload_policy(request: Request) -> Response:
    await require_admin(request)
    holder = request.app.state.services.holder
    ok, problems = holder.reload()
    body = {"reloaded": ok, "generation": holder.current.number, "problems": problems}
    return Response(
        orjson.dumps(body), status_code=200 if ok else 422, media_type="application/json"
    )


async def metrics(request: Request) -> Response:
    body, content_type = request.app.state.services.metrics.render()
    return Response(body, media_type=content_type)
