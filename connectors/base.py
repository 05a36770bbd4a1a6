"""The one seam between the gateway and model backends.

A connector owns its HTTP client (closed by `aclose`), translates `ChatRequest` to its wire
format in a pure module, and returns provider-neutral `Completion` / `Chunk` values with usage.
Failures are raised as `ProviderError` subclasses so dispatch can decide on retries.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

from gateway.core.deadline import Deadline
from gateway.core.pricing import Price
from gateway.core.types import ChatRequest, Chunk, Completion


@dataclass(frozen=True, slots=True)
class Capabilities:
    streaming: bool = True
    tools: bool = True
    json_schema: bool = True
    logprobs: bool = False
    # Continues a final assistant message (prefill) instead of answering after it.
    prefill: bool = False
    # Non-OpenAI request dialects it sends natively (`ChatRequest.native(d)`): a request
    # carrying something only its own API can express (`native_only`) goes only to these.
    dialects: frozenset[str] = frozenset()


class Connector(Protocol):
    name: str
    backend_type: str  # "dllm" | "litellm" | "anthropic"
    model: str
    capabilities: Capabilities

    @property
    def ready(self) -> bool:
        """False while the connector is still warming up (e.g. importing its SDK)."""

    async def warm(self) -> None:
        """Finish warming up (load what `ready` waits for); returns at once when ready."""

    def price(self) -> Price | None:
        """The provider's own list price, or None when the connector knows none.

        A policy `pricing` block overrides it; `gateway.ledger.pricing.Pricebook` applies that.
        """

    async def complete(self, request: ChatRequest, deadline: Deadline) -> Completion: ...

    def stream(self, request: ChatRequest, deadline: Deadline) -> AsyncIterator[Chunk]:
        """Yield chunks; raise ProviderError before the first chunk or StreamInterrupted after."""

    async def aclose(self) -> None: ...
