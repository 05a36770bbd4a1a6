"""Prices per backend and the cost of one attempt, in integer nano-dollars.

A `Price` is either per token (input/output/cached, nano-dollars per token as Decimal) or per
GPU-hour (converted by the attempt's measured wall time), never both: the policy refuses a
backend with both and so does `Price`. Rates stay exact Decimals; each attempt's cost is rounded
half-even once, at the end. Unknown prices are `None`, never 0.

GPU-hour caveat: each attempt is charged its own wall time, so a GPU serving N requests at once
is charged up to N times over; set a $/Mtok price measured at your usual load when the backend
batches heavily. A GPU-hour *baseline* backend prices the answer at the time the answering
backend took, which is only meaningful when both run on comparable hardware.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal

from gateway.core.config import Pricing
from gateway.core.money import NANOS_PER_USD, per_token_nanos
from gateway.core.types import Usage


@dataclass(frozen=True, slots=True)
class Price:
    input_nanos_per_token: Decimal | None = None
    output_nanos_per_token: Decimal | None = None
    cached_nanos_per_token: Decimal | None = None
    gpu_hour_nanos: Decimal | None = None
    # `list` (the provider's price list), `tokens`, `gpu-share` or `gpu-time`: see `Pricing`.
    basis: str = "list"

    def __post_init__(self) -> None:
        per_token = (self.input_nanos_per_token, self.output_nanos_per_token)
        if self.gpu_hour_nanos is not None:
            if any(rate is not None for rate in (*per_token, self.cached_nanos_per_token)):
                raise ValueError("a Price is per token or per GPU-hour, not both")
        elif any(rate is None for rate in per_token):
            raise ValueError("a per-token Price needs both the input and the output rate")

    @classmethod
    def from_policy(cls, pricing: Pricing) -> Price:
        if pricing.gpu_hour_usd is not None:
            # Exact: a price with more than 9 decimals must not be truncated to whole nanos.
            per_hour = pricing.gpu_hour_usd * NANOS_PER_USD
            prompt_tps = pricing.gpu_prompt_tokens_per_s
            completion_tps = pricing.gpu_completion_tokens_per_s
            if prompt_tps is None or completion_tps is None:
                return cls(gpu_hour_nanos=per_hour, basis="gpu-time")
            # The attempt's share of the GPU: the seconds its tokens take at the GPU's
            # throughput, at the GPU-hour price (prefill and generation counted apart).
            return cls(
                input_nanos_per_token=per_hour / Decimal(3600) / prompt_tps,
                output_nanos_per_token=per_hour / Decimal(3600) / completion_tps,
                basis="gpu-share",
            )
        assert pricing.input_per_mtok_usd is not None and pricing.output_per_mtok_usd is not None
        cached = pricing.cached_input_per_mtok_usd
        return cls(
            input_nanos_per_token=per_token_nanos(pricing.input_per_mtok_usd),
            output_nanos_per_token=per_token_nanos(pricing.output_per_mtok_usd),
            cached_nanos_per_token=per_token_nanos(cached) if cached is not None else None,
            basis="tokens",
        )

    @property
    def per_token(self) -> bool:
        return self.input_nanos_per_token is not None

    def cost_nanos(self, usage: Usage, *, elapsed_s: float) -> int:
        """Exact cost of one attempt; cached prompt tokens at the cached rate when one is set."""
        if self.gpu_hour_nanos is not None:
            exact = self.gpu_hour_nanos * Decimal(str(elapsed_s)) / Decimal(3600)
            return int(exact.to_integral_value(rounding=ROUND_HALF_EVEN))
        assert self.input_nanos_per_token is not None and self.output_nanos_per_token is not None
        cached = min(usage.cached_tokens, usage.prompt_tokens)
        cached_rate = (
            self.cached_nanos_per_token
            if self.cached_nanos_per_token is not None
            else self.input_nanos_per_token
        )
        exact = (
            self.input_nanos_per_token * (usage.prompt_tokens - cached)
            + cached_rate * cached
            + self.output_nanos_per_token * usage.completion_tokens
        )
        return int(exact.to_integral_value(rounding=ROUND_HALF_EVEN))
