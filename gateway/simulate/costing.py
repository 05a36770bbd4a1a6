"""Projected cost of a replayed step, in integer nano-dollars, priced like the ledger prices it.

Prices come from the policy (`pricing`) or, for litellm and anthropic backends without one, from
litellm's offline cost map; `gateway.ledger.pricing.Pricebook` merges them as the gateway does.
A GPU-hour priced backend costs its hourly price times the attempt's wall time, which a replay
cannot measure: `GpuTime` estimates it from the tokens (the assumption is printed with every
report). Usage is the recorded `response.usage` when the traffic has it, else the classifier's
estimate (prompt tokens, expected output tokens). The baseline cost is the same usage priced at
the policy's baseline backend, as in the ledger.
"""

from __future__ import annotations

from connectors.cost_map import CostMap
from connectors.families import family
from gateway.core.pricing import Price
from gateway.core.types import Usage
from gateway.ledger.pricing import Pricebook
from gateway.policy.models import Policy
from gateway.simulate.gputime import GpuTime


class CostModel:
    """Cost and baseline cost of a step on one policy's backends."""

    def __init__(self, policy: Policy, *, gpu_time: GpuTime) -> None:
        cost_map = CostMap()
        prices: dict[str, Price | None] = {}
        for name, backend in policy.backends.items():
            if backend.pricing is not None:
                continue
            prices[name] = family(backend.type).list_price(backend, cost_map)
        self.pricebook = Pricebook(policy, prices)
        self.gpu_time = gpu_time
        self.baseline = policy.baseline

    def cost(self, backend: str, usage: Usage) -> int | None:
        price = self.pricebook.price(backend)
        if price is None:
            return None
        elapsed = self.gpu_time.seconds(usage) if price.gpu_hour_nanos is not None else 0.0
        return price.cost_nanos(usage, elapsed_s=elapsed)

    def costs(self, backend: str, usage: Usage) -> tuple[int | None, int | None]:
        """(cost, baseline cost) in nano-dollars; None where a price is unknown."""
        return self.cost(backend, usage), self.cost(self.baseline, usage)

    def unpriced(self) -> list[str]:
        return self.pricebook.unknown()
