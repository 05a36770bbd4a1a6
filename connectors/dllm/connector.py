"""The dLLM connector: one diffusion-LLM server, reached on the endpoint each call needs.

Every engine answers on its OpenAI-compatible chat endpoint (the shared `connectors.openai_wire`
client). Two engines have a second, native endpoint, chosen per call:

- sglang with `generate_template` (and `logprobs: true`): a call the template can express goes
  to `/generate` for its token logprobs (`sglang_generate`); the rest to chat;
- mercury with `decide`: a call with a readable label set goes to `/decisions` (`decide`), its
  label's probability returned as token confidence; the rest, and every stream, to chat.

A request dlmserve cannot take (tools, images) is refused with `ProviderRejected` before any
call. What is sent per engine is in `translate`.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

from connectors.base import Capabilities
from connectors.dllm import decide, sglang_generate, translate
from connectors.dllm.config import DllmBackend
from connectors.dllm.endpoint import JsonEndpoint
from connectors.openai_wire.client import OpenAIWire
from connectors.openai_wire.parse import MalformedReply
from gateway.core.deadline import Deadline
from gateway.core.errors import ProviderError, ProviderRejected
from gateway.core.pricing import Price
from gateway.core.types import ChatRequest, Chunk, Completion


class DllmConnector:
    backend_type = "dllm"

    def __init__(self, name: str, config: DllmBackend) -> None:
        self.name = name
        self.config = config
        self.model = config.model
        profile = translate.ENGINES[config.engine]
        self.capabilities = Capabilities(
            tools=profile.tools,
            json_schema=profile.json_schema,
            # Token logprobs from the chat endpoint; /generate and /decisions add theirs
            # only on the calls they answer.
            logprobs=translate.returns_logprobs(config),
            prefill=profile.prefill,
        )
        headers = {}
        if config.api_key_env and os.environ.get(config.api_key_env):
            headers["authorization"] = f"Bearer {os.environ[config.api_key_env]}"
        base = config.base_url.rstrip("/")
        self._wire = OpenAIWire(
            backend=name,
            url=base + "/chat/completions",
            timeouts=config.timeouts,
            max_connections=config.max_connections,
            headers=headers,
        )

        def endpoint(url: str) -> JsonEndpoint:
            return JsonEndpoint(
                backend=name,
                url=url,
                timeouts=config.timeouts,
                max_connections=config.max_connections,
                headers=headers,
            )

        self._generate: JsonEndpoint | None = None
        if config.engine == "sglang" and config.generate_template and config.logprobs:
            # /generate is at the server's root, beside /v1.
            self._generate = endpoint(base.removesuffix("/v1") + "/generate")
        self._decide: JsonEndpoint | None = None
        if config.engine == "mercury" and config.decide is not None:
            self._decide = endpoint(base + "/decisions")

    @property
    def ready(self) -> bool:
        return True

    async def warm(self) -> None:
        return None  # nothing to load

    def price(self) -> Price | None:
        return None  # local engines have no list price: the policy's `pricing` is the only one

    async def aclose(self) -> None:
        await self._wire.aclose()
        for endpoint in (self._generate, self._decide):
            if endpoint is not None:
                await endpoint.aclose()

    async def complete(self, request: ChatRequest, deadline: Deadline) -> Completion:
        self._refuse(request)
        if self._decide is not None and self.config.decide is not None:
            q = decide.question(request)
            if q is not None:
                body = decide.request_body(self.config.decide.model, request, q)
                data = await self._decide.post(body, deadline)
                try:
                    return decide.completion(data, q, model=self.config.decide.model)
                except MalformedReply as exc:
                    raise self._decide.unavailable(str(exc)) from exc
        text = self._generate_text(request)
        if self._generate is not None and text is not None:
            body = sglang_generate.request_body(self.config, request, text, stream=False)
            data = await self._generate.post(body, deadline)
            try:
                return sglang_generate.completion(data, model=self.model)
            except MalformedReply as exc:
                raise self._generate.unavailable(str(exc)) from exc
            except sglang_generate.GenerateAborted as exc:
                raise self._generate.status_error(exc.status, exc.message) from exc
        body = translate.request_body(self.config, request, stream=False)
        return await self._wire.complete(body, deadline)

    def stream(self, request: ChatRequest, deadline: Deadline) -> AsyncIterator[Chunk]:
        try:
            self._refuse(request)
        except ProviderError as exc:
            return _failing(exc)
        text = self._generate_text(request)
        if self._generate is not None and text is not None:
            body = sglang_generate.request_body(self.config, request, text, stream=True)
            return self._generate_stream(self._generate, body, deadline)
        # The wire's own generator, not a wrapper: the caller's aclose() reaches the response.
        body = translate.request_body(self.config, request, stream=True)
        return self._wire.stream(body, deadline)

    def _refuse(self, request: ChatRequest) -> None:
        if self.config.engine != "dlmserve":
            return
        why = translate.dlmserve_refusal(request)
        if why is not None:
            raise ProviderRejected(
                f"{self.name}: {why}; route such steps to another backend",
                backend=self.name,
                code="unsupported_by_engine",
            )

    def _generate_text(self, request: ChatRequest) -> str | None:
        template = self.config.generate_template
        if self._generate is None or template is None:
            return None
        return sglang_generate.prompt(template, request)

    async def _generate_stream(
        self, endpoint: JsonEndpoint, body: dict[str, Any], deadline: Deadline
    ) -> AsyncGenerator[Chunk, None]:
        state = sglang_generate.StreamState(model=self.model)
        # aclosing: a caller that stops reading closes the upstream response at once.
        async with contextlib.aclosing(endpoint.events(body, deadline)) as events:
            async for data in events:
                if state.finished:
                    continue  # read on to [DONE], so the connection can be reused
                try:
                    chunks = state.feed(data)
                except MalformedReply as exc:
                    raise endpoint.unavailable(str(exc)) from exc
                except sglang_generate.GenerateAborted as exc:
                    raise endpoint.status_error(exc.status, exc.message) from exc
                for chunk in chunks:
                    yield chunk
        if not state.finished:
            raise endpoint.unavailable("closed the /generate stream before it finished")


async def _failing(exc: ProviderError) -> AsyncGenerator[Chunk, None]:
    """A stream that fails before its first chunk, as the Connector protocol asks."""
    raise exc
    yield  # pragma: no cover - makes this an async generator
