"""connectors.litellm_ar.translate, directly: what goes to litellm.acompletion (only allowed
chat parameters; the policy's URL, key and retries set last) and litellm's objects -> ours."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from connectors.litellm_ar.translate import call_kwargs, parse_chunk, parse_response
from gateway.core.types import ChatRequest, Usage


def request(**extra: Any) -> ChatRequest:
    return ChatRequest.from_wire(
        {"model": "auto", "messages": [{"role": "user", "content": "hi"}], **extra}
    )


def test_call_kwargs_carry_the_callers_params_and_the_policys_connection() -> None:
    kwargs = call_kwargs(
        model="openai/gpt-4.1-mini",
        request=request(temperature=0.3, seed=7, metadata={"step_kind": "classify"}),
        api_key="sk-policy",
        api_base="http://127.0.0.1:9",
        timeout_s=12.0,
        stream=True,
    )
    assert kwargs["model"] == "openai/gpt-4.1-mini"
    assert kwargs["messages"] == [{"role": "user", "content": "hi"}]
    assert (kwargs["temperature"], kwargs["seed"]) == (0.3, 7)
    assert "metadata" not in kwargs  # litellm's own logging payload, not the caller's
    assert (kwargs["api_key"], kwargs["api_base"], kwargs["timeout"]) == (
        "sk-policy",
        "http://127.0.0.1:9",
        12.0,
    )
    assert kwargs["num_retries"] == 0 and kwargs["max_retries"] == 0 and kwargs["drop_params"]
    assert kwargs["stream"] is True and kwargs["stream_options"] == {"include_usage": True}


def test_without_a_policy_key_litellm_keeps_its_provider_default() -> None:
    kwargs = call_kwargs(
        model="anthropic/claude-haiku-4-5",
        request=request(),
        api_key=None,
        api_base=None,
        timeout_s=5.0,
        stream=False,
    )
    assert "api_key" not in kwargs and "api_base" not in kwargs and "stream" not in kwargs


def _ns(**kw: Any) -> SimpleNamespace:
    return SimpleNamespace(**kw)


def test_a_litellm_response_object_becomes_a_completion() -> None:
    call = _ns(
        model_dump=lambda exclude_none: {
            "id": "c1",
            "type": "function",
            "function": {"name": "f", "arguments": "{}"},
        }
    )
    resp = _ns(
        id="r1",
        model="gpt-4.1-mini",
        created=1_700_000_000,
        choices=[
            _ns(
                message=_ns(content="ok", tool_calls=[call]),
                finish_reason="tool_calls",
                logprobs={"content": [{"token": "ok", "logprob": -0.2, "top_logprobs": []}]},
            )
        ],
        usage=_ns(prompt_tokens=9, completion_tokens=1, prompt_tokens_details=_ns(cached_tokens=4)),
    )
    c = parse_response(resp)
    assert (c.id, c.model, c.content, c.finish_reason) == ("r1", "gpt-4.1-mini", "ok", "tool_calls")
    assert c.usage == Usage(9, 1, 4)
    assert c.tool_calls[0]["function"]["name"] == "f"
    assert c.logprobs is not None and c.logprobs[0].logprob == -0.2


def test_litellm_chunks_with_and_without_choices() -> None:
    chunk = parse_chunk(
        {"id": "s", "model": "m", "choices": [{"delta": {"content": "he"}, "finish_reason": None}]}
    )
    assert chunk.content == "he" and chunk.usage is None
    tail = parse_chunk(
        {"id": "s", "choices": [], "usage": {"prompt_tokens": 2, "completion_tokens": 3}}
    )
    assert tail.usage == Usage(2, 3, 0) and tail.content is None
