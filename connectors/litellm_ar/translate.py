"""Pure translation between our types and litellm's call arguments / response objects."""

from __future__ import annotations

from typing import Any

from gateway.core import params
from gateway.core.types import (
    ChatRequest,
    Chunk,
    Completion,
    TokenLogprob,
    Usage,
    usage_count,
)

# What goes to `litellm.acompletion` from the caller: chat parameters litellm maps per provider
# (dropping what a provider cannot take). `metadata` is litellm's own logging payload.
LITELLM_PARAMS = params.CHAT_PARAMS - {"metadata"}


def call_kwargs(
    *,
    model: str,
    request: ChatRequest,
    api_key: str | None,
    api_base: str | None,
    timeout_s: float,
    stream: bool,
) -> dict[str, Any]:
    # Only allow-listed chat parameters, never a key litellm reads as an option of its own
    # (`base_url`, `api_key`, `extra_headers`, `mock_response`, ...): those are set below,
    # from the policy, after the caller's, and `metadata` is litellm's logging payload.
    kwargs: dict[str, Any] = {k: v for k, v in request.passthrough().items() if k in LITELLM_PARAMS}
    kwargs.update(
        model=model,
        messages=request.wire_messages(),
        timeout=timeout_s,
        num_retries=0,  # dispatch owns retries and fallbacks
        max_retries=0,
        # Parameters a provider cannot take (e.g. `seed` on Anthropic) are dropped, not fatal:
        # the caller asked for a route, not for this provider.
        drop_params=True,
    )
    if api_key is not None:
        kwargs["api_key"] = api_key
    if api_base is not None:
        kwargs["api_base"] = api_base
    if stream:
        kwargs["stream"] = True
        kwargs["stream_options"] = {"include_usage": True}
    return kwargs


def _get(obj: Any, name: str, default: Any = None) -> Any:
    if isinstance(obj, dict):
        return obj.get(name, default)
    return getattr(obj, name, default)


def _dump(obj: Any) -> dict[str, Any]:
    if isinstance(obj, dict):
        return obj
    dump = getattr(obj, "model_dump", None)
    out: dict[str, Any] = dump(exclude_none=True) if dump else dict(vars(obj))
    return out


def parse_usage(raw: Any) -> Usage:
    if raw is None:
        return Usage()
    details = _get(raw, "prompt_tokens_details")
    cached = _get(details, "cached_tokens", 0) if details is not None else 0
    return Usage(
        prompt_tokens=usage_count(_get(raw, "prompt_tokens", 0), "prompt_tokens"),
        completion_tokens=usage_count(_get(raw, "completion_tokens", 0), "completion_tokens"),
        cached_tokens=usage_count(cached, "cached_tokens"),
    )


def parse_logprobs(raw: Any) -> tuple[TokenLogprob, ...] | None:
    content = _get(raw, "content") if raw is not None else None
    if not content:
        return None
    return tuple(
        TokenLogprob(
            str(_get(t, "token", "")),
            float(_get(t, "logprob", 0.0)),
            tuple(
                (str(_get(a, "token", "")), float(_get(a, "logprob", 0.0)))
                for a in _get(t, "top_logprobs", None) or ()
            ),
        )
        for t in content
    )


def parse_response(resp: Any) -> Completion:
    choice = resp.choices[0]
    message = choice.message
    tool_calls = tuple(_dump(tc) for tc in (_get(message, "tool_calls") or ()))
    return Completion(
        id=str(_get(resp, "id", "") or ""),
        model=str(_get(resp, "model", "") or ""),
        content=_get(message, "content"),
        finish_reason=_get(choice, "finish_reason"),
        usage=parse_usage(_get(resp, "usage")),
        tool_calls=tool_calls,
        logprobs=parse_logprobs(_get(choice, "logprobs")),
        created=int(_get(resp, "created", 0) or 0),
    )


def parse_chunk(chunk: Any) -> Chunk:
    usage_raw = _get(chunk, "usage")
    usage = parse_usage(usage_raw) if usage_raw else None
    choices = _get(chunk, "choices") or []
    cid = str(_get(chunk, "id", "") or "")
    model = str(_get(chunk, "model", "") or "")
    created = int(_get(chunk, "created", 0) or 0)
    if not choices:
        return Chunk(id=cid, model=model, usage=usage, created=created)
    choice = choices[0]
    delta = _get(choice, "delta")
    tool_calls = tuple(_dump(tc) for tc in (_get(delta, "tool_calls") or ()))
    return Chunk(
        role=_get(delta, "role"),
        content=_get(delta, "content"),
        tool_calls=tool_calls,
        finish_reason=_get(choice, "finish_reason"),
        usage=usage,
        logprobs=parse_logprobs(_get(choice, "logprobs")),
        id=cid,
        model=model,
        created=created,
    )
