"""create_app(settings) -> the ASGI app; the lifespan builds and closes every service."""

from __future__ import annotations

import contextlib
import gc
import logging
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from gateway.api import admin, health
from gateway.api.dashboard import dashboard_routes
from gateway.api.models import list_models
from gateway.api.sessions import build_sessions
from gateway.api.slashes import use_relative_slash_redirects
from gateway.api.spend import spend_routes
from gateway.core.errors import (
    GatewayError,
    MethodNotAllowed,
    NotFound,
    StepgateError,
)
from gateway.drain import InFlight
from gateway.ingress.anthropic import ANTHROPIC
from gateway.ingress.handler import ChatHandler
from gateway.ingress.openai import OPENAI, render_error
from gateway.services import Services
from gateway.settings import Settings

log = logging.getLogger("stepgate.app")

# How long the shutdown waits for requests cut at the drain deadline to settle (answer sent,
# record queued) before it closes the ledger: they need a loop turn or two, unless a client
# reads its last bytes very slowly.
_SETTLE_S = 5.0


def _error_response(request: Request, error: StepgateError) -> Response:
    status, body, headers = render_error(error)
    rid = getattr(request.state, "request_id", None)
    if rid:
        headers = {**headers, "x-request-id": rid}
    return Response(body, status_code=status, media_type="application/json", headers=headers)


async def _on_stepgate_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StepgateError)
    return _error_response(request, exc)


async def _on_unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error", exc_info=exc)
    return _error_response(
        request, GatewayError("internal gateway error; the request id is in x-request-id")
    )


async def _not_found(request: Request, exc: Exception) -> Response:
    return _error_response(
        request, NotFound(f"no such endpoint: {request.method} {request.url.path}")
    )


async def _method_not_allowed(request: Request, exc: Exception) -> Response:
    return _error_response(
        request,
        MethodNotAllowed(f"method {request.method} is not allowed on {request.url.path}"),
    )


_OPENAI_CHAT = ChatHandler(OPENAI)
_ANTHROPIC_MESSAGES = ChatHandler(ANTHROPIC)
# POST paths served by a chat handler, ahead of the router (see `Gateway`).
CHAT_HANDLERS = {
    "/v1/chat/completions": _OPENAI_CHAT,
    "/chat/completions": _OPENAI_CHAT,
    "/v1/messages": _ANTHROPIC_MESSAGES,
}


class Gateway(Starlette):
    """Starlette, with the chat endpoints' POSTs dispatched ahead of the router and middleware.

    A chat handler renders its own errors in its dialect (gateway.ingress.handler), so the
    middleware stack has nothing to add there; every other path goes through it as usual.
    Chat requests run under `in_flight`, which answers them if the drain deadline cuts them.
    """

    def __init__(self, *, in_flight: InFlight, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.in_flight = in_flight

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            handler = CHAT_HANDLERS.get(scope["path"])
            if handler is not None:
                scope["app"] = self
                await self.in_flight(handler, scope, receive, send)
                return
        await super().__call__(scope, receive, send)


def create_app(settings: Settings, services: Services | None = None) -> Starlette:
    """`services` may be prebuilt (the CLI builds them first so a bad policy fails fast)."""
    in_flight = InFlight(drain_s=settings.drain_s)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        built = services or await Services.build(settings)
        app.state.services = built
        app.state.settings = settings
        app.state.ledger = built.ledger
        app.state.sessions = build_sessions(
            redis_url=settings.redis_url, ttl_s=settings.session_ttl_s
        )
        await built.start()
        # Everything built so far lives as long as the process: keep it out of the cyclic
        # collector's full passes, which otherwise walk it (classifier weights, models,
        # SQLAlchemy metadata) and show up as request latency spikes.
        gc.freeze()
        try:
            yield
        finally:
            # uvicorn starts this shutdown once in-flight requests have ended, or right after
            # cancelling those that outlived STEPGATE_DRAIN_S: let those settle first.
            await in_flight.settled(_SETTLE_S)
            await app.state.sessions.aclose()
            await built.aclose()

    routes = [
        *(Route(path, handler, methods=["POST"]) for path, handler in CHAT_HANDLERS.items()),
        Route("/v1/models", list_models, methods=["GET"]),
        Route("/healthz", health.healthz, methods=["GET"]),
        Route("/readyz", health.readyz, methods=["GET"]),
        Route("/metrics", admin.metrics, methods=["GET"]),
        Route("/admin/policy/reload", admin.reload_policy, methods=["POST"]),
        *spend_routes,
        *dashboard_routes,
    ]
    app = Gateway(
        in_flight=in_flight,
        routes=routes,
        lifespan=lifespan,
        exception_handlers={
            StepgateError: _on_stepgate_error,
            Exception: _on_unexpected,
            404: _not_found,
            405: _method_not_allowed,
        },
    )
    use_relative_slash_redirects(app.router)
    return app


def app_from_env() -> Starlette:
    """uvicorn factory: settings from STEPGATE_* (each worker process builds its own)."""
    return create_app(Settings())
