"""Pure translation between our types and an OpenAI-compatible dLLM server's wire format.

Engine dialects differ only in where the generic diffusion knobs go and whether the server
returns token logprobs:
- vllm:    `vllm_xargs` {max_denoising_steps, canvas_length, block_length, threshold}; logprobs yes
- sglang:  knobs are server launch config (rejected at policy load); LLaDA2 path returns none
- ollada:  top-level `steps`, `block_length`, `gen_length`, `threshold`; no logprobs
- mercury: OpenAI-compatible, no logprobs, no knobs
- openai:  plain OpenAI-compatible server; logprobs as asked
"""

from __future__ import annotations

from typing import Any

from gateway.core.errors import ProviderUnavailable
from gateway.core.types import ChatRequest, Chunk, Completion, TokenLogprob, Usage
from gateway.policy.models import DllmBackend

LOGPROB_ENGINES = frozenset({"vllm", "openai"})


def returns_logprobs(backend: DllmBackend) -> bool:
    return backend.logprobs and backend.engine in LOGPROB_ENGINES


def request_body(backend: DllmBackend, request: ChatRequest, *, stream: bool) -> dict[str, Any]:
    body: dict[str, Any] = request.passthrough()
    body["model"] = backend.model
    body["messages"] = request.wire_messages()
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
        if backend.engine == "vllm":
            # Usage on every chunk: a stream the client abandons is billed exactly.
            body["stream_options"]["continuous_usage_stats"] = True
    if returns_logprobs(backend):
        body["logprobs"] = True
        if backend.top_logprobs:
            body.setdefault("top_logprobs", backend.top_logprobs)
    knobs = backend.diffusion
    if knobs is not None:
        if backend.engine == "vllm":
            xargs = {
                "max_denoising_steps": knobs.steps,
                "canvas_length": knobs.canvas_length,
                "block_length": knobs.block_length,
                "threshold": knobs.threshold,
            }
            body["vllm_xargs"] = {k: v for k, v in xargs.items() if v is not None}
        elif backend.engine == "ollada":
            fields = {
                "steps": knobs.steps,
                "block_length": knobs.block_length,
                "gen_length": knobs.canvas_length,
                "threshold": knobs.threshold,
            }
            body.update({k: v for k, v in fields.items() if v is not None})
    return body


def parse_usage(raw: Any) -> Usage:
    if not isinstance(raw, dict):
        return Usage()
    details = raw.get("prompt_tokens_details") or {}
    return Usage(
        prompt_tokens=int(raw.get("prompt_tokens") or 0),
        completion_tokens=int(raw.get("completion_tokens") or 0),
        cached_tokens=int(details.get("cached_tokens") or 0) if isinstance(details, dict) else 0,
    )


def parse_logprobs(raw: Any) -> tuple[TokenLogprob, ...] | None:
    if not isinstance(raw, dict):
        return None
    content = raw.get("content")
    if not isinstance(content, list):
        return None
    out = []
    for item in content:
        top = tuple(
            (str(t.get("token", "")), float(t.get("logprob", 0.0)))
            for t in item.get("top_logprobs") or ()
        )
        out.append(TokenLogprob(str(item.get("token", "")), float(item.get("logprob", 0.0)), top))
    return tuple(out)


def parse_completion(data: Any, backend_name: str) -> Completion:
    try:
        choice = data["choices"][0]
        message = choice.get("message") or {}
        extras = {
            k: v
            for k, v in message.items()
            if k not in {"role", "content", "tool_calls"} and v is not None
        }
        return Completion(
            id=str(data.get("id") or ""),
            model=str(data.get("model") or ""),
            content=message.get("content"),
            finish_reason=choice.get("finish_reason"),
            usage=parse_usage(data.get("usage")),
            tool_calls=tuple(message.get("tool_calls") or ()),
            logprobs=parse_logprobs(choice.get("logprobs")),
            created=int(data.get("created") or 0),
            message_extras=extras,
        )
    except (KeyError, IndexError, TypeError, AttributeError, ValueError) as exc:
        raise ProviderUnavailable(
            f"malformed completion from upstream: {exc!r}", backend=backend_name
        ) from exc


def parse_chunk(data: Any, backend_name: str) -> Chunk:
    try:
        usage = parse_usage(data["usage"]) if data.get("usage") else None
        choices = data.get("choices") or []
        if not choices:
            return Chunk(
                id=str(data.get("id") or ""),
                model=str(data.get("model") or ""),
                usage=usage,
                created=int(data.get("created") or 0),
            )
        choice = choices[0]
        delta = choice.get("delta") or {}
        return Chunk(
            id=str(data.get("id") or ""),
            model=str(data.get("model") or ""),
            role=delta.get("role"),
            content=delta.get("content"),
            tool_calls=tuple(delta.get("tool_calls") or ()),
            finish_reason=choice.get("finish_reason"),
            usage=usage,
            logprobs=parse_logprobs(choice.get("logprobs")),
            created=int(data.get("created") or 0),
        )
    except (KeyError, IndexError, TypeError, AttributeError, ValueError) as exc:
        raise ProviderUnavailable(
            f"malformed stream chunk from upstream: {exc!r}", backend=backend_name
        ) from exc
