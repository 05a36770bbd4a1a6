"""Everything a running gateway holds, built once in the app's lifespan and closed there."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Any

from gateway.classify.classifier import Classifier
from gateway.pipeline import Pipeline
from gateway.policy.holder import PolicyHolder
from gateway.settings import Settings
from gateway.wiring import ConnectorFactory


@dataclass
class Services:
    settings: Settings
    holder: PolicyHolder
    pipeline: Pipeline
    factory: ConnectorFactory
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @classmethod
    def build(cls, settings: Settings) -> Services:
        factory = ConnectorFactory()
        holder = PolicyHolder(settings.policy, factory)
        holder.load_initial()
        classifier = Classifier()
        pipeline = Pipeline(holder=holder, classifier=classifier, recorders=[])
        return cls(settings=settings, holder=holder, pipeline=pipeline, factory=factory)

    async def start(self) -> None:
        if self.settings.policy_poll_s > 0:
            self._tasks.append(asyncio.create_task(self.holder.watch(self.settings.policy_poll_s)))

    async def aclose(self) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.holder.aclose()

    async def readiness(self) -> dict[str, Any]:
        gen = self.holder.current
        backends = {
            name: {"type": c.backend_type, "ready": c.ready}
            for name, (_, c) in gen.backends.items()
        }
        return {
            "ready": True,
            "policy_generation": gen.number,
            "policy_errors": self.holder.last_errors,
            "backends": backends,
        }
