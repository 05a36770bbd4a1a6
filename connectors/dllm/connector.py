"""The dLLM connector: an OpenAI-compatible dLLM server over the shared OpenAI-wire client.

What is dLLM-specific (engine dialects, diffusion knobs, logprobs) lives in `translate`; the HTTP
mechanics (one owned keep-alive connection pool, errors, SSE) in `connectors.openai_wire`.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

from connectors.base import Capabilities
from connectors.dllm import translate
from connectors.openai_wire.client import OpenAIWire
from gateway.core.deadline import Deadline
from gateway.core.types import ChatRequest, Chunk, Completion
from gateway.ledger.pricing import Price
from gateway.policy.models import DllmBackend


class DllmConnector:
    backend_type = "dllm"

    def __init__(self, name: str, config: DllmBackend) -> None:
        self.name = name
        self.config = config
        self.model = config.model
        self.capabilities = Capabilities(
            logprobs=translate.returns_logprobs(config),
            prefill=config.engine in translate.PREFILL_ENGINES,
        )
        headers = {}
        if config.api_key_env and os.environ.get(config.api_key_env):
            headers["authorization"] = f"Bearer {os.environ[config.api_key_env]}"
        self._wire = OpenAIWire(
            backend=name,
            url=config.base_url.rstrip("/") + "/chat/completions",
            timeouts=config.timeouts,
            max_connections=config.max_connections,
            headers=headers,
        )

    @property
    def ready(self) -> bool:
        return True

    def price(self) -> Price | None:
        return None  # local engines have no list price: the policy's `pricing` is the only one

    async def aclose(self) -> None:
        await self._wire.aclose()

    async def complete(self, request: ChatRequest, deadline: Deadline) -> Completion:
        body = translate.request_body(self.config, request, stream=False)
        return await self._wire.complete(body, deadline)

    def stream(self, request: ChatRequest, deadline: Deadline) -> AsyncIterator[Chunk]:
        # The wire's own generator, not a wrapper: the caller's aclose() reaches the response.
        body = translate.request_body(self.config, request, stream=True)
        return self._wire.stream(body, deadline)
