"""`type: dllm`: OpenAI-compatible and native dLLM servers (the fast tier)."""

from __future__ import annotations

from typing import Any

from connectors.base import Connector
from connectors.dllm.config import DllmBackend, problems
from connectors.dllm.connector import DllmConnector
from connectors.family import Family, Ready
from gateway.core.pricing import Price


class _Builder(Ready):
    def build(self, name: str, config: Any, *, list_price: Price | None) -> Connector:
        assert isinstance(config, DllmBackend)
        return DllmConnector(name, config)  # local engines have no list price


FAMILY = Family(
    tag="dllm",
    config=DllmBackend,
    tier="fast",
    builder=_Builder,
    provider=lambda model: "stepgate.dllm",
    problems=problems,
)
