"""Builds connectors from a policy: the only module that names concrete connector classes."""

from __future__ import annotations

from collections.abc import Mapping

from connectors.anthropic.connector import AnthropicConnector
from connectors.base import Connector
from connectors.dllm.connector import DllmConnector
from connectors.litellm_ar.connector import LitellmConnector, _LitellmModule
from connectors.litellm_ar.pricing import CostMap
from gateway.policy.models import AnthropicBackend, Backend, DllmBackend, Policy


class ConnectorFactory:
    """Creates connectors, reusing an unchanged backend's connector (and its pool) on reload."""

    def __init__(self) -> None:
        self._litellm = _LitellmModule()

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
            connector: Connector
            if isinstance(config, DllmBackend):
                connector = DllmConnector(name, config)
            elif isinstance(config, AnthropicBackend):
                connector = AnthropicConnector(
                    name, config, price=cost_map.price(config.cost_map_model)
                )
            else:
                connector = LitellmConnector(
                    name, config, module=self._litellm, price=cost_map.price(config.model)
                )
            out[name] = (config, connector)
        return out

    @property
    def litellm_loaded(self) -> bool:
        return self._litellm.loaded

    async def warm_litellm(self) -> None:
        """Import litellm now (in a worker thread) instead of on the first AR request."""
        await self._litellm.get()
