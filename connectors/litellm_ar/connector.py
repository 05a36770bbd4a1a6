"""AR providers via litellm. litellm is imported lazily, off the start-up path.

The import (seconds, ~190 MiB) happens in a worker thread the first time this backend is
needed, or when `warm()` is called; `ready` reports whether it has finished and the backend's
provider is resolved. With `transport: auto` a provider that speaks OpenAI's wire natively is
called over Stepgate's own client (`native`), litellm deciding what is sent; every other
provider, and `transport: litellm`, goes through `litellm.acompletion`.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
from collections.abc import AsyncIterator, Mapping
from types import ModuleType
from typing import Any

from connectors.base import Capabilities
from connectors.litellm_ar import translate
from connectors.litellm_ar.config import LitellmBackend
from connectors.litellm_ar.errors import map_exception
from connectors.litellm_ar.native import NativeTransport, resolve
from connectors.openai_wire.client import OpenAIWire
from connectors.openai_wire.exchange import env_key
from gateway.core.deadline import Deadline
from gateway.core.errors import (
    ProviderAuthError,
    ProviderError,
    ProviderRejected,
    ProviderTimeout,
)
from gateway.core.pricing import Price
from gateway.core.types import ChatRequest, Chunk, Completion

log = logging.getLogger(__name__)

# Providers whose litellm handler passes an https image URL on to the provider as a URL (the
# provider fetches it); for every other provider litellm downloads it on the gateway.
URL_MEDIA_PROVIDERS = frozenset({"openai", "azure", "anthropic", "hosted_vllm"})


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

    @property
    def module(self) -> ModuleType | None:
        """The module once imported, else None (never imports)."""
        return self._module

    async def get(self) -> ModuleType:
        if self._module is None:
            async with self._lock:
                if self._module is None:
                    self._module = await asyncio.to_thread(_import_litellm)
                    # litellm's module objects (~190 MiB) live as long as the process: keep
                    # them out of the cyclic collector's full passes, as gateway/app.py does
                    # for everything built at start-up. Unfrozen, each full pass walked them
                    # all and stalled every request in flight for ~200 ms (bench/README.md).
                    gc.freeze()
        return self._module


class LitellmConnector:
    backend_type = "litellm"

    def __init__(
        self, name: str, config: LitellmBackend, *, module: _LitellmModule, price: Price | None
    ) -> None:
        self.name = name
        self.config = config
        self.model = config.model
        self.capabilities = Capabilities(
            logprobs=config.model.startswith("openai/"),
            # Anthropic continues a final assistant message (its "prefill").
            prefill=config.model.startswith("anthropic/"),
        )
        self._price = price  # litellm's offline cost map; the policy may override it
        self._litellm = module
        self._resolved = False
        self._native: NativeTransport | None = None
        self._provider = config.model.split("/", 1)[0]

    @property
    def ready(self) -> bool:
        litellm = self._litellm.module
        if litellm is None:
            return False
        self._transport(litellm)  # resolves the provider once, on the first look after import
        return True

    async def warm(self) -> None:
        self._transport(await self._litellm.get())

    def _transport(self, litellm: ModuleType) -> NativeTransport | None:
        """The native route, resolved by litellm once per backend; None: litellm.acompletion."""
        if not self._resolved:
            self._resolved = True
            if self.config.transport == "auto":
                try:
                    self._native = resolve(litellm, self.name, self.config)
                except Exception as exc:  # litellm's own types; acompletion reports it per call
                    log.warning(
                        "%s: litellm cannot resolve %r (%s); calls go through litellm.acompletion",
                        self.name,
                        self.config.model,
                        exc,
                    )
        return self._native

    def price(self) -> Price | None:
        return self._price

    async def aclose(self) -> None:
        # litellm keeps its own pooled clients per provider; the native route owns one session.
        if self._native is not None:
            await self._native.wire.aclose()

    def _api_key(self) -> str | None:
        """The key from the policy's `api_key_env`, read per call; None: litellm's default."""
        env = self.config.api_key_env
        if not env:
            return None
        return env_key(env, backend=self.name, purpose=f"to call {self.config.model}")

    def _native_call(
        self, litellm: ModuleType, request: ChatRequest, *, stream: bool
    ) -> tuple[OpenAIWire, dict[str, Any], Mapping[str, str]] | None:
        """Wire, body and headers when this request goes native; None: litellm.acompletion."""
        native = self._transport(litellm)
        body = native.body(request, stream=stream) if native is not None else None
        if native is None or body is None:
            return None
        key = self._api_key() or native.default_key
        if not key:
            raise ProviderAuthError(
                f"{self.name}: no API key for {self.config.model}: name one with `api_key_env` "
                f"in the policy (litellm found no default for provider {native.provider})",
                backend=self.name,
            )
        return native.wire, body, native.headers(key)

    def _kwargs(self, request: ChatRequest, deadline: Deadline, *, stream: bool) -> dict[str, Any]:
        if self._provider not in URL_MEDIA_PROVIDERS and request.has_remote_images():
            # litellm downloads remote images and files itself for these providers: on the
            # gateway, synchronously, from any address the caller names.
            raise ProviderRejected(
                f"{self.name} ({self.config.model}) cannot take image or file URLs through "
                "Stepgate; send them inline as data: URLs",
                backend=self.name,
                code="remote_media_refused",
            )
        key = self._api_key()
        return translate.call_kwargs(
            model=self.config.model,
            request=request,
            api_key=key,
            api_base=self.config.base_url,
            timeout_s=deadline.cap(self.config.timeouts.request_s),
            stream=stream,
        )

    async def complete(self, request: ChatRequest, deadline: Deadline) -> Completion:
        litellm = self._litellm.module or await self._litellm.get()
        native = self._native_call(litellm, request, stream=False)
        if native is not None:
            wire, body, headers = native
            return await wire.complete(body, deadline, headers=headers)
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
            raise map_exception(exc, backend=self.name, secrets=_sent_key(kwargs)) from exc
        try:
            return translate.parse_response(resp)
        except (TypeError, ValueError, AttributeError) as exc:  # a reply we cannot read
            raise map_exception(exc, backend=self.name, secrets=_sent_key(kwargs)) from exc

    async def stream(self, request: ChatRequest, deadline: Deadline) -> AsyncIterator[Chunk]:
        litellm = self._litellm.module or await self._litellm.get()
        native = self._native_call(litellm, request, stream=True)
        if native is not None:
            wire, body, headers = native
            chunks = wire.stream(body, deadline, headers=headers)
            try:
                async for chunk in chunks:
                    yield chunk
            finally:
                await chunks.aclose()  # our caller's aclose() reaches the response now
            return
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
            raise map_exception(exc, backend=self.name, secrets=_sent_key(kwargs)) from exc
        if not finished:
            raise map_exception(
                ConnectionError("stream ended before a finish_reason"), backend=self.name
            )


def _sent_key(kwargs: Mapping[str, Any]) -> tuple[str, ...]:
    """The key a `litellm.acompletion` call was given: masked wherever its error text quotes it."""
    key = kwargs.get("api_key")
    return (key,) if isinstance(key, str) else ()
