"""Everything a running gateway holds, built once in the app's lifespan and closed there."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gateway.classify.classifier import Classifier
from gateway.health.breaker import Breakers, is_up
from gateway.health.shared import SharedBreakers
from gateway.ledger.recorder import LedgerRecorder
from gateway.ledger.writer import Ledger, LedgerOptions
from gateway.limits.gate import Gate, GateOptions
from gateway.limits.idempotency import Idempotency
from gateway.pipeline import Pipeline
from gateway.policy.models import CircuitBreaker
from gateway.recording import Recorder
from gateway.runtime import ConnectorFactory, Generation, PolicyHolder
from gateway.settings import Settings
from gateway.telemetry.logs import configure_logging
from gateway.telemetry.metrics import Metrics
from gateway.telemetry.recorder import TelemetryRecorder
from gateway.telemetry.tracing import Tracer

log = logging.getLogger("stepgate.health")


@dataclass
class Services:
    settings: Settings
    holder: PolicyHolder
    pipeline: Pipeline
    factory: ConnectorFactory
    metrics: Metrics
    tracer: Tracer
    ledger: Ledger
    gate: Gate
    telemetry: TelemetryRecorder
    idempotency: Idempotency
    breakers: Breakers
    shared_breakers: SharedBreakers | None = None
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @classmethod
    async def build(cls, settings: Settings) -> Services:
        configure_logging(settings.log_level)
        metrics = Metrics.from_env()
        tracer = Tracer.from_settings(settings)

        def swapped(gen: Generation) -> None:
            metrics.set_label_limits(routes=_route_labels(gen), backends=list(gen.backends))
            metrics.policy_generation(gen.number)

        def swapped_and_up(gen: Generation) -> None:
            swapped(gen)
            for name in gen.backends:
                metrics.set_backend_health(name, is_up(breakers.state(name)))

        factory = ConnectorFactory()
        # Breakers outlive policy generations: a reload keeps what is known about each backend.
        breakers = Breakers(CircuitBreaker(), on_transition=_log_transition(metrics))
        holder = PolicyHolder(
            settings.policy,
            factory,
            on_swap=swapped_and_up,
            on_reject=lambda _problems: metrics.policy_reload_failed(),
            breakers=breakers,
        )
        swapped_and_up(holder.load_initial())
        ledger = await Ledger.open(
            database_url=settings.database_url,
            spool_dir=settings.spool_dir,
            options=LedgerOptions(upgrade=True),
        )
        telemetry = TelemetryRecorder(metrics=metrics, tracer=tracer)
        recorders: list[Recorder] = [LedgerRecorder(ledger), telemetry]
        gate = Gate.build(
            engine=ledger.engine,
            redis_url=settings.redis_url,
            options=GateOptions(require_keys=settings.require_keys),
            on_store_error=metrics.store_error,
            cache_max_entries=holder.current.policy.cache.max_entries,
        )
        pipeline = Pipeline(
            holder=holder, classifier=Classifier.load(), recorders=recorders, gate=gate
        )
        return cls(
            settings=settings,
            holder=holder,
            pipeline=pipeline,
            factory=factory,
            metrics=metrics,
            tracer=tracer,
            ledger=ledger,
            gate=gate,
            telemetry=telemetry,
            idempotency=Idempotency(
                gate.store, prefix=gate.options.key_prefix, ttl_s=settings.idempotency_ttl_s
            ),
            breakers=breakers,
            shared_breakers=(
                SharedBreakers(
                    breakers,
                    settings.redis_url,
                    prefix=gate.options.key_prefix,
                    on_error=lambda: metrics.store_error("circuit", "local"),
                )
                if settings.redis_url
                else None
            ),
        )

    async def start(self) -> None:
        if self.shared_breakers is not None:
            await self.shared_breakers.start()
        if self.settings.policy_poll_s > 0:
            self._tasks.append(asyncio.create_task(self.holder.watch(self.settings.policy_poll_s)))
        policy = self.holder.current.policy
        if self.settings.preload_ar:
            # Off the start-up path: the server answers while litellm loads in a thread, and
            # /readyz shows each AR backend's `ready` flip to true when it is done.
            self._tasks.append(asyncio.create_task(self.factory.preload(policy)))

    async def aclose(self) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.shared_breakers is not None:
            await self.shared_breakers.aclose()
        await self.holder.aclose()
        self.pipeline.judge.aclose()
        await self.idempotency.flush()
        await self.gate.aclose()  # settles what is queued before the ledger's engine goes
        await self.ledger.aclose()
        self.telemetry.flush()
        if self.tracer.enabled:
            await asyncio.to_thread(self.tracer.shutdown)

    async def readiness(self) -> dict[str, Any]:
        gen = self.holder.current
        circuits = self.breakers.snapshot()
        backends = {}
        for name, (_, c) in gen.backends.items():
            circuit = circuits.get(name, {"state": "closed"})
            backends[name] = {
                "type": c.backend_type,
                # Ready: warmed up and its circuit closed (half-open: a probe is still deciding).
                "ready": c.ready and is_up(circuit["state"]),
                "circuit": circuit,
            }
        database = await self.ledger.ping()
        self.metrics.set_spool_depth(self.ledger.spool_depth)
        # A backend still loading (litellm's import, started at boot with STEPGATE_PRELOAD_AR)
        # would make its first callers wait seconds: not ready until it is done. With preload
        # off, loading on first use is the operator's choice and does not hold readiness.
        warming = sorted(name for name, (_, c) in gen.backends.items() if not c.ready)
        return {
            # The ledger spools while its database is down, so serving continues; readiness
            # reports it so an orchestrator can alert.
            "ready": database and (not warming or not self.settings.preload_ar),
            "warming": warming,
            "database": database,
            "ledger_spool_depth": self.ledger.spool_depth,
            "policy_generation": gen.number,
            "policy_errors": self.holder.last_errors,
            "backends": backends,
        }


def _log_transition(metrics: Metrics) -> Callable[[str, str, str], None]:
    def on_transition(backend: str, old: str, new: str) -> None:
        metrics.circuit_transition(backend, new, up=is_up(new))
        level = logging.WARNING if new == "open" else logging.INFO
        log.log(
            level,
            "circuit %s",
            new,
            extra={"fields": {"backend": backend, "from": old, "to": new}},
        )

    return on_transition


def _route_labels(gen: Generation) -> list[str]:
    policy = gen.policy
    return [r.name for r in policy.routes] + [f"alias:{a}" for a in policy.aliases]
