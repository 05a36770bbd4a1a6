"""Pure parsing of OpenAI chat-completions JSON (a response or one SSE chunk) into our types.

The wire is the same from a dLLM server and from an OpenAI-compatible AR provider; a body that
does not have the OpenAI shape is a `MalformedReply`, whose text may quote the upstream's values:
the client relays it (`connectors.http_status.relayable`) in a `ProviderUnavailable`.
"""

from __future__ import annotations

import math
from typing import Any

from gateway.core.types import Chunk, Completion, TokenLogprob, Usage, usage_count

_MAX_CREATED = 1 << 40  # unix seconds; far beyond any real timestamp


class MalformedReply(ValueError):
    """A completion or chunk without the OpenAI shape; the text may quote upstream values."""


def parse_usage(raw: Any) -> Usage:
    if not isinstance(raw, dict):
        return Usage()
    details = raw.get("prompt_tokens_details") or {}
    cached = details.get("cached_tokens") if isinstance(details, dict) else None
    return Usage(
        prompt_tokens=usage_count(raw.get("prompt_tokens"), "prompt_tokens"),
        completion_tokens=usage_count(raw.get("completion_tokens"), "completion_tokens"),
        cached_tokens=usage_count(cached, "cached_tokens"),
    )


def _text(value: Any, name: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise ValueError(f"{name} is {type(value).__name__}, not a string")


def _tool_calls(value: Any) -> tuple[dict[str, Any], ...]:
    if not value:
        return ()
    if not isinstance(value, list) or not all(isinstance(c, dict) for c in value):
        raise ValueError("tool_calls is not a list of objects")
    return tuple(value)


def _created(value: Any) -> int:
    if not value:
        return 0
    if isinstance(value, bool) or not isinstance(value, int | float) or not value < _MAX_CREATED:
        raise ValueError(f"created is not a unix time: {value!r}")
    return int(value)


def _logprob(value: Any) -> float:
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"logprob {value!r} is not a finite number")
    return number


def parse_logprobs(raw: Any) -> tuple[TokenLogprob, ...] | None:
    if not isinstance(raw, dict):
        return None
    content = raw.get("content")
    if not isinstance(content, list):
        return None
    out = []
    for item in content:
        top = tuple(
            (str(t.get("token", "")), _logprob(t.get("logprob", 0.0)))
            for t in item.get("top_logprobs") or ()
        )
        out.append(
            TokenLogprob(str(item.get("token", "")), _logprob(item.get("logprob", 0.0)), top)
        )
    return tuple(out)


def parse_completion(data: Any) -> Completion:
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
            content=_text(message.get("content"), "message.content"),
            finish_reason=_text(choice.get("finish_reason"), "finish_reason"),
            usage=parse_usage(data.get("usage")),
            tool_calls=_tool_calls(message.get("tool_calls")),
            logprobs=parse_logprobs(choice.get("logprobs")),
            created=_created(data.get("created")),
            message_extras=extras,
        )
    except (KeyError, IndexError, TypeError, AttributeError, ValueError) as exc:
        raise MalformedReply(f"sent a malformed completion: {exc!r}") from exc


def parse_chunk(data: Any) -> Chunk:
    try:
        usage = parse_usage(data["usage"]) if data.get("usage") else None
        choices = data.get("choices") or []
        if not choices:
            return Chunk(
                id=str(data.get("id") or ""),
                model=str(data.get("model") or ""),
                usage=usage,
                created=_created(data.get("created")),
            )
        choice = choices[0]
        delta = choice.get("delta") or {}
        return Chunk(
            id=str(data.get("id") or ""),
            model=str(data.get("model") or ""),
            role=_text(delta.get("role"), "delta.role"),
            content=_text(delta.get("content"), "delta.content"),
            tool_calls=_tool_calls(delta.get("tool_calls")),
            finish_reason=_text(choice.get("finish_reason"), "finish_reason"),
            usage=usage,
            logprobs=parse_logprobs(choice.get("logprobs")),
            created=_created(data.get("created")),
        )
    except (KeyError, IndexError, TypeError, AttributeError, ValueError) as exc:
        raise MalformedReply(f"sent a malformed stream chunk: {exc!r}") from exc
