"""litellm's offline cost map (list prices of hosted models), read as JSON without importing
litellm (keeps start-up cheap). Shared by the families whose providers it prices."""

from __future__ import annotations

import importlib.util
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson

from gateway.core.money import NANOS_PER_USD
from gateway.core.pricing import Price

COST_MAP_FILE = "model_prices_and_context_window_backup.json"


def _cost_map_path() -> Path | None:
    spec = importlib.util.find_spec("litellm")  # locates the package; does not import it
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / COST_MAP_FILE
    return path if path.exists() else None


class CostMap:
    """The cost map, parsed (~1.5 MB of JSON) at most once per instance: use one per policy
    build for all its backends, then let it go rather than keep the whole table in memory."""

    def __init__(self) -> None:
        self._table: dict[str, Any] | None = None

    def lookup(self, model: str) -> dict[str, Any] | None:
        """The cost-map entry for a provider-prefixed litellm model string, or None."""
        if self._table is None:
            path = _cost_map_path()
            self._table = orjson.loads(path.read_bytes()) if path is not None else {}
        _, _, bare = model.partition("/")
        for key in (model, bare):
            entry = self._table.get(key)
            if isinstance(entry, dict) and entry.get("input_cost_per_token") is not None:
                return entry
        return None

    def price(self, model: str) -> Price | None:
        entry = self.lookup(model)
        if entry is None or entry.get("output_cost_per_token") is None:
            return None
        cached = entry.get("cache_read_input_token_cost")
        return Price(
            input_nanos_per_token=_nanos(entry["input_cost_per_token"]),
            output_nanos_per_token=_nanos(entry["output_cost_per_token"]),
            cached_nanos_per_token=_nanos(cached) if cached is not None else None,
        )


def _nanos(per_token_usd: Any) -> Decimal:
    # repr() keeps the map's decimal literal (4e-07), so no binary float error leaks in.
    return Decimal(repr(float(per_token_usd))) * NANOS_PER_USD
