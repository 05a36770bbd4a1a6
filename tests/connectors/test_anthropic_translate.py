"""connectors/anthropic/translate.py: OpenAI-shaped requests to Messages bodies, replies and
stream events back, with no I/O. The connector's HTTP side runs in test_anthropic_connector.py."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from connectors.anthropic import translate
from connectors.anthropic.config import AnthropicBackend
from gateway.core.errors import ProviderRejected
from gateway.core.types import ChatRequest, NativeBody

BACKEND = AnthropicBackend(type="anthropic", model="claude-3-5-haiku-20241022")
TOOL = {
    "type": "function",
    "function": {
        "name": "lookup_order",
        "description": "Find an order by id",
        "parameters": {
            "type": "object",
            "properties": {"order_id": {"type": "string"}},
            "required": ["order_id"],
        },
    },
}


def body_for(wire: dict[str, Any], *, stream: bool = False) -> dict[str, Any]:
    wire = {"model": "auto", **wire}
    return translate.request_body(BACKEND, ChatRequest.from_wire(wire), stream=stream)


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


# --- requests -----------------------------------------------------------------------------


def test_system_and_developer_messages_become_the_system_string() -> None:
    rules, tone = "You are a support agent.", "Answer in one sentence."
    body = body_for(
        {
            "messages": [
                {"role": "system", "content": rules},
                {"role": "developer", "content": [{"type": "text", "text": tone}]},
                user("Where is order 1234?"),
            ]
        }
    )
    assert body["system"] == f"{rules}\n\n{tone}"
    assert body["messages"] == [user("Where is order 1234?")]
    assert body["model"] == BACKEND.model
    assert body["max_tokens"] == translate.DEFAULT_MAX_TOKENS
    assert body["stream"] is False


def test_consecutive_same_role_turns_merge_into_blocks() -> None:
    body = body_for(
        {"messages": [user("first"), user("second"), {"role": "assistant", "content": "ok"}]}
    )
    assert body["messages"] == [
        {
            "role": "user",
            "content": [{"type": "text", "text": "first"}, {"type": "text", "text": "second"}],
        },
        {"role": "assistant", "content": "ok"},
    ]


def test_image_parts_inline_and_by_url() -> None:
    data = "iVBORw0KGgoAAAANSUhEUgAAAAE="
    url = "https://example.com/parcel.png"
    body = body_for(
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "Is this parcel damaged?"},
                        {
                            "type": "image_url",
                            "image_url": {"url": f"data:image/png;base64,{data}"},
                        },
                        {"type": "image_url", "image_url": url},
                    ],
                }
            ]
        }
    )
    text, inline, remote = body["messages"][0]["content"]
    assert text == {"type": "text", "text": "Is this parcel damaged?"}
    assert inline["source"] == {"type": "base64", "media_type": "image/png", "data": data}
    assert remote["source"] == {"type": "url", "url": url}


def test_a_pdf_file_part_is_a_document_and_audio_is_refused() -> None:
    pdf = "JVBERi0xLjQK"
    body = body_for(
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "file",
                            "file": {"file_data": f"data:application/pdf;base64,{pdf}"},
                        }
                    ],
                }
            ]
        }
    )
    assert body["messages"][0]["content"][0] == {
        "type": "document",
        "source": {"type": "base64", "media_type": "application/pdf", "data": pdf},
    }
    audio = {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}
    with pytest.raises(ProviderRejected, match=r"messages\[0\]\.content\[0\]"):
        body_for({"messages": [{"role": "user", "content": [audio]}]})


def test_tool_calls_and_results_round_trip() -> None:
    arguments = {"order_id": "1234", "verbose": True}
    messages = [
        user("Where is order 1234?"),
        {
            "role": "assistant",
            "content": "Let me look.",
            "tool_calls": [
                {
                    "id": "call_a",
                    "type": "function",
                    "function": {"name": "lookup_order", "arguments": json.dumps(arguments)},
                },
                {
                    "id": "call_b",
                    "type": "function",
                    "function": {"name": "lookup_order", "arguments": ""},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "call_a", "content": "shipped"},
        {"role": "tool", "tool_call_id": "call_b", "content": [{"type": "text", "text": "late"}]},
        user("Thanks, and the refund?"),
    ]
    body = body_for({"messages": messages, "tools": [TOOL]})
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
    assert body["messages"][1]["content"] == [
        {"type": "text", "text": "Let me look."},
        {"type": "tool_use", "id": "call_a", "name": "lookup_order", "input": arguments},
        {"type": "tool_use", "id": "call_b", "name": "lookup_order", "input": {}},
    ]
    # Both results and the next user turn are one user message, results first.
    assert body["messages"][2]["content"] == [
        {"type": "tool_result", "tool_use_id": "call_a", "content": "shipped"},
        {
            "type": "tool_result",
            "tool_use_id": "call_b",
            "content": [{"type": "text", "text": "late"}],
        },
        {"type": "text", "text": "Thanks, and the refund?"},
    ]
    fn = TOOL["function"]
    assert body["tools"] == [
        {"name": fn["name"], "input_schema": fn["parameters"], "description": fn["description"]}
    ]


def test_tool_call_arguments_that_are_not_a_json_object_are_the_callers_400() -> None:
    for arguments in ('{"order_id": "12', "[1, 2]"):
        call = {"id": "c", "type": "function", "function": {"name": "f", "arguments": arguments}}
        with pytest.raises(ProviderRejected) as info:
            body_for(
                {"messages": [user("hi"), {"role": "assistant", "tool_calls": [call]}, user("?")]}
            )
        assert info.value.code == "invalid_tool_arguments"
        assert info.value.status == 400  # the caller's request, refused before any call
        assert "messages[1].tool_calls[0].function.arguments" in info.value.message


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("auto", {"type": "auto"}),
        ("required", {"type": "any"}),
        ("none", {"type": "none"}),
        (
            {"type": "function", "function": {"name": "lookup_order"}},
            {"type": "tool", "name": "lookup_order"},
        ),
    ],
)
def test_tool_choice(choice: Any, expected: dict[str, Any]) -> None:
    body = body_for({"messages": [user("hi")], "tools": [TOOL], "tool_choice": choice})
    assert body["tool_choice"] == expected


def test_parallel_tool_calls_false_disables_parallel_use() -> None:
    body = body_for({"messages": [user("hi")], "tools": [TOOL], "parallel_tool_calls": False})
    assert body["tool_choice"] == {"type": "auto", "disable_parallel_tool_use": True}
    body = body_for(
        {
            "messages": [user("hi")],
            "tools": [TOOL],
            "tool_choice": "required",
            "parallel_tool_calls": False,
        }
    )
    assert body["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}
    assert "tool_choice" not in body_for({"messages": [user("hi")], "tool_choice": "auto"})


def test_generation_parameters() -> None:
    body = body_for(
        {
            "messages": [user("hi")],
            "max_completion_tokens": 300,
            "temperature": 1.6,
            "stop": "\n\nHuman:",
            "user": "customer-42",
            "top_k": 40,
            "response_format": {"type": "json_object"},
            "logprobs": True,
            "seed": 7,
        }
    )
    assert body["max_tokens"] == 300
    assert body["temperature"] == 1.0  # OpenAI's range is 0..2, Anthropic's 0..1
    assert body["stop_sequences"] == ["\n\nHuman:"]
    assert body["metadata"] == {"user_id": "customer-42"}
    assert body["top_k"] == 40
    for absent in ("response_format", "logprobs", "seed", "stop", "user", "max_completion_tokens"):
        assert absent not in body
    capped = body_for({"messages": [user("hi")], "max_tokens": translate.MAX_TOKENS + 1})
    assert capped["max_tokens"] == translate.MAX_TOKENS
    assert body_for({"messages": [user("hi")], "top_p": 0.9})["top_p"] == 0.9


def test_a_continuation_ends_with_the_prefill_without_trailing_whitespace() -> None:
    request = ChatRequest.from_wire(
        {"model": "auto", "messages": [user("Count to five.")], "max_tokens": 50}
    )
    so_far = "One, two, three, "
    follow = request.continued(so_far, prefill=True, sent_tokens=6)
    body = translate.request_body(BACKEND, follow, stream=True)
    assert body["messages"][-1] == {"role": "assistant", "content": so_far.rstrip()}
    assert body["max_tokens"] == 50 - 6
    assert translate.continues_after_whitespace(follow)
    assert not translate.continues_after_whitespace(
        request.continued("One", prefill=True, sent_tokens=1)
    )


def test_a_native_body_is_sent_as_the_caller_wrote_it() -> None:
    native = {
        "model": "claude-whatever-the-caller-said",
        "max_tokens": 512,
        "system": [
            {"type": "text", "text": "Long policy text", "cache_control": {"type": "ephemeral"}}
        ],
        "messages": [{"role": "user", "content": "hi"}],
        "thinking": {"type": "enabled", "budget_tokens": 256},
    }
    original = copy.deepcopy(native)
    request = ChatRequest.from_wire({"model": "auto", "messages": [user("hi")]}).with_native(
        NativeBody("anthropic", native, ("system[0].cache_control: prompt caching",))
    )
    assert translate.request_body(BACKEND, request, stream=True) == {
        **original,
        "model": BACKEND.model,
        "stream": True,
    }
    # Another dialect's body is not Anthropic's to send.
    other = ChatRequest.from_wire({"model": "auto", "messages": [user("hi")]}).with_native(
        NativeBody("gemini", native)
    )
    assert translate.request_body(BACKEND, other, stream=False)["messages"] == [user("hi")]
    assert native == original


def test_a_native_continuation_trims_the_prefill_and_keeps_the_callers_dicts() -> None:
    native = {"max_tokens": 100, "messages": [{"role": "user", "content": "Count to five."}]}
    original = copy.deepcopy(native)
    request = ChatRequest.from_wire(
        {"model": "auto", "messages": [user("Count to five.")], "max_tokens": 100}
    ).with_native(NativeBody("anthropic", native))
    follow = request.continued("One, two,\n", prefill=True, sent_tokens=4)
    body = translate.request_body(BACKEND, follow, stream=True)
    assert body["messages"] == [
        *original["messages"],
        {"role": "assistant", "content": "One, two,"},
    ]
    assert body["max_tokens"] == 96
    assert translate.continues_after_whitespace(follow)
    assert native == original


# --- replies ------------------------------------------------------------------------------


def test_completion_from_a_reply_with_thinking_text_and_tool_use() -> None:
    arguments = {"order_id": "1234"}
    blocks = [
        {"type": "thinking", "thinking": "The user wants…", "signature": "sig"},
        {"type": "text", "text": "Looking that up"},
        {"type": "text", "text": " now."},
        {"type": "tool_use", "id": "toolu_1", "name": "lookup_order", "input": arguments},
    ]
    reply = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-3-5-haiku-20241022",
        "content": blocks,
        "stop_reason": "tool_use",
        "usage": {
            "input_tokens": 11,
            "output_tokens": 7,
            "cache_read_input_tokens": 1000,
            "cache_creation_input_tokens": 50,
        },
    }
    completion = translate.completion_from(reply, created=123)
    assert completion.content == "Looking that up now."
    assert completion.finish_reason == "tool_calls"
    assert len(completion.tool_calls) == 1
    call = completion.tool_calls[0]
    assert (call["id"], call["type"], call["function"]["name"]) == (
        "toolu_1",
        "function",
        "lookup_order",
    )
    assert json.loads(call["function"]["arguments"]) == arguments
    assert completion.usage.prompt_tokens == 11 + 1000 + 50
    assert completion.usage.cached_tokens == 1000
    assert completion.usage.completion_tokens == 7
    assert completion.blocks == tuple(blocks)
    assert (completion.id, completion.model, completion.created) == ("msg_1", reply["model"], 123)


@pytest.mark.parametrize(
    ("stop_reason", "finish"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
        (None, None),
    ],
)
def test_stop_reasons(stop_reason: str | None, finish: str | None) -> None:
    reply = {"content": [{"type": "text", "text": "x"}], "stop_reason": stop_reason}
    assert translate.completion_from(reply).finish_reason == finish


@pytest.mark.parametrize(
    "reply",
    [
        {"content": "text instead of blocks"},
        {"usage": {"input_tokens": 1}},
        {"content": [{"text": "no type"}]},
        {"content": [{"type": "text", "text": 5}]},
        {"content": [], "usage": {"input_tokens": -1}},
        {"content": [{"type": "tool_use", "name": "f", "input": {}}]},
        ["not", "an", "object"],
    ],
)
def test_a_malformed_reply_is_a_value_error(reply: Any) -> None:
    with pytest.raises(ValueError):
        translate.completion_from(reply)


# --- streams ------------------------------------------------------------------------------


def events(*, tool_arguments: list[str]) -> list[dict[str, Any]]:
    """A stream with a thinking block, text, and a tool call, as Anthropic sends it."""

    def delta(index: int, **d: Any) -> dict[str, Any]:
        return {"type": "content_block_delta", "index": index, "delta": d}

    def start(index: int, block: dict[str, Any]) -> dict[str, Any]:
        return {"type": "content_block_start", "index": index, "content_block": block}

    def stop(index: int) -> dict[str, Any]:
        return {"type": "content_block_stop", "index": index}

    out = [
        {
            "type": "message_start",
            "message": {
                "id": "msg_s",
                "model": "claude-3-5-haiku-20241022",
                "content": [],
                "usage": {"input_tokens": 20, "cache_read_input_tokens": 300, "output_tokens": 1},
            },
        },
        start(0, {"type": "thinking", "thinking": ""}),
        {"type": "ping"},
        delta(0, type="thinking_delta", thinking="Let me think"),
        delta(0, type="signature_delta", signature="sig=="),
        stop(0),
        start(1, {"type": "text", "text": ""}),
        delta(1, type="text_delta", text="Checking"),
        delta(1, type="text_delta", text=" now."),
        stop(1),
        start(2, {"type": "tool_use", "id": "toolu_9", "name": "lookup_order", "input": {}}),
        *(delta(2, type="input_json_delta", partial_json=f) for f in tool_arguments),
        stop(2),
        {
            "type": "message_delta",
            "delta": {"stop_reason": "tool_use", "stop_sequence": None},
            "usage": {"output_tokens": 42},
        },
        {"type": "message_stop"},
        {"type": "a_future_event_type"},
    ]
    return out


def test_stream_events_become_chunks() -> None:
    fragments = ['{"order_', 'id": "12', '34"}']
    stream = events(tool_arguments=["", *fragments])
    parser = translate.StreamParser(created=5)
    chunks = [c for e in stream for c in parser.feed(e)]
    assert chunks[0].role == "assistant" and (chunks[0].id, chunks[0].model) == (
        "msg_s",
        "claude-3-5-haiku-20241022",
    )
    assert all(c.id == "msg_s" and c.created == 5 for c in chunks)
    assert "".join(c.content or "" for c in chunks) == "Checking now."
    # The thinking block's events are relayed exactly, in order, and carry nothing else.
    relayed = [c for c in chunks if c.block_event is not None]
    thinking_events = [e for e in stream if e.get("index") == 0]
    assert [c.block_event for c in relayed] == thinking_events
    assert all(c.content is None and not c.tool_calls for c in relayed)
    # The tool call is the answer's first (index 0), though its block is the third.
    calls = [call for c in chunks for call in c.tool_calls]
    assert calls[0] == {
        "index": 0,
        "id": "toolu_9",
        "type": "function",
        "function": {"name": "lookup_order", "arguments": ""},
    }
    assert all(call["index"] == 0 for call in calls)
    assert "".join(call["function"]["arguments"] for call in calls) == "".join(fragments)
    finishes = [c.finish_reason for c in chunks if c.finish_reason]
    assert finishes == ["tool_calls"]
    usage = [c.usage for c in chunks if c.usage is not None]
    assert len(usage) == 1 and chunks[-1].usage == usage[0]
    assert (usage[0].prompt_tokens, usage[0].cached_tokens, usage[0].completion_tokens) == (
        320,
        300,
        42,
    )
    assert parser.finished and parser.stopped


def test_a_tool_called_without_arguments_streams_an_empty_object() -> None:
    parser = translate.StreamParser()
    chunks = [c for e in events(tool_arguments=[]) for c in parser.feed(e)]
    arguments = "".join(call["function"]["arguments"] for c in chunks for call in c.tool_calls)
    assert json.loads(arguments) == {}


def test_a_continuation_drops_the_answers_leading_whitespace() -> None:
    parser = translate.StreamParser(trim_leading=True)
    texts = ["  ", "\nfour,", " five"]
    out = []
    for text in texts:
        out += parser.feed(
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": text},
            }
        )
    assert "".join(c.content or "" for c in out) == "".join(texts).lstrip()


@pytest.mark.parametrize(
    ("kind", "status"),
    [
        ("overloaded_error", 529),
        ("rate_limit_error", 429),
        ("api_error", 500),
        ("invalid_request_error", 400),
    ],
)
def test_an_error_event_carries_the_status_of_its_type(kind: str, status: int) -> None:
    parser = translate.StreamParser()
    with pytest.raises(translate.StreamErrorEvent) as info:
        parser.feed({"type": "error", "error": {"type": kind, "message": "Overloaded"}})
    assert (info.value.status, info.value.message) == (status, "Overloaded")


@pytest.mark.parametrize(
    "event",
    [
        {
            "type": "content_block_delta",
            "index": 3,
            "delta": {"type": "input_json_delta", "partial_json": "{"},
        },
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": None}},
        {"type": "message_start"},
        {"no": "type"},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn"},
            "usage": {"output_tokens": "many"},
        },
    ],
)
def test_a_malformed_event_raises(event: dict[str, Any]) -> None:
    with pytest.raises((KeyError, TypeError, ValueError)):
        translate.StreamParser().feed(event)
