"""Prometheus metrics: one `Metrics` per app, owning its registry, fed one finished request at once.

Single process: a plain `CollectorRegistry`. Several workers: prometheus_client's multiprocess
mode, where each worker writes its values to mmap files in `PROMETHEUS_MULTIPROC_DIR` and
`render` merges every worker's files. prometheus_client picks its value storage when it is first
imported, so the variable must be in the environment before any worker imports it (set it in the
process that starts the server; empty the directory before each start).

All label values go through `gateway.telemetry.labels`: names are bounded, error classes stay
in the closed vocabulary, and request ids, keys and customer text never become series.
"""

from __future__ import annotations

import os
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    values,
)
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from gateway.core.records import AttemptRecord, RequestRecord
from gateway.telemetry.fastseries import CounterFamily, FamilyCollector, HistogramFamily
from gateway.telemetry.labels import (
    NONE,
    BoundedLabel,
    code_label,
    error_class_label,
    error_label,
    kind_label,
    name_label,
    status_label,
)

MULTIPROC_ENV: Final = "PROMETHEUS_MULTIPROC_DIR"
_NANOS_PER_USD: Final = 1e9
_CACHE_MAX: Final = 4096

REQUEST_BUCKETS: Final = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
TTFT_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
OVERHEAD_BUCKETS: Final = (
    0.00025, 0.0005, 0.001, 0.0015, 0.002, 0.003, 0.005, 0.01, 0.025, 0.05, 0.1,
)  # fmt: skip
CLASSIFY_BUCKETS: Final = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01)


class _Inc(Protocol):
    def inc(self, amount: float = ...) -> None: ...


class _Observe(Protocol):
    def observe(self, amount: float) -> None: ...


class _CounterLike(Protocol):
    def labels(self, *labelvalues: str) -> _Inc: ...
    def inc(self, amount: float = ...) -> None: ...


class _HistogramLike(Protocol):
    def labels(self, *labelvalues: str) -> _Observe: ...
    def observe(self, amount: float) -> None: ...


@dataclass(frozen=True, slots=True)
class LabelLimits:
    """Bounds on label values. `routes`/`backends`/`teams` None means "first `cap` seen"."""

    routes: Collection[str] | None = None
    backends: Collection[str] | None = None
    teams: Collection[str] = ()
    name_cap: int = 200
    code_cap: int = 32


class _RequestChildren:
    """Pre-resolved children for one combination of a request's label values.

    prometheus_client's `labels()` costs a few µs (lock, validation); resolving once per
    combination keeps `observe_request` to plain `inc`/`observe` calls.
    """

    __slots__ = (
        "cache_hits",
        "decisions",
        "drafts",
        "duration",
        "escalations",
        "overhead",
        "requests",
        "team_cost",
        "ttft",
    )

    def __init__(self, m: Metrics, r: RequestRecord, evidence: str) -> None:
        route = m._route(r.route)
        backend = m._backend(r.final_backend)
        self.requests = m.requests.labels(
            route, backend, kind_label(r.step_kind), status_label(r.status)
        )
        self.duration = m.request_duration.labels(route, backend)
        self.ttft = m.ttft.labels(route, backend)
        self.overhead = m.overhead.labels(route)
        self.decisions = m.decisions.labels(route, m._evidence(evidence))
        self.escalations = (
            m.escalations.labels(route, m._reason(r.escalation_reason)) if r.escalated else None
        )
        self.drafts = m.drafts.labels(route) if r.disposition == "draft" else None
        self.cache_hits = m.cache_hits.labels(route) if r.cache_hit else None
        self.team_cost = m.team_cost.labels(m._team(r.team)) if m._teams_on else None


class _AttemptChildren:
    """Pre-resolved children for one (route, backend, role, outcome, error class) combination."""

    __slots__ = (
        "attempts",
        "backend",
        "baseline",
        "cost",
        "cost_unknown",
        "duration",
        "errors",
        "tokens_in",
        "tokens_out",
    )

    def __init__(self, m: Metrics, raw_route: str, a: AttemptRecord) -> None:
        route = m._route(raw_route)
        backend = m._backend(a.backend)
        self.backend = backend
        self.attempts = m.attempts.labels(backend, a.role, a.outcome)
        self.duration = m.backend_duration.labels(backend, a.outcome)
        self.tokens_in = m.tokens.labels(route, backend, "in")
        self.tokens_out = m.tokens.labels(route, backend, "out")
        self.cost = m.cost.labels(route, backend)
        self.baseline = m.baseline_cost.labels(route, backend)
        self.cost_unknown = m.cost_unknown.labels(route, backend)
        self.errors = m.backend_errors.labels(backend, m._err(a)) if a.outcome == "error" else None


class Metrics:
    """Every `stepgate_*` metric of one app. Build once in the lifespan; call from the request path.

    `multiproc_dir`: the `PROMETHEUS_MULTIPROC_DIR` of this server start, or None for one
    process. `Metrics.from_env()` reads it from the environment.
    """

    def __init__(
        self,
        *,
        multiproc_dir: Path | None = None,
        limits: LabelLimits | None = None,
    ) -> None:
        limits = limits or LabelLimits()
        self.multiproc_dir = multiproc_dir
        if multiproc_dir is not None:
            if not getattr(values.ValueClass, "_multiprocess", False):
                raise RuntimeError(
                    f"{MULTIPROC_ENV} must be set in the environment before prometheus_client is "
                    "first imported (set it in the process that starts the workers)"
                )
            if not multiproc_dir.is_dir():
                raise RuntimeError(f"{MULTIPROC_ENV}={multiproc_dir} is not a directory")
            # Multiprocess metrics live in the mmap files; collection uses a fresh registry.
            reg: CollectorRegistry | None = None
        else:
            reg = CollectorRegistry(auto_describe=True)
        self.registry = reg

        self._route = name_label(cap=limits.name_cap, allowed=limits.routes)
        self._backend = name_label(cap=limits.name_cap, allowed=limits.backends)
        self._team = name_label(cap=len(limits.teams), allowed=limits.teams)
        self._teams_on = bool(limits.teams)
        self._reason = code_label(cap=limits.code_cap)
        self._code = code_label(cap=limits.code_cap)
        self._error = error_label()
        self._evidence = BoundedLabel(cap=4, allowed=("hint", "structure", "model", "fallback"))
        self._req_cache: dict[tuple[Any, ...], _RequestChildren] = {}
        self._att_cache: dict[tuple[Any, ...], _AttemptChildren] = {}

        # One process: lock-free families read at scrape time (see fastseries). Several
        # workers: prometheus_client metrics, whose values live in the shared mmap files.
        fast = FamilyCollector() if multiproc_dir is None else None

        def counter(name: str, doc: str, labels: tuple[str, ...]) -> _CounterLike:
            if fast is None:
                return Counter(name, doc, labels, registry=None)
            family = CounterFamily(name, doc, labels)
            fast.add(family)
            return family

        def histogram(
            name: str, doc: str, labels: tuple[str, ...], buckets: tuple[float, ...]
        ) -> _HistogramLike:
            if fast is None:
                return Histogram(name, doc, labels, registry=None, buckets=buckets)
            family = HistogramFamily(name, doc, labels, buckets)
            fast.add(family)
            return family

        # Requests.
        self.requests = counter(
            "stepgate_requests",
            "Finished requests by route, final backend, step kind and HTTP status",
            ("route", "backend", "kind", "status"),
        )
        self.request_duration = histogram(
            "stepgate_request_duration_seconds",
            "Total request latency as the client saw it",
            ("route", "backend"),
            REQUEST_BUCKETS,
        )
        self.ttft = histogram(
            "stepgate_time_to_first_token_seconds",
            "Time to the first streamed byte sent to the client",
            ("route", "backend"),
            TTFT_BUCKETS,
        )
        self.overhead = histogram(
            "stepgate_overhead_seconds",
            "Gateway overhead: total latency minus time spent waiting on upstreams",
            ("route",),
            OVERHEAD_BUCKETS,
        )
        # Attempts (one per backend call).
        self.attempts = counter(
            "stepgate_backend_attempts",
            "Backend calls by backend, role (primary|retry|fallback|escalation) and outcome",
            ("backend", "role", "outcome"),
        )
        self.backend_duration = histogram(
            "stepgate_backend_duration_seconds",
            "Latency of one backend call",
            ("backend", "outcome"),
            REQUEST_BUCKETS,
        )
        self.backend_errors = counter(
            "stepgate_backend_errors",
            "Failed backend calls by backend and error class",
            ("backend", "error_class"),
        )
        self.tokens = counter(
            "stepgate_tokens",
            "Tokens by route, backend and direction (in = prompt, out = completion)",
            ("route", "backend", "direction"),
        )
        self.cost = counter(
            "stepgate_cost_usd",
            "Cost of backend calls in USD, by route and backend (all attempts)",
            ("route", "backend"),
        )
        self.baseline_cost = counter(
            "stepgate_baseline_cost_usd",
            "What the same calls would have cost on the all-AR baseline, in USD",
            ("route", "backend"),
        )
        self.cost_unknown = counter(
            "stepgate_cost_unknown",
            "Backend calls whose price is unknown (not included in stepgate_cost_usd)",
            ("route", "backend"),
        )
        self.team_cost = counter(
            "stepgate_team_cost_usd",
            "Cost in USD by team (configured teams only; the rest is `other`)",
            ("team",),
        )
        # Routing and escalation.
        self.escalations = counter(
            "stepgate_escalations",
            "Requests escalated to a stronger model, by route and reason code",
            ("route", "reason"),
        )
        self.drafts = counter(
            "stepgate_drafts",
            "Answers returned flagged as drafts (low confidence, not escalated)",
            ("route",),
        )
        self.fallbacks = counter(
            "stepgate_fallbacks",
            "Fallbacks to another backend, by the backend that failed and its error class",
            ("backend", "error_class"),
        )
        self.retries = counter(
            "stepgate_retries",
            "Retries on the same backend, by backend and the error class that caused them",
            ("backend", "error_class"),
        )
        self.decisions = counter(
            "stepgate_routing_decisions",
            "Routing decisions by route and the evidence that decided the step kind",
            ("route", "evidence"),
        )
        self.classify_duration = histogram(
            "stepgate_classifier_duration_seconds",
            "Time spent classifying one step",
            (),
            CLASSIFY_BUCKETS,
        )
        self.cache_hits = counter(
            "stepgate_cache_hits", "Requests answered from the response cache", ("route",)
        )
        # Health and operations.
        self.backend_up = Gauge(
            "stepgate_backend_up",
            "1 if the backend's circuit is closed (usable), 0 if open",
            ("backend",),
            registry=reg,
            multiprocess_mode="livemostrecent",
        )
        self.circuit_transitions = counter(
            "stepgate_circuit_transitions",
            "Circuit breaker transitions by backend and the state entered (open|half_open|closed)",
            ("backend", "state"),
        )
        self.policy_gen = Gauge(
            "stepgate_policy_generation",
            "Generation number of the policy in force (increments on each successful reload)",
            registry=reg,
            multiprocess_mode="livemax",
        )
        self.policy_reload_failures = counter(
            "stepgate_policy_reload_failures",
            "Policy reloads rejected (the previous policy stays in force)",
            (),
        )
        self.spool_depth = Gauge(
            "stepgate_ledger_spool_depth",
            "Ledger records waiting in the local spool for the database",
            registry=reg,
            multiprocess_mode="livesum",
        )
        self.store_errors = counter(
            "stepgate_store_errors",
            "Errors reaching the limits store, by limit and the mode applied (open|closed)",
            ("limit", "mode"),
        )
        if reg is not None and fast is not None:
            reg.register(fast)

    @classmethod
    def from_env(cls, *, limits: LabelLimits | None = None) -> Metrics:
        """Multiprocess mode iff `PROMETHEUS_MULTIPROC_DIR` is set (call at startup, not import)."""
        raw = os.environ.get(MULTIPROC_ENV)
        return cls(multiproc_dir=Path(raw) if raw else None, limits=limits)

    def set_label_limits(
        self,
        *,
        routes: Collection[str] | None,
        backends: Collection[str] | None,
    ) -> None:
        """Restrict route/backend labels to the policy's names; call after each policy (re)load."""
        self._route.set_allowed(routes)
        self._backend.set_allowed(backends)
        self._req_cache.clear()
        self._att_cache.clear()

    # -- request path -------------------------------------------------------------------------

    def observe_request(
        self,
        record: RequestRecord,
        *,
        overhead_ms: float,
        evidence: str,
        classify_s: float,
    ) -> None:
        """Account one finished request and all its attempts. ~10-20 µs in-process."""
        r = record
        key = (
            r.route,
            r.final_backend,
            r.step_kind,
            r.status,
            evidence,
            r.escalated and r.escalation_reason,
            r.disposition,
            r.cache_hit,
            r.team,
        )
        rc = self._req_cache.get(key)
        if rc is None:
            rc = _RequestChildren(self, r, evidence)
            if len(self._req_cache) < _CACHE_MAX:
                self._req_cache[key] = rc
        rc.requests.inc()
        rc.duration.observe(r.latency_ms / 1000.0)
        rc.overhead.observe(max(overhead_ms, 0.0) / 1000.0)
        if r.ttft_ms is not None:
            rc.ttft.observe(r.ttft_ms / 1000.0)
        rc.decisions.inc()
        self.classify_duration.observe(classify_s)
        if rc.escalations is not None:
            rc.escalations.inc()
        if rc.drafts is not None:
            rc.drafts.inc()
        if rc.cache_hits is not None:
            rc.cache_hits.inc()

        prev: _AttemptChildren | None = None
        prev_error = ""
        total_nanos = 0
        for a in r.attempts:
            akey = (r.route, a.backend, a.role, a.outcome, a.error_class)
            ac = self._att_cache.get(akey)
            if ac is None:
                ac = _AttemptChildren(self, r.route, a)
                if len(self._att_cache) < _CACHE_MAX:
                    self._att_cache[akey] = ac
            ac.attempts.inc()
            ac.duration.observe(a.latency_ms / 1000.0)
            if a.prompt_tokens:
                ac.tokens_in.inc(a.prompt_tokens)
            if a.completion_tokens:
                ac.tokens_out.inc(a.completion_tokens)
            if a.cost_nanos is None:
                ac.cost_unknown.inc()
            elif a.cost_nanos:
                ac.cost.inc(a.cost_nanos / _NANOS_PER_USD)
                total_nanos += a.cost_nanos
            if a.baseline_cost_nanos:
                ac.baseline.inc(a.baseline_cost_nanos / _NANOS_PER_USD)
            if ac.errors is not None:
                ac.errors.inc()
            # A retry or fallback is charged to the backend that failed just before it.
            if prev is not None and prev.errors is not None:
                if a.role == "retry":
                    self.retries.labels(prev.backend, prev_error).inc()
                elif a.role == "fallback":
                    self.fallbacks.labels(prev.backend, prev_error).inc()
            prev = ac
            prev_error = self._err(a) if ac.errors is not None else ""
        if rc.team_cost is not None and total_nanos:
            rc.team_cost.inc(total_nanos / _NANOS_PER_USD)

    def _err(self, a: AttemptRecord) -> str:
        label = error_class_label(a.error_class)
        return label if label == NONE else self._error(label)

    # -- health and operations ----------------------------------------------------------------

    def set_backend_health(self, backend: str, up: bool) -> None:
        self.backend_up.labels(self._backend(backend)).set(1.0 if up else 0.0)

    def circuit_transition(self, backend: str, new: str, *, up: bool) -> None:
        label = self._backend(backend)
        self.circuit_transitions.labels(label, new).inc()
        self.backend_up.labels(label).set(1.0 if up else 0.0)

    def policy_generation(self, n: int) -> None:
        self.policy_gen.set(float(n))

    def policy_reload_failed(self) -> None:
        self.policy_reload_failures.inc()

    def set_spool_depth(self, n: int) -> None:
        self.spool_depth.set(float(n))

    def store_error(self, limit_name: str, mode: str) -> None:
        self.store_errors.labels(self._code(limit_name), self._code(mode)).inc()

    # -- exposition ---------------------------------------------------------------------------

    def render(self) -> tuple[bytes, str]:
        """Body and content type for `GET /metrics` (merges all workers in multiprocess mode)."""
        if self.multiproc_dir is None:
            assert self.registry is not None
            return generate_latest(self.registry), CONTENT_TYPE_LATEST
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(self.multiproc_dir))  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST


def worker_exited(pid: int, *, multiproc_dir: Path) -> None:
    """Drop a dead worker's live gauges; call from the supervisor when a worker exits."""
    mark_process_dead(pid, str(multiproc_dir))  # type: ignore[no-untyped-call]
