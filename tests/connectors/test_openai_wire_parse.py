"""connectors.openai_wire.parse, directly: OpenAI chat JSON and chunks -> our values, and
every shape that is not OpenAI's -> MalformedReply (never a crash, never a silent zero)."""

from __future__ import annotations

import math
from typing import Any

import pytest

from connectors.openai_wire.parse import MalformedReply, parse_chunk, parse_completion
from gateway.core.types import Usage


def completion(**message: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "model": "m",
        "created": 1_700_000_000,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "billing", **message},
                "finish_reason": "stop",
                "logprobs": {
                    "content": [
                        {
                            "token": "bill",
                            "logprob": -0.1,
                            "top_logprobs": [
                                {"token": "bill", "logprob": -0.1},
                                {"token": "ship", "logprob": -2.5},
                            ],
                        },
                        {"token": "ing", "logprob": -0.01, "top_logprobs": []},
                    ]
                },
            }
        ],
        "usage": {
            "prompt_tokens": 12,
            "completion_tokens": 2,
            "prompt_tokens_details": {"cached_tokens": 8},
        },
    }


def test_a_completion_with_logprobs_usage_and_extras() -> None:
    c = parse_completion(completion(refusal="no"))
    assert (c.id, c.model, c.content, c.finish_reason) == ("chatcmpl-1", "m", "billing", "stop")
    assert c.usage == Usage(12, 2, 8)
    assert c.logprobs is not None and [t.token for t in c.logprobs] == ["bill", "ing"]
    assert c.logprobs[0].top == (("bill", -0.1), ("ship", -2.5))
    assert c.message_extras == {"refusal": "no"}
    assert c.created == 1_700_000_000


def test_tool_calls_are_kept_as_sent() -> None:
    calls = [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]
    c = parse_completion(completion(content=None, tool_calls=calls))
    assert c.content is None and list(c.tool_calls) == calls


def test_chunks_role_content_tools_and_usage_only() -> None:
    first = parse_chunk({"id": "x", "model": "m", "choices": [{"delta": {"role": "assistant"}}]})
    assert first.role == "assistant" and first.content is None
    text = parse_chunk(
        {"id": "x", "choices": [{"delta": {"content": "hi"}, "finish_reason": None}]}
    )
    assert text.content == "hi"
    frag = [{"index": 0, "function": {"arguments": '{"a"'}}]
    tools = parse_chunk({"choices": [{"delta": {"tool_calls": frag}}]})
    assert list(tools.tool_calls) == frag
    usage = parse_chunk({"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 4}})
    assert usage.usage == Usage(3, 4, 0) and usage.content is None


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"choices": []},
        {"choices": "nope"},
        completion(content=42),
        completion(tool_calls="call"),
        {**completion(), "created": "yesterday"},
        {**completion(), "usage": {"prompt_tokens": -1}},
        {**completion(), "usage": {"prompt_tokens": 1.5}},
        {**completion(), "usage": {"completion_tokens": 1 << 40}},
    ],
)
def test_what_is_not_openais_shape_is_malformed(body: dict[str, Any]) -> None:
    with pytest.raises(MalformedReply):
        parse_completion(body)


@pytest.mark.parametrize("value", [math.nan, math.inf, "NaN"])
def test_a_non_finite_logprob_is_malformed_not_a_confidence(value: Any) -> None:
    body = completion()
    body["choices"][0]["logprobs"]["content"][0]["logprob"] = value
    with pytest.raises(MalformedReply):
        parse_completion(body)


@pytest.mark.parametrize(
    "chunk",
    [
        {"choices": [{"delta": {"content": ["a"]}}]},
        {"choices": [{"delta": {"role": 1}}]},
        {"choices": [{"delta": {}}], "usage": {"prompt_tokens": "many"}},
        {"choices": [None]},
    ],
)
def test_malformed_chunks(chunk: dict[str, Any]) -> None:
    with pytest.raises(MalformedReply):
        parse_chunk(chunk)
