"""gateway.ingress.anthropic_parse: a Messages body -> the internal request, directly."""

from __future__ import annotations

import json
from typing import Any

import pytest

from gateway.core.errors import BadRequest
from gateway.ingress.anthropic_parse import parse_messages


def body(**extra: Any) -> dict[str, Any]:
    return {
        "model": "auto",
        "max_tokens": 256,
        "messages": [{"role": "user", "content": "Where is my parcel?"}],
        **extra,
    }


def test_plain_text_maps_to_a_user_message_and_keeps_the_native_body() -> None:
    sent = body(system="You are a support agent.", temperature=0.2, stop_sequences=["\n\n"])
    request = parse_messages(sent)
    assert request.wire_messages() == [
        {"role": "system", "content": "You are a support agent."},
        {"role": "user", "content": "Where is my parcel?"},
    ]
    assert request.max_tokens == 256
    assert request.temperature == 0.2
    assert request.stop == ["\n\n"]
    native = request.native("anthropic")
    assert native is not None and native.body == sent
    assert request.native("openai") is None
    assert request.native_only == ()
    assert not request.prefill


def test_system_blocks_tools_and_tool_results_translate() -> None:
    tools = [
        {
            "name": "lookup_order",
            "description": "Find an order",
            "input_schema": {"type": "object", "properties": {"id": {"type": "string"}}},
        }
    ]
    request = parse_messages(
        body(
            system=[{"type": "text", "text": "Rule one."}, {"type": "text", "text": "Rule two."}],
            tools=tools,
            tool_choice={"type": "tool", "name": "lookup_order", "disable_parallel_tool_use": True},
            messages=[
                {"role": "user", "content": "Status of A-7?"},
                {
                    "role": "assistant",
                    "content": [
                        {"type": "text", "text": "Let me check."},
                        {
                            "type": "tool_use",
                            "id": "tu_1",
                            "name": "lookup_order",
                            "input": {"id": "A-7"},
                        },
                    ],
                },
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "tool_result",
                            "tool_use_id": "tu_1",
                            "content": [{"type": "text", "text": "shipped"}],
                        },
                        {
                            "type": "tool_result",
                            "tool_use_id": "tu_2",
                            "content": "gone",
                            "is_error": True,
                        },
                        {"type": "text", "text": "Thanks, and?"},
                    ],
                },
            ],
        )
    )
    messages = request.wire_messages()
    assert messages[0] == {"role": "system", "content": "Rule one.\n\nRule two."}
    call = messages[2]["tool_calls"][0]
    assert messages[2]["content"] == "Let me check."
    assert call["id"] == "tu_1" and call["function"]["name"] == "lookup_order"
    assert json.loads(call["function"]["arguments"]) == {"id": "A-7"}
    assert messages[3] == {"role": "tool", "tool_call_id": "tu_1", "content": "shipped"}
    assert messages[4] == {"role": "tool", "tool_call_id": "tu_2", "content": "Error: gone"}
    assert messages[5] == {"role": "user", "content": "Thanks, and?"}
    assert request.tools == [
        {
            "type": "function",
            "function": {
                "name": "lookup_order",
                "parameters": tools[0]["input_schema"],
                "description": "Find an order",
            },
        }
    ]
    assert request.tool_choice == {"type": "function", "function": {"name": "lookup_order"}}
    assert request.parallel_tool_calls is False


def test_images_become_image_url_parts() -> None:
    request = parse_messages(
        body(
            messages=[
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "image",
                            "source": {
                                "type": "base64",
                                "media_type": "image/png",
                                "data": "iVBORw0KGgo=",
                            },
                        },
                        {
                            "type": "image",
                            "source": {"type": "url", "url": "https://example.com/a.png"},
                        },
                        {"type": "text", "text": "What is broken here?"},
                    ],
                }
            ]
        )
    )
    parts = request.wire_messages()[0]["content"]
    assert parts[0] == {
        "type": "image_url",
        "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="},
    }
    assert parts[1]["image_url"]["url"] == "https://example.com/a.png"
    assert parts[2] == {"type": "text", "text": "What is broken here?"}


def test_what_has_no_openai_form_is_named_never_dropped() -> None:
    sent = body(
        system=[{"type": "text", "text": "Long policy.", "cache_control": {"type": "ephemeral"}}],
        thinking={"type": "enabled", "budget_tokens": 1024},
        messages=[
            {"role": "user", "content": "Hi"},
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "hmm", "signature": "sig"},
                    {"type": "text", "text": "Hello"},
                ],
            },
            {
                "role": "user",
                "content": [
                    {
                        "type": "document",
                        "source": {"type": "text", "media_type": "text/plain", "data": "terms"},
                    }
                ],
            },
        ],
    )
    request = parse_messages(sent)
    needs = request.native_only
    assert "thinking" in needs
    assert "system.0: cache_control" in needs
    assert "messages.1.content.0: thinking block" in needs
    assert "messages.2.content.0: document block" in needs
    native = request.native("anthropic")
    assert native is not None and native.body == sent  # the caller's body, whole


def test_metadata_hints_route_and_user_id_is_the_end_user() -> None:
    sent = body(metadata={"user_id": "cust-9", "step_kind": "classify", "latency_budget_ms": 300})
    request = parse_messages(sent)
    assert request.metadata == {"step_kind": "classify", "latency_budget_ms": "300"}
    assert request.user == "cust-9"
    native = request.native("anthropic")
    assert native is not None
    # Anthropic itself takes only user_id: Stepgate's own keys are not forwarded to it.
    assert native.body["metadata"] == {"user_id": "cust-9"}


def test_final_assistant_turn_is_a_prefill() -> None:
    request = parse_messages(
        body(
            messages=[
                {"role": "user", "content": "JSON please"},
                {"role": "assistant", "content": "{"},
            ]
        )
    )
    assert request.prefill
    follow = request.continued('{"a"', prefill=True, sent_tokens=2)
    native = follow.native("anthropic")
    assert native is not None
    assert native.body["messages"][-1] == {"role": "assistant", "content": '{"a"'}


@pytest.mark.parametrize(
    ("sent", "param", "words"),
    [
        ([], "body", "JSON object"),
        (
            {"model": "auto", "messages": [{"role": "user", "content": "x"}]},
            "max_tokens",
            "required",
        ),
        (body(max_tokens=0), "max_tokens", "whole number"),
        (body(messages=[]), "messages", "non-empty"),
        (body(messages=[{"role": "system", "content": "x"}]), "messages.0.role", "top-level"),
        (
            body(messages=[{"role": "user", "content": [{"type": "video"}]}]),
            "messages.0.content.0",
            "video",
        ),
        (
            body(
                messages=[
                    {
                        "role": "user",
                        "content": [{"type": "tool_use", "id": "a", "name": "b", "input": {}}],
                    }
                ]
            ),
            "messages.0.content.0",
            "tool_use",
        ),
        (body(temperature=1.5), "temperature", "0 to 1"),
        (body(tools=[{"name": "x"}]), "tools.0", "input_schema"),
        (body(tool_choice={"type": "sometimes"}), "tool_choice", "auto"),
        (body(mcp_servers=[{"type": "url", "url": "http://10.0.0.1/"}]), "mcp_servers", "policy"),
        (body(api_base="http://evil"), "api_base", "unknown parameter"),
        (
            body(
                messages=[
                    {
                        "role": "user",
                        "content": [
                            {
                                "type": "image",
                                "source": {"type": "url", "url": "http://169.254.169.254/"},
                            }
                        ],
                    }
                ]
            ),
            "messages.0.content.0",
            "https",
        ),
        (body(stop_sequences=[""]), "stop_sequences", "non-empty"),
    ],
)
def test_bad_bodies_name_the_field(sent: Any, param: str, words: str) -> None:
    with pytest.raises(BadRequest) as caught:
        parse_messages(sent)
    assert caught.value.param == (None if param == "body" else param)
    assert words in caught.value.message


def test_deep_nesting_is_refused_without_recursion_trouble() -> None:
    deep: Any = "x"
    for _ in range(200):
        deep = {"a": deep}
    with pytest.raises(BadRequest) as caught:
        parse_messages(body(metadata=None, tools=[{"name": "t", "input_schema": deep}]))
    assert caught.value.code == "too_deep"
