"""The runtime a policy is wired into: connectors built per backend family, and the live
policy generation, swapped atomically on reload.

`ConnectorFactory` builds each backend's connector through its family's plug-in
(`connectors.families`), reusing an unchanged backend's connector (and its pool) on reload.
A `Generation` bundles a validated policy with the connectors and dispatcher built for it.
Requests take `holder.current` once and keep it to the end, so an in-flight request finishes
on the generation it started with. Connectors dropped by a reload are closed after a grace
period longer than any request can run.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from connectors.base import Connector
from connectors.cost_map import CostMap
from connectors.families import FAMILIES, family
from connectors.family import Builder
from gateway.dispatch import Dispatcher
from gateway.health.breaker import Breakers
from gateway.ledger.pricing import Pricebook
from gateway.policy.loader import PolicyLoadError, load_policy
from gateway.policy.models import Backend, Policy

log = logging.getLogger("stepgate.policy")


class ConnectorFactory:
    """Creates connectors, reusing an unchanged backend's connector (and its pool) on reload.
    One builder per family for the factory's life: what a family's connectors share (e.g. the
    lazily imported litellm) is shared across reloads."""

    def __init__(self) -> None:
        self._builders: dict[str, Builder] = {f.tag: f.builder() for f in FAMILIES}

    def build(
        self, policy: Policy, previous: Mapping[str, tuple[Backend, Connector]] | None = None
    ) -> dict[str, tuple[Backend, Connector]]:
        out: dict[str, tuple[Backend, Connector]] = {}
        cost_map = CostMap()  # parsed on first use, dropped after this build
        for name, config in policy.backends.items():
            old = (previous or {}).get(name)
            if old is not None and old[0] == config:
                out[name] = old
                continue
            price = family(config.type).list_price(config, cost_map)
            out[name] = (config, self._builders[config.type].build(name, config, list_price=price))
        return out

    def warmed(self, backend_type: str) -> bool:
        return self._builders[backend_type].warmed

    async def preload(self, policy: Policy) -> None:
        """Warm the families the policy uses that load something (litellm's import), now,
        instead of on their first request."""
        used = {config.type for config in policy.backends.values()}
        for f in FAMILIES:
            if f.preload and f.tag in used:
                await self._builders[f.tag].warm()


@dataclass(frozen=True, slots=True)
class Generation:
    number: int
    policy: Policy
    backends: dict[str, tuple[Backend, Connector]]
    dispatcher: Dispatcher
    pricebook: Pricebook

    def connector(self, name: str) -> Connector:
        return self.backends[name][1]


class PolicyHolder:
    def __init__(
        self,
        path: Path,
        factory: ConnectorFactory,
        *,
        on_swap: Callable[[Generation], None] | None = None,
        on_reject: Callable[[list[str]], None] | None = None,
        breakers: Breakers | None = None,
    ) -> None:
        self.path = path
        self.breakers = breakers
        self._factory = factory
        self._on_swap = on_swap
        self._on_reject = on_reject
        self._current: Generation | None = None
        self._stamp: _Stamp | None = None
        self._retired: set[asyncio.Task[None]] = set()
        self.reload_failures = 0
        self.last_errors: list[str] = []

    @property
    def current(self) -> Generation:
        assert self._current is not None, "policy not loaded"
        return self._current

    def load_initial(self) -> Generation:
        """First load at start-up; raises PolicyLoadError so the process refuses to start."""
        self._stamp = _stamp(self.path)
        self._current = self._build(load_policy(self.path), number=1)
        return self._current

    def reload(self) -> tuple[bool, list[str]]:
        """Re-read the file; swap on success, keep the old generation and report on failure."""
        self._stamp = _stamp(self.path)
        try:
            policy = load_policy(self.path)
        except PolicyLoadError as exc:
            self.reload_failures += 1
            self.last_errors = [str(p) for p in exc.problems]
            log.error(
                "policy reload rejected; previous policy keeps serving",
                extra={"fields": {"path": str(self.path), "problems": self.last_errors}},
            )
            if self._on_reject is not None:
                self._on_reject(self.last_errors)
            return False, self.last_errors
        old = self.current
        new = self._build(policy, number=old.number + 1, previous=old.backends)
        self._current = new
        self.last_errors = []
        dropped = [
            c
            for name, (_, c) in old.backends.items()
            if new.backends.get(name, (None, None))[1] is not c
        ]
        if dropped:
            grace = old.policy.request_timeout_s + 5
            task = asyncio.get_running_loop().create_task(_close_later(dropped, grace))
            self._retired.add(task)
            task.add_done_callback(self._retired.discard)
        log.info("policy reloaded", extra={"fields": {"generation": new.number}})
        if self._on_swap is not None:
            self._on_swap(new)
        return True, []

    def changed_on_disk(self) -> bool:
        return _stamp(self.path) != self._stamp

    async def watch(self, interval_s: float) -> None:
        """Poll the file's stamp; reload when it changes. Runs until cancelled.

        A half-written file (an editor saving in place) is rejected like any invalid one; the
        rest of the write changes the size or mtime, so the next poll tries again.
        """
        while True:
            await asyncio.sleep(interval_s)
            if self.changed_on_disk():
                try:
                    self.reload()
                except Exception:
                    # Building connectors for a valid policy failed: keep serving and watching.
                    self.reload_failures += 1
                    log.exception("policy reload failed; previous policy keeps serving")
                    if self._on_reject is not None:
                        self._on_reject(["policy reload failed: see the log"])

    async def aclose(self) -> None:
        for task in list(self._retired):
            task.cancel()
        if self._current is not None:
            for _, connector in self._current.backends.values():
                await connector.aclose()

    def _build(
        self,
        policy: Policy,
        *,
        number: int,
        previous: dict[str, tuple[Backend, Connector]] | None = None,
    ) -> Generation:
        backends = self._factory.build(policy, previous)
        connectors = {name: c for name, (_, c) in backends.items()}
        if self.breakers is not None:
            self.breakers.configure(policy.circuit_breaker)
        return Generation(
            number=number,
            policy=policy,
            backends=backends,
            dispatcher=Dispatcher(connectors, policy.retry, breakers=self.breakers),
            pricebook=Pricebook(policy, {name: c.price() for name, c in connectors.items()}),
        )


async def _close_later(connectors: list[Connector], delay_s: float) -> None:
    await asyncio.sleep(delay_s)
    for connector in connectors:
        await connector.aclose()


# (mtime ns, size, inode): mtime alone misses a rewrite within the filesystem's timestamp tick.
_Stamp = tuple[int, int, int]


def _stamp(path: Path) -> _Stamp | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)
