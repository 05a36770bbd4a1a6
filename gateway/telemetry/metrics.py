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
from typing import Any, Final

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


@dataclass(frozen=True, slots=True)
class LabelLimits:
    """Bounds on label values. `routes`/`backends`/`teams` None means "first `cap` seen"."""

    routes: Collection[str] | None = None
    backends: Collection[str] | None = None
    teams: Collection[str] = ()
    name_cap: int = 200
    code_cap: int = 32


class _RequestChildren:
    """Pre-resolved children for one (route, backend, kind, status) combination."""

    __slots__ = ("duration", "overhead", "requests", "ttft")

    def __init__(self, m: Metrics, route: str, backend: str, kind: str, status: str) -> None:
        self.requests = m.requests.labels(route, backend, kind, status)
        self.duration = m.request_duration.labels(route, backend)
        self.ttft = m.ttft.labels(route, backend)
        self.overhead = m.overhead.labels(route)


class _AttemptChildren:
    """Pre-resolved children for one (route, backend, role, outcome) attempt combination."""

    __slots__ = (
        "attempts",
        "baseline",
        "cost",
        "cost_unknown",
        "duration",
        "tokens_in",
        "tokens_out",
    )

    def __init__(self, m: Metrics, route: str, backend: str, role: str, outcome: str) -> None:
        self.attempts = m.attempts.labels(backend, role, outcome)
        self.duration = m.backend_duration.labels(backend, outcome)
        self.tokens_in = m.tokens.labels(route, backend, "in")
        self.tokens_out = m.tokens.labels(route, backend, "out")
        self.cost = m.cost.labels(route, backend)
        self.baseline = m.baseline_cost.labels(route, backend)
        self.cost_unknown = m.cost_unknown.labels(route, backend)


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
        self._reason = code_label(cap=limits.code_cap)
        self._code = code_label(cap=limits.code_cap)
        self._error = error_label()
        self._evidence = BoundedLabel(cap=3, allowed=("hint", "structure", "model"))
        self._req_cache: dict[tuple[Any, ...], _RequestChildren] = {}
        self._att_cache: dict[tuple[Any, ...], _AttemptChildren] = {}

        def counter(name: str, doc: str, labels: tuple[str, ...]) -> Counter:
            return Counter(name, doc, labels, registry=reg)

        def histogram(
            name: str, doc: str, labels: tuple[str, ...], buckets: tuple[float, ...]
        ) -> Histogram:
            return Histogram(name, doc, labels, registry=reg, buckets=buckets)

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
        key = (record.route, record.final_backend, record.step_kind, record.status)
        rc = self._req_cache.get(key)
        if rc is None:
            route = self._route(record.route)
            rc = _RequestChildren(
                self,
                route,
                self._backend(record.final_backend),
                kind_label(record.step_kind),
                status_label(record.status),
            )
            if len(self._req_cache) < _CACHE_MAX:
                self._req_cache[key] = rc
        rc.requests.inc()
        rc.duration.observe(record.latency_ms / 1000.0)
        rc.overhead.observe(max(overhead_ms, 0.0) / 1000.0)
        if record.ttft_ms is not None:
            rc.ttft.observe(record.ttft_ms / 1000.0)
        route = self._route(record.route)
        self.decisions.labels(route, self._evidence(evidence)).inc()
        self.classify_duration.observe(classify_s)
        if record.escalated:
            self.escalations.labels(route, self._reason(record.escalation_reason)).inc()
        if record.disposition == "draft":
            self.drafts.labels(route).inc()
        if record.cache_hit:
            self.cache_hits.labels(route).inc()

        prev: AttemptRecord | None = None
        total_nanos = 0
        for attempt in record.attempts:
            self._observe_attempt(record.route, attempt)
            if attempt.cost_nanos is not None:
                total_nanos += attempt.cost_nanos
            if prev is not None and prev.outcome == "error":
                if attempt.role == "retry":
                    self.retries.labels(self._backend(prev.backend), self._err(prev)).inc()
                elif attempt.role == "fallback":
                    self.fallbacks.labels(self._backend(prev.backend), self._err(prev)).inc()
            prev = attempt
        if total_nanos:
            self.team_cost.labels(self._team(record.team)).inc(total_nanos / _NANOS_PER_USD)

    def _observe_attempt(self, raw_route: str, a: AttemptRecord) -> None:
        key = (raw_route, a.backend, a.role, a.outcome)
        ac = self._att_cache.get(key)
        if ac is None:
            ac = _AttemptChildren(
                self, self._route(raw_route), self._backend(a.backend), a.role, a.outcome
            )
            if len(self._att_cache) < _CACHE_MAX:
                self._att_cache[key] = ac
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
        if a.baseline_cost_nanos:
            ac.baseline.inc(a.baseline_cost_nanos / _NANOS_PER_USD)
        if a.outcome == "error":
            self.backend_errors.labels(self._backend(a.backend), self._err(a)).inc()

    def _err(self, a: AttemptRecord) -> str:
        label = error_class_label(a.error_class)
        return label if label == NONE else self._error(label)

    # -- health and operations ----------------------------------------------------------------

    def set_backend_health(self, backend: str, up: bool) -> None:
        self.backend_up.labels(self._backend(backend)).set(1.0 if up else 0.0)

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
