"""Projected cost of a replayed step, in integer nano-dollars, priced like the ledger prices it.

Prices come from the policy (`pricing`) or, for litellm backends without one, from litellm's
offline cost map; `gateway.ledger.pricing.Pricebook` merges them exactly as the gateway does.
A GPU-hour priced backend costs its hourly price times the attempt's wall time, which a replay
cannot measure: `GpuTime` estimates it from the tokens (the assumption is printed with every
report). Usage is the recorded `response.usage` when the traffic has it, else the classifier's
estimate (prompt tokens, expected output tokens). The baseline cost is the same usage priced at
the policy's baseline backend, as in the ledger.
"""

from __future__ import annotations

from dataclasses import dataclass

from connectors.litellm_ar.pricing import price_from_cost_map
from gateway.core.types import Usage
from gateway.ledger.pricing import Price, Pricebook
from gateway.policy.models import LitellmBackend, Policy


@dataclass(frozen=True, slots=True)
class GpuTime:
    """Wall time of one attempt on a GPU-hour priced backend (a dLLM server).

    seconds = (overhead + prompt tokens / prefill rate + output tokens / output rate) / concurrency.
    The default output rate is a diffusion model decoding a 256-token canvas in 32 steps on one
    H100; set your own measured rates with the simulate options. `concurrency` 1 (the default)
    charges each attempt its whole wall time, which is how the ledger charges GPU-hour backends;
    a higher value spreads the GPU-hour over requests the server batches together.
    """

    output_tokens_per_s: float = 500.0
    prefill_tokens_per_s: float = 10_000.0
    overhead_s: float = 0.03
    concurrency: int = 1

    def __post_init__(self) -> None:
        if self.output_tokens_per_s <= 0 or self.prefill_tokens_per_s <= 0:
            raise ValueError("token rates must be positive")
        if self.overhead_s < 0:
            raise ValueError("overhead must not be negative")
        if self.concurrency < 1:
            raise ValueError("concurrency must be at least 1")

    def seconds(self, usage: Usage) -> float:
        wall = (
            self.overhead_s
            + usage.prompt_tokens / self.prefill_tokens_per_s
            + usage.completion_tokens / self.output_tokens_per_s
        )
        return wall / self.concurrency

    def describe(self) -> str:
        return (
            f"GPU-hour backends: {self.overhead_s * 1000:g} ms + prompt at "
            f"{self.prefill_tokens_per_s:g} tok/s + output at {self.output_tokens_per_s:g} tok/s "
            f"per attempt, {self.concurrency} request(s) per GPU at a time"
        )


class CostModel:
    """Cost and baseline cost of a step on one policy's backends."""

    def __init__(self, policy: Policy, *, gpu_time: GpuTime) -> None:
        prices: dict[str, Price | None] = {
            name: price_from_cost_map(backend.model)
            for name, backend in policy.backends.items()
            if isinstance(backend, LitellmBackend) and backend.pricing is None
        }
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
