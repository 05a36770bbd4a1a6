"""What one request carries and accumulates on its way: its context (who, when, ids) and its
trace (profile, decision, attempts, outcome so far). Request-scoped, never shared."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from gateway.core.profile import StepProfile
from gateway.dispatch import Attempt
from gateway.limits import cache
from gateway.limits.gate import NOTHING, Reservation
from gateway.limits.keys import Principal
from gateway.routing import RouteDecision
from gateway.runtime import Generation


@dataclass(frozen=True, slots=True)
class RequestContext:
    request_id: str  # the gateway's own, fresh for every request: the ledger key
    headers: Mapping[str, str]  # lower-case names
    received: float  # monotonic
    received_at: float  # unix seconds
    api_key_id: str | None = None
    team: str | None = None
    principal: Principal | None = None  # the verified key, with its limits
    client_request_id: str | None = None  # the caller's id, echoed and stored, never a key


@dataclass(slots=True)
class Trace:
    """What one request did, accumulated while it runs (request-scoped, never shared)."""

    ctx: RequestContext
    gen: Generation
    profile: StepProfile
    decision: RouteDecision
    stream: bool
    request_model: str
    classify_ns: tuple[int, int]
    attempts: list[Attempt] = field(default_factory=list)
    ttft_ms: float | None = None
    final_backend: str | None = None
    finish_reason: str | None = None
    confidence: float | None = None
    escalated: bool = False
    disposition: str = "final"
    escalation_reason: str | None = None
    reservation: Reservation = NOTHING
    cached: cache.CachedAnswer | None = None


@dataclass(frozen=True, slots=True)
class ResponseMeta:
    """What the caller is told about how its step was served, beside the answer; each ingress
    dialect renders it as headers (`gateway.ingress.edge.stepgate_headers`)."""

    request_id: str
    route: str
    backend: str
    step_kind: str
    escalated: bool
    # None for a stream: its cost is known only at its end, and sent in its last frame.
    cost_nanos: int | None
    cost_known: bool
    overhead_ms: float
    client_request_id: str | None = None
    cache_hit: bool = False
    confidence: float | None = None
    disposition: str | None = None
