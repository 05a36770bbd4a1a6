"""`type: litellm`: every AR provider litellm supports, imported lazily (the deep tier)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from connectors.base import Connector
from connectors.cost_map import CostMap
from connectors.family import Family
from connectors.litellm_ar.config import LitellmBackend
from connectors.litellm_ar.connector import LitellmConnector, _LitellmModule
from gateway.core.pricing import Price

# litellm model prefixes -> `gen_ai.provider.name` well-known values.
PROVIDERS: Final[Mapping[str, str]] = {
    "openai": "openai",
    "text-completion-openai": "openai",
    "anthropic": "anthropic",
    "azure": "azure.ai.openai",
    "azure_ai": "azure.ai.inference",
    "bedrock": "aws.bedrock",
    "gemini": "gcp.gemini",
    "vertex_ai": "gcp.vertex_ai",
    "mistral": "mistral_ai",
    "groq": "groq",
    "cohere": "cohere",
    "deepseek": "deepseek",
    "perplexity": "perplexity",
    "xai": "x_ai",
    "watsonx": "ibm.watsonx.ai",
}


def provider(model: str) -> str:
    prefix, sep, _ = model.partition("/")
    if sep:
        return PROVIDERS.get(prefix, prefix)
    return "openai" if model.startswith(("gpt-", "o1", "o3", "o4")) else "litellm"


class _Builder:
    """One lazily imported litellm per gateway process, shared by its litellm connectors."""

    def __init__(self) -> None:
        self._module = _LitellmModule()

    def build(self, name: str, config: Any, *, list_price: Price | None) -> Connector:
        assert isinstance(config, LitellmBackend)
        return LitellmConnector(name, config, module=self._module, price=list_price)

    @property
    def warmed(self) -> bool:
        return self._module.loaded

    async def warm(self) -> None:
        """Import litellm now (in a worker thread) instead of on the first AR request."""
        await self._module.get()


def _list_price(config: Any, cost_map: CostMap) -> Price | None:
    assert isinstance(config, LitellmBackend)
    return cost_map.price(config.model)


FAMILY = Family(
    tag="litellm",
    config=LitellmBackend,
    tier="deep",
    builder=_Builder,
    provider=provider,
    list_price=_list_price,
    preload=True,
)
