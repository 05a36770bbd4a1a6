"""The dLLM connector: one owned httpx.AsyncClient per backend, OpenAI-compatible wire."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson

from connectors.base import Capabilities
from connectors.dllm import translate
from connectors.http_status import error_for_status
from gateway.core.deadline import Deadline
from gateway.core.errors import ProviderError, ProviderTimeout, ProviderUnavailable
from gateway.core.types import ChatRequest, Chunk, Completion
from gateway.ledger.pricing import Price
from gateway.policy.models import DllmBackend


class DllmConnector:
    backend_type = "dllm"

    def __init__(self, name: str, config: DllmBackend, *, transport: Any = None) -> None:
        self.name = name
        self.config = config
        self.model = config.model
        self.capabilities = Capabilities(logprobs=translate.returns_logprobs(config))
        self._price = Price.from_policy(config.pricing) if config.pricing else None
        headers = {"content-type": "application/json"}
        if config.api_key_env and os.environ.get(config.api_key_env):
            headers["authorization"] = f"Bearer {os.environ[config.api_key_env]}"
        t = config.timeouts
        self._client = httpx.AsyncClient(
            base_url=config.base_url.rstrip("/"),
            headers=headers,
            timeout=httpx.Timeout(t.request_s, connect=t.connect_s),
            limits=httpx.Limits(
                max_connections=config.max_connections,
                max_keepalive_connections=config.max_connections,
            ),
            transport=transport,
        )

    @property
    def ready(self) -> bool:
        return True

    def price(self) -> Price | None:
        return self._price

    async def aclose(self) -> None:
        await self._client.aclose()

    async def complete(self, request: ChatRequest, deadline: Deadline) -> Completion:
        body = orjson.dumps(translate.request_body(self.config, request, stream=False))
        try:
            async with asyncio.timeout(deadline.remaining()):
                response = await self._client.post("/chat/completions", content=body)
                raw = response.content
        except TimeoutError as exc:
            raise ProviderTimeout(
                f"{self.name} did not answer before the request deadline", backend=self.name
            ) from exc
        except httpx.HTTPError as exc:
            raise _transport_error(self.name, exc) from exc
        if response.status_code != 200:
            raise self._status_error(response.status_code, raw, response.headers)
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise ProviderUnavailable(
                f"{self.name} returned a body that is not JSON", backend=self.name
            ) from exc
        return translate.parse_completion(data, self.name)

    async def stream(self, request: ChatRequest, deadline: Deadline) -> AsyncIterator[Chunk]:
        body = orjson.dumps(translate.request_body(self.config, request, stream=True))
        first_token_s = self.config.timeouts.first_token_s
        try:
            async with asyncio.timeout(deadline.remaining()) as scope:
                if first_token_s is not None:
                    scope.reschedule(
                        asyncio.get_running_loop().time() + deadline.cap(first_token_s)
                    )
                req = self._client.build_request("POST", "/chat/completions", content=body)
                response = await self._client.send(req, stream=True)
                try:
                    if response.status_code != 200:
                        raw = await response.aread()
                        raise self._status_error(response.status_code, raw, response.headers)
                    finished = False
                    first = True
                    async for line in response.aiter_lines():
                        if not line.startswith("data:"):
                            continue
                        payload = line[5:].strip()
                        if payload == "[DONE]":
                            return
                        try:
                            data = orjson.loads(payload)
                        except orjson.JSONDecodeError as exc:
                            raise ProviderUnavailable(
                                f"{self.name} sent a malformed stream chunk", backend=self.name
                            ) from exc
                        if isinstance(data, dict) and "error" in data:
                            raise ProviderUnavailable(
                                f"{self.name} reported a stream error: {data['error']}",
                                backend=self.name,
                            )
                        chunk = translate.parse_chunk(data, self.name)
                        if first:
                            first = False
                            scope.reschedule(
                                asyncio.get_running_loop().time() + deadline.remaining()
                            )
                        finished = finished or chunk.finish_reason is not None
                        yield chunk
                    if not finished:
                        raise ProviderUnavailable(
                            f"{self.name} closed the stream before it finished", backend=self.name
                        )
                finally:
                    await response.aclose()
        except TimeoutError as exc:
            raise ProviderTimeout(
                f"{self.name} stream timed out (first token or request deadline)",
                backend=self.name,
            ) from exc
        except httpx.HTTPError as exc:
            raise _transport_error(self.name, exc) from exc

    def _status_error(self, status: int, raw: bytes, headers: httpx.Headers) -> ProviderError:
        message, code = _error_message(raw)
        return error_for_status(
            status, message, backend=self.name, retry_after=headers.get("retry-after"), code=code
        )


def _error_message(raw: bytes) -> tuple[str, str | None]:
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw[:200].decode("utf-8", "replace") or "(empty body)", None
    err = data.get("error") if isinstance(data, dict) else None
    if isinstance(err, dict):
        code = err.get("code")
        return str(err.get("message") or err), str(code) if code else None
    if isinstance(err, str):
        return err, None
    return str(data)[:200], None


def _transport_error(name: str, exc: httpx.HTTPError) -> ProviderError:
    if isinstance(exc, httpx.TimeoutException):
        return ProviderTimeout(f"{name} timed out: {type(exc).__name__}", backend=name)
    return ProviderUnavailable(f"{name} unreachable: {type(exc).__name__}: {exc}", backend=name)
