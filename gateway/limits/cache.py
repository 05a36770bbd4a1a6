"""Exact-match response cache for deterministic steps.

Eligible: caching enabled in the policy, `temperature: 0`, not streaming, no logprobs asked,
and a step kind the policy lists. The key is sha256 of the team and the canonical request body
without `user` and `metadata` (which vary per end user but do not change the answer), so teams
never see each other's answers. A hit is recorded in the ledger at zero cost, with the baseline
cost of the cached answer's usage as its saving.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import orjson

from gateway.core.profile import StepProfile
from gateway.core.types import ChatRequest, Completion, Usage
from gateway.policy.limits_models import CachePolicy

_EXCLUDED = {"user", "metadata", "stream", "stream_options"}


def eligible(policy: CachePolicy, request: ChatRequest, profile: StepProfile) -> bool:
    return (
        policy.enabled
        and request.temperature == 0
        and not request.stream
        and not request.logprobs
        # Parts only a native backend takes (Anthropic `thinking`, `cache_control`, ...) are
        # not in the key's translated form: such a step is never answered from the cache.
        and not request.native_only
        and profile.kind in policy.kinds
    )


def cache_key(prefix: str, team: str | None, request: ChatRequest) -> str:
    body = request.model_dump(mode="json", exclude_none=True, exclude=_EXCLUDED)
    digest = hashlib.sha256((team or "").encode() + b"\0")
    digest.update(orjson.dumps(body, option=orjson.OPT_SORT_KEYS))
    return f"{prefix}c:{digest.hexdigest()}"


@dataclass(frozen=True, slots=True)
class CachedAnswer:
    completion: Completion
    backend: str  # the backend that produced it


def encode(answer: CachedAnswer) -> bytes:
    c = answer.completion
    return orjson.dumps(
        {
            "backend": answer.backend,
            "id": c.id,
            "model": c.model,
            "content": c.content,
            "finish_reason": c.finish_reason,
            "usage": [c.usage.prompt_tokens, c.usage.completion_tokens, c.usage.cached_tokens],
            "tool_calls": list(c.tool_calls),
            "created": c.created,
            "message_extras": c.message_extras,
        }
    )


def decode(raw: bytes) -> CachedAnswer | None:
    """The stored answer, or None for an entry this version cannot read."""
    try:
        data: dict[str, Any] = orjson.loads(raw)
        prompt, completion, cached = data["usage"]
        return CachedAnswer(
            completion=Completion(
                id=str(data["id"]),
                model=str(data["model"]),
                content=data["content"],
                finish_reason=data["finish_reason"],
                usage=Usage(int(prompt), int(completion), int(cached)),
                tool_calls=tuple(data["tool_calls"]),
                created=int(data["created"]),
                message_extras=dict(data["message_extras"]),
            ),
            backend=str(data["backend"]),
        )
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None
