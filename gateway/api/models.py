"""GET /v1/models: what a caller may send as `model`. Thin handler."""

from __future__ import annotations

import time

import orjson
from starlette.requests import Request
from starlette.responses import Response

from gateway.routing import model_names


async def list_models(request: Request) -> Response:
    services = request.app.state.services
    await services.gate.authenticate(request.headers)
    policy = services.holder.current.policy
    now = int(time.time())
    data = [
        {"id": name, "object": "model", "created": now, "owned_by": "stepgate"}
        for name in model_names(policy)
    ]
    return Response(orjson.dumps({"object": "list", "data": data}), media_type="application/json")
