"""Our Completion / Chunk values -> OpenAI wire JSON and SSE frames."""

from __future__ import annotations

from typing import Any

import orjson

from gateway.core.errors import StepgateError
from gateway.core.types import Chunk, Completion, TokenLogprob, Usage


def _logprobs(items: tuple[TokenLogprob, ...] | None) -> dict[str, Any] | None:
    if items is None:
        return None
    return {
        "content": [
            {
                "token": t.token,
                "logprob": t.logprob,
                "bytes": list(t.token.encode()),
                "top_logprobs": [
                    {"token": tok, "logprob": lp, "bytes": list(tok.encode())} for tok, lp in t.top
                ],
            }
            for t in items
        ]
    }


def usage_json(usage: Usage) -> dict[str, Any]:
    out: dict[str, Any] = {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
    }
    if usage.cached_tokens:
        out["prompt_tokens_details"] = {"cached_tokens": usage.cached_tokens}
    return out


def completion_body(c: Completion, *, request_id: str, want_logprobs: bool) -> bytes:
    message: dict[str, Any] = {"role": "assistant", "content": c.content, **c.message_extras}
    if c.tool_calls:
        message["tool_calls"] = list(c.tool_calls)
    choice: dict[str, Any] = {
        "index": 0,
        "message": message,
        "finish_reason": c.finish_reason,
        "logprobs": _logprobs(c.logprobs) if want_logprobs else None,
    }
    return orjson.dumps(
        {
            "id": c.id or f"chatcmpl-{request_id}",
            "object": "chat.completion",
            "created": c.created,
            "model": c.model,
            "choices": [choice],
            "usage": usage_json(c.usage),
        }
    )


def chunk_frame(ch: Chunk, *, request_id: str, want_logprobs: bool) -> bytes:
    delta: dict[str, Any] = {}
    if ch.role:
        delta["role"] = ch.role
    if ch.content is not None:
        delta["content"] = ch.content
    if ch.tool_calls:
        delta["tool_calls"] = list(ch.tool_calls)
    body = {
        "id": ch.id or f"chatcmpl-{request_id}",
        "object": "chat.completion.chunk",
        "created": ch.created,
        "model": ch.model,
        "choices": [
            {
                "index": 0,
                "delta": delta,
                "logprobs": _logprobs(ch.logprobs) if want_logprobs else None,
                "finish_reason": ch.finish_reason,
            }
        ],
    }
    return b"data: " + orjson.dumps(body) + b"\n\n"


def usage_frame(
    usage: Usage, *, request_id: str, model: str, created: int, extra: dict[str, Any]
) -> bytes:
    body = {
        "id": f"chatcmpl-{request_id}",
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [],
        "usage": usage_json(usage),
        **extra,
    }
    return b"data: " + orjson.dumps(body) + b"\n\n"


def error_frame(error: StepgateError) -> bytes:
    """An in-stream error event; the OpenAI SDK raises APIError when it sees one."""
    return b"data: " + orjson.dumps(error.body()) + b"\n\n"


DONE = b"data: [DONE]\n\n"
