"""`type: anthropic`: Anthropic's Messages API over Stepgate's own HTTP client."""

from __future__ import annotations

from typing import Any

from connectors.anthropic.config import AnthropicBackend
from connectors.anthropic.connector import AnthropicConnector
from connectors.base import Connector
from connectors.cost_map import CostMap
from connectors.family import Family, Ready
from gateway.core.pricing import Price


class _Builder(Ready):
    def build(self, name: str, config: Any, *, list_price: Price | None) -> Connector:
        assert isinstance(config, AnthropicBackend)
        return AnthropicConnector(name, config, price=list_price)


def _list_price(config: Any, cost_map: CostMap) -> Price | None:
    assert isinstance(config, AnthropicBackend)
    return cost_map.price(config.cost_map_model)


FAMILY = Family(
    tag="anthropic",
    config=AnthropicBackend,
    tier="deep",
    builder=_Builder,
    provider=lambda model: "anthropic",
    list_price=_list_price,
)
