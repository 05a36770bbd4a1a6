"""litellm's offline cost map, read as JSON without importing litellm (keeps start-up cheap)."""

from __future__ import annotations

import importlib.util
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson

from gateway.core.money import NANOS_PER_USD
from gateway.ledger.pricing import Price

COST_MAP_FILE = "model_prices_and_context_window_backup.json"


def _cost_map_path() -> Path | None:
    spec = importlib.util.find_spec("litellm")  # locates the package; does not import it
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / COST_MAP_FILE
    return path if path.exists() else None


def lookup(model: str) -> dict[str, Any] | None:
    """The cost-map entry for a provider-prefixed litellm model string, or None."""
    path = _cost_map_path()
    if path is None:
        return None
    table = orjson.loads(path.read_bytes())
    _, _, bare = model.partition("/")
    for key in (model, bare):
        entry = table.get(key)
        if isinstance(entry, dict) and entry.get("input_cost_per_token") is not None:
            return entry
    return None


def _nanos(per_token_usd: Any) -> Decimal:
    # repr() keeps the map's decimal literal (4e-07), so no binary float error leaks in.
    return Decimal(repr(float(per_token_usd))) * NANOS_PER_USD


def price_from_cost_map(model: str) -> Price | None:
    entry = lookup(model)
    if entry is None or entry.get("output_cost_per_token") is None:
        return None
    cached = entry.get("cache_read_input_token_cost")
    return Price(
        input_nanos_per_token=_nanos(entry["input_cost_per_token"]),
        output_nanos_per_token=_nanos(entry["output_cost_per_token"]),
        cached_nanos_per_token=_nanos(cached) if cached is not None else None,
    )
