"""GET /v1/spend/summary, /v1/spend/timeseries and /v1/spend/escalations: the ledger's figures
as JSON (admin key); GET /v1/spend/health: the live policy's backends and their circuit breakers.

Thin handlers: check the admin key, parse the query string, run one query from
`gateway.ledger.queries` in a worker thread, render. The figures are those of `stepgate costs`.
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

import orjson
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.api.admin_auth import require_admin
from gateway.core.errors import BadRequest, GatewayError
from gateway.health.breaker import Breakers, is_up
from gateway.ledger import queries
from gateway.ledger.tables import GRAINS
from gateway.ledger.writer import Ledger
from gateway.runtime import Generation

COMMON = ("since", "until", "range", "team", "route", "kind", "backend", "group_by")
SUMMARY_PARAMS = frozenset(COMMON)
TIMESERIES_PARAMS = frozenset((*COMMON, "bucket"))
# Escalation reasons are kept per route, team and kind (no backend, no grouping choice).
ESCALATION_PARAMS = frozenset(("since", "until", "range", "team", "route", "kind"))


class LedgerUnavailable(GatewayError):
    status: ClassVar[int] = 503
    error_class: ClassVar[str] = "gateway_ledger_unavailable"


def _one(request: Request, name: str) -> str | None:
    values = request.query_params.getlist(name)
    if len(values) > 1:
        raise BadRequest(f"query parameter `{name}` given {len(values)} times; give it once",
                         param=name)  # fmt: skip
    return values[0] if values and values[0] != "" else None


def bad_request(exc: queries.QueryError) -> BadRequest:
    """A report's QueryError as the caller's 400, naming the parameter it blames."""
    return BadRequest(str(exc), param=exc.param)


def _parse(request: Request, allowed: frozenset[str]) -> dict[str, Any]:
    unknown = sorted(set(request.query_params) - allowed)
    if unknown:
        raise BadRequest(
            f"unknown query parameter(s) {', '.join(unknown)}; "
            f"accepted: {', '.join(sorted(allowed))}",
            param=unknown[0],
        )
    since, span, until = _one(request, "since"), _one(request, "range"), _one(request, "until")
    if since is not None and span is not None:
        raise BadRequest("give either `range` (24h, 7d, 30d) or `since`, not both", param="range")
    try:
        if span is not None:
            queries.parse_duration(span, param="range")
        window = queries.Window.resolve(since=span or since, until=until)
    except queries.QueryError as exc:
        if span is not None and exc.param == "since":
            exc.param = "range"  # `range` is read as the window's start
        raise bad_request(exc) from exc
    group_by = _one(request, "group_by") if "group_by" in allowed else None
    if group_by is not None and group_by not in queries.GROUP_BYS:
        raise BadRequest(
            f"invalid group_by {group_by!r}: use one of {', '.join(queries.GROUP_BYS)}",
            param="group_by",
        )
    try:
        filters = queries.Filters(
            route=_one(request, "route"),
            backend=_one(request, "backend"),
            team=_one(request, "team"),
            kind=_one(request, "kind"),
        )
    except queries.QueryError as exc:
        raise bad_request(exc) from exc
    args: dict[str, Any] = {"window": window, "filters": filters}
    if "group_by" in allowed:
        args["group_by"] = group_by
    return args


async def _run(request: Request, query: Any, **kwargs: Any) -> Response:
    ledger: Ledger = request.app.state.ledger
    try:
        body = await run_in_threadpool(query, ledger.engine, **kwargs)
    except queries.QueryError as exc:
        raise bad_request(exc) from exc
    except SQLAlchemyError as exc:
        raise LedgerUnavailable("the ledger database cannot be read right now") from exc
    return Response(orjson.dumps(body), media_type="application/json")


async def spend_summary(request: Request) -> Response:
    await require_admin(request)
    return await _run(request, queries.summary, **_parse(request, SUMMARY_PARAMS))


async def spend_timeseries(request: Request) -> Response:
    await require_admin(request)
    args = _parse(request, TIMESERIES_PARAMS)
    bucket = _one(request, "bucket") or "hour"
    if bucket not in GRAINS:
        raise BadRequest(f"invalid bucket {bucket!r}: use minute, hour or day", param="bucket")
    return await _run(request, queries.timeseries, bucket=bucket, **args)


async def spend_escalations(request: Request) -> Response:
    """Escalation and draft rates per route, and per route and reason (see
    `queries.escalations`)."""
    await require_admin(request)
    return await _run(request, queries.escalations, **_parse(request, ESCALATION_PARAMS))


def backend_health(
    gen: Generation, circuits: dict[str, dict[str, Any]], *, now: float
) -> dict[str, Any]:
    """The body of /v1/spend/health: every backend of `gen`'s policy, in policy order, with its
    breaker from `circuits` (a `Breakers.snapshot()`; a backend missing from it never had a
    call, so it is closed with empty counts). Times are unix seconds; `now` is this server's
    clock, for reading `retry_at` without trusting the browser's."""
    config = gen.policy.circuit_breaker
    backends = []
    for name, (_, connector) in gen.backends.items():
        circuit = circuits.get(name, {})
        state = circuit.get("state", "closed")
        backends.append(
            {
                "name": name,
                "type": connector.backend_type,
                # As /readyz has it: warmed up and not cut off by an open breaker.
                "ready": connector.ready and is_up(state),
                "state": state,
                "window_failures": circuit.get("window_failures", 0),
                "window_calls": circuit.get("window_calls", 0),
                "consecutive_failures": circuit.get("consecutive_failures", 0),
                "probes_in_flight": circuit.get("probes_in_flight", 0),
                "opened_at": circuit.get("opened_at"),
                "retry_at": circuit.get("retry_at"),
            }
        )
    return {
        "now": now,
        "policy_generation": gen.number,
        "circuit_breaker": config.model_dump(),
        "backends": backends,
    }


async def spend_health(request: Request) -> Response:
    """Backend health for the dashboard, as this worker's breakers see it (with Redis, replicas
    share their states). Unlike /readyz it is always admin-only and never pings the database."""
    await require_admin(request)
    if request.query_params:
        raise BadRequest("/v1/spend/health takes no query parameters",
                         param=next(iter(request.query_params)))  # fmt: skip
    services = request.app.state.services
    breakers: Breakers = services.breakers
    body = backend_health(services.holder.current, breakers.snapshot(), now=time.time())
    return Response(orjson.dumps(body), media_type="application/json",
                    headers={"cache-control": "no-store"})  # fmt: skip


spend_routes: list[Route] = [
    Route("/v1/spend/summary", spend_summary, methods=["GET"]),
    Route("/v1/spend/timeseries", spend_timeseries, methods=["GET"]),
    Route("/v1/spend/escalations", spend_escalations, methods=["GET"]),
    Route("/v1/spend/health", spend_health, methods=["GET"]),
]
