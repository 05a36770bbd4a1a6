"""The time assumption behind GPU-hour prices in a replay (no imports beyond the stdlib, so the
CLI can build its option defaults from it without loading the gateway)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gateway.core.types import Usage


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
