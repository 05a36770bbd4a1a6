"""AR providers via `litellm.acompletion`. litellm is imported lazily, off the start-up path.

The import (seconds, ~190 MiB) happens in a worker thread the first time this backend is
needed, or when `warm()` is called; `ready` reports whether it has finished.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from types import ModuleType
from typing import Any

from connectors.base import Capabilities
from connectors.litellm_ar import translate
from connectors.litellm_ar.errors import map_exception
from gateway.core.deadline import Deadline
from gateway.core.errors import ProviderAuthError, ProviderError, ProviderTimeout
from gateway.core.types import ChatRequest, Chunk, Completion
from gateway.ledger.pricing import Price
from gateway.policy.models import LitellmBackend


def _import_litellm() -> ModuleType:
    os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"  # never fetch the price map
    os.environ.setdefault("LITELLM_LOG", "ERROR")
    import litellm

    litellm.telemetry = False
    litellm.suppress_debug_info = True
    return litellm


class _LitellmModule:
    """One lazily imported litellm module per process, shared by every litellm backend."""

    def __init__(self) -> None:
        self._module: ModuleType | None = None
        self._lock = asyncio.Lock()

    @property
    def loaded(self) -> bool:
        return self._module is not None

    async def get(self) -> ModuleType:
        if self._module is None:
            async with self._lock:
                if self._module is None:
                    self._module = await asyncio.to_thread(_import_litellm)
        return self._module


class LitellmConnector:
    backend_type = "litellm"

    def __init__(
        self, name: str, config: LitellmBackend, *, module: _LitellmModule, price: Price | None
    ) -> None:
        self.name = name
        self.config = config
        self.model = config.model
        self.capabilities = Capabilities(logprobs=config.model.startswith("openai/"))
        self._price = price  # litellm's offline cost map; the policy may override it
        self._litellm = module

    @property
    def ready(self) -> bool:
        return self._litellm.loaded

    async def warm(self) -> None:
        await self._litellm.get()

    def price(self) -> Price | None:
        return self._price

    async def aclose(self) -> None:
        # litellm keeps its own pooled clients per provider; nothing of ours stays open.
        return None

    def _kwargs(self, request: ChatRequest, deadline: Deadline, *, stream: bool) -> dict[str, Any]:
        key = os.environ.get(self.config.api_key_env) if self.config.api_key_env else None
        if self.config.api_key_env and not key:
            raise ProviderAuthError(
                f"{self.name}: environment variable {self.config.api_key_env} is not set on the "
                f"gateway; set it to call {self.config.model}",
                backend=self.name,
            )
        return translate.call_kwargs(
            model=self.config.model,
            request=request,
            api_key=key,
            api_base=self.config.base_url,
            timeout_s=deadline.cap(self.config.timeouts.request_s),
            stream=stream,
        )

    async def complete(self, request: ChatRequest, deadline: Deadline) -> Completion:
        litellm = await self._litellm.get()
        kwargs = self._kwargs(request, deadline, stream=False)
        try:
            async with asyncio.timeout(deadline.remaining()):
                resp = await litellm.acompletion(**kwargs)
        except TimeoutError as exc:
            raise ProviderTimeout(
                f"{self.name} did not answer before the deadline", backend=self.name
            ) from exc
        except ProviderError:
            raise
        except Exception as exc:
            raise map_exception(exc, backend=self.name) from exc
        return translate.parse_response(resp)

    async def stream(self, request: ChatRequest, deadline: Deadline) -> AsyncIterator[Chunk]:
        litellm = await self._litellm.get()
        kwargs = self._kwargs(request, deadline, stream=True)
        finished = False
        try:
            async with asyncio.timeout(deadline.remaining()):
                resp = await litellm.acompletion(**kwargs)
                async for raw in resp:
                    chunk = translate.parse_chunk(raw)
                    finished = finished or chunk.finish_reason is not None
                    yield chunk
        except TimeoutError as exc:
            raise ProviderTimeout(f"{self.name} stream timed out", backend=self.name) from exc
        except ProviderError:
            raise
        except Exception as exc:
            raise map_exception(exc, backend=self.name) from exc
        if not finished:
            raise map_exception(
                ConnectionError("stream ended before a finish_reason"), backend=self.name
            )
