"""Prices every backend of one policy generation (`Pricebook`); the `Price` of one backend is
`gateway.core.pricing.Price`."""

from __future__ import annotations

from collections.abc import Mapping

from gateway.core.pricing import Price
from gateway.core.types import Usage
from gateway.policy.models import Policy


class Pricebook:
    """Prices every backend of one policy generation, and each attempt's baseline cost.

    `prices` maps backend name to its `Price`, or None where no price is known (the litellm
    connector supplies AR prices from its cost map); a backend's policy `pricing` overrides it.
    The baseline cost of an attempt is the same usage priced at the policy's baseline backend.
    """

    def __init__(self, policy: Policy, prices: Mapping[str, Price | None]) -> None:
        merged: dict[str, Price | None] = {}
        for name, backend in policy.backends.items():
            if backend.pricing is not None:
                merged[name] = Price.from_policy(backend.pricing)
            else:
                merged[name] = prices.get(name)
        self._prices = merged
        self.baseline = policy.baseline

    def price(self, backend: str) -> Price | None:
        return self._prices.get(backend)

    def basis(self, backend: str) -> str:
        """How the backend's attempts are priced (`Price.basis`), or `unpriced`."""
        price = self._prices.get(backend)
        return price.basis if price is not None else "unpriced"

    def cost(self, backend: str, usage: Usage, *, elapsed_s: float) -> int | None:
        price = self._prices.get(backend)
        return None if price is None else price.cost_nanos(usage, elapsed_s=elapsed_s)

    def attempt_costs(
        self, backend: str, usage: Usage, *, elapsed_s: float
    ) -> tuple[int | None, int | None]:
        """(cost, baseline cost) in nano-dollars; None where the price is unknown."""
        return (
            self.cost(backend, usage, elapsed_s=elapsed_s),
            self.cost(self.baseline, usage, elapsed_s=elapsed_s),
        )

    def unknown(self) -> list[str]:
        """Backends without a price, to surface at load (`stepgate policy check`, logs)."""
        return sorted(name for name, price in self._prices.items() if price is None)
