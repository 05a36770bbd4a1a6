"""Pure parsing of OpenAI chat-completions JSON (a response or one SSE chunk) into our types.

The wire is the same from a dLLM server and from an OpenAI-compatible AR provider; a body that
does not have the OpenAI shape is a `MalformedReply`, whose text may quote the upstream's values:
the client relays it (`connectors.http_status.relayable`) in a `ProviderUnavailable`.
"""

from __future__ import annotations

from typing import Any

from gateway.core.types import Chunk, Completion, TokenLogprob, Usage


class MalformedReply(ValueError):
    """A completion or chunk without the OpenAI shape; the text may quote upstream values."""


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
            content=message.get("content"),
            finish_reason=choice.get("finish_reason"),
            usage=parse_usage(data.get("usage")),
            tool_calls=tuple(message.get("tool_calls") or ()),
            logprobs=parse_logprobs(choice.get("logprobs")),
            created=int(data.get("created") or 0),
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
        raise MalformedReply(f"sent a malformed stream chunk: {exc!r}") from exc
