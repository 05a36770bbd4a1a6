"""The fake upstreams behave as tests/fakes/upstream.py documents, seen through real clients."""

from __future__ import annotations

import asyncio
import json
import os
import time
from typing import Any

import httpx
import openai
import pytest

from tests.support.fakes.fixtures import *  # noqa: F403  (pytest finds the fixtures by name)
from tests.support.fakes.upstream import (
    FakeUpstream,
    cut_stream,
    hang,
    malformed_chunk,
    no_done,
    ok,
    persistent,
    reset,
    slow_first_token,
    status,
)

MESSAGES = [{"role": "user", "content": "where is order A-1234 please"}]  # 5 words
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "lookup_order",
            "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}}},
        },
    }
]


def client(fake: FakeUpstream, **kwargs: Any) -> openai.OpenAI:
    return openai.OpenAI(base_url=fake.openai_base, api_key="x", max_retries=0, **kwargs)


def sse_lines(
    fake: FakeUpstream, body: dict[str, Any], path: str = "/v1/chat/completions"
) -> list[str]:
    with httpx.stream("POST", fake.url + path, json=body) as resp:
        assert resp.status_code == 200
        return [line for line in resp.iter_lines() if line]


# --- OpenAI dialect ---------------------------------------------------------------------------


def test_non_stream_reply_usage_and_request_recorded(fake_openai: FakeUpstream) -> None:
    fake_openai.set_reply("Order A-1234 shipped")
    fmt = {"type": "json_object"}
    resp = client(fake_openai).chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, tools=TOOLS, response_format=fmt, seed=7
    )
    assert resp.choices[0].message.content == "Order A-1234 shipped"
    assert resp.choices[0].finish_reason == "stop"
    assert resp.usage is not None
    assert (resp.usage.prompt_tokens, resp.usage.completion_tokens) == (5, 3)
    (req,) = fake_openai.requests
    assert req.path == "/v1/chat/completions"
    assert req.headers["authorization"] == "Bearer x"
    assert (req.body["tools"], req.body["response_format"], req.body["seed"]) == (TOOLS, fmt, 7)
    assert fake_openai.usage_totals() == {
        "prompt_tokens": 5,
        "completion_tokens": 3,
        "total_tokens": 8,
    }


def test_stream_with_usage_chunk(fake_openai: FakeUpstream) -> None:
    fake_openai.set_reply("one two three", prompt_tokens=11, completion_tokens=13)
    stream = client(fake_openai).chat.completions.create(
        model="m", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "one two three"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.prompt_tokens == 11 and chunks[-1].usage.completion_tokens == 13
    assert sse_lines(fake_openai, {"model": "m", "messages": MESSAGES, "stream": True})[-1] == (
        "data: [DONE]"
    )


def test_tool_calls_non_stream_and_stream(fake_openai: FakeUpstream) -> None:
    fake_openai.set_reply(
        "", tool_calls=[{"name": "lookup_order", "arguments": {"order_id": "A-1"}}]
    )
    c = client(fake_openai)
    resp = c.chat.completions.create(model="m", messages=MESSAGES, tools=TOOLS)
    choice = resp.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    assert choice.message.tool_calls is not None
    call = choice.message.tool_calls[0]
    assert call.function.name == "lookup_order"  # type: ignore[union-attr]
    assert json.loads(call.function.arguments) == {"order_id": "A-1"}  # type: ignore[union-attr]

    args, finish = "", None
    for chunk in c.chat.completions.create(model="m", messages=MESSAGES, tools=TOOLS, stream=True):
        delta = chunk.choices[0].delta
        for tc in delta.tool_calls or []:
            args += (tc.function and tc.function.arguments) or ""
        finish = chunk.choices[0].finish_reason or finish
    assert json.loads(args) == {"order_id": "A-1"} and finish == "tool_calls"


def test_models_endpoint_consumes_no_script(fake_openai: FakeUpstream) -> None:
    fake_openai.script([status(500)])
    ids = [m.id for m in client(fake_openai).models.list()]
    assert "gpt-4o-mini" in ids
    with pytest.raises(openai.InternalServerError):
        client(fake_openai).chat.completions.create(model="m", messages=MESSAGES)


# --- dLLM logprobs ----------------------------------------------------------------------------


def test_logprobs_shape_and_scripted_values(fake_dllm: FakeUpstream) -> None:
    fake_dllm.set_reply(tokens=['{"order_id": ', '"A-1234"', "}"], logprobs=[-0.01, -2.5, -0.02])
    resp = client(fake_dllm).chat.completions.create(
        model="fake-dllm", messages=MESSAGES, logprobs=True, top_logprobs=3
    )
    assert resp.choices[0].message.content == '{"order_id": "A-1234"}'
    assert resp.choices[0].logprobs is not None
    content = resp.choices[0].logprobs.content
    assert content is not None
    assert [t.token for t in content] == ['{"order_id": ', '"A-1234"', "}"]
    assert [t.logprob for t in content] == [-0.01, -2.5, -0.02]
    assert content[1].bytes == list(b'"A-1234"')
    assert all(len(t.top_logprobs) == 3 for t in content)
    # a low-probability token is not the top alternative, like a real sampler's output
    assert max(a.logprob for a in content[1].top_logprobs) > -2.5
    assert content[0].top_logprobs[0].token == '{"order_id": '

    plain = client(fake_dllm).chat.completions.create(model="fake-dllm", messages=MESSAGES)
    assert plain.choices[0].logprobs is None


def test_logprobs_per_stream_chunk(fake_dllm: FakeUpstream) -> None:
    fake_dllm.set_reply("refund approved", logprobs=-1.5)
    stream = client(fake_dllm).chat.completions.create(
        model="fake-dllm", messages=MESSAGES, logprobs=True, stream=True
    )
    got = [
        (lp.token, lp.logprob)
        for chunk in stream
        if chunk.choices and chunk.choices[0].logprobs
        for lp in chunk.choices[0].logprobs.content or []
    ]
    assert got == [("refund", -1.5), (" approved", -1.5)]


def test_logprobs_length_must_match_tokens() -> None:
    with pytest.raises(ValueError, match="2 values for 3 tokens"):
        ok("a b c", logprobs=[-1.0, -1.0])


# --- faults -----------------------------------------------------------------------------------


def test_429_has_retry_after_and_openai_error_body(fake_openai: FakeUpstream) -> None:
    fake_openai.script([status(429, retry_after=2)])
    resp = httpx.post(fake_openai.openai_base + "/chat/completions", json={"messages": MESSAGES})
    assert resp.status_code == 429
    assert resp.headers["retry-after"] == "2"
    assert resp.json()["error"]["code"] == "rate_limit_exceeded"
    # the script is consumed: the next request gets the default reply
    assert client(fake_openai).chat.completions.create(model="m", messages=MESSAGES).id


def test_scripted_400_body_passes_through(fake_openai: FakeUpstream) -> None:
    err = {
        "error": {
            "message": "context length exceeded",
            "type": "invalid_request_error",
            "code": "context_length_exceeded",
        }
    }
    fake_openai.script([status(400, body=err)])
    with pytest.raises(openai.BadRequestError) as info:
        client(fake_openai).chat.completions.create(model="m", messages=MESSAGES)
    assert info.value.code == "context_length_exceeded"
    assert fake_openai.usage_totals()["total_tokens"] == 0


def test_persistent_repeats_until_reset_script(fake_openai: FakeUpstream) -> None:
    fake_openai.script([persistent(status(503)), ok("never reached")])
    url = fake_openai.openai_base + "/chat/completions"
    assert [httpx.post(url, json={"messages": []}).status_code for _ in range(3)] == [503] * 3
    fake_openai.reset_script()
    assert httpx.post(url, json={"messages": []}).json()["choices"][0]["message"]["content"] == "ok"
    assert len(fake_openai.requests) == 4


def test_fifo_order(fake_openai: FakeUpstream) -> None:
    fake_openai.script([ok("first"), status(500), ok("third")])
    url = fake_openai.openai_base + "/chat/completions"
    got = [httpx.post(url, json={"messages": []}) for _ in range(4)]
    assert [r.status_code for r in got] == [200, 500, 200, 200]
    contents = [r.json()["choices"][0]["message"]["content"] for r in got if r.status_code == 200]
    assert contents == ["first", "third", "ok"]


def test_reset_closes_without_response(fake_openai: FakeUpstream) -> None:
    fake_openai.script([reset()])
    with pytest.raises(openai.APIConnectionError):
        client(fake_openai).chat.completions.create(model="m", messages=MESSAGES)
    assert len(fake_openai.requests) == 1  # recorded although never answered


def test_hang_times_out_the_client(fake_openai: FakeUpstream) -> None:
    fake_openai.script([hang(5)])
    with pytest.raises(openai.APITimeoutError):
        client(fake_openai, timeout=0.3).chat.completions.create(model="m", messages=MESSAGES)


def test_slow_first_token_sends_headers_first(fake_openai: FakeUpstream) -> None:
    fake_openai.script([slow_first_token(1.0)])
    body = {"model": "m", "messages": MESSAGES, "stream": True}
    start = time.monotonic()
    with httpx.stream("POST", fake_openai.openai_base + "/chat/completions", json=body) as resp:
        headers_at = time.monotonic() - start
        lines = [line for line in resp.iter_lines() if line]
        first_chunk_at = time.monotonic() - start
    assert headers_at < 0.9 and first_chunk_at >= 1.0
    assert lines[-1] == "data: [DONE]"


def test_cut_stream_raises_in_client_and_counts_sent_tokens(fake_openai: FakeUpstream) -> None:
    fake_openai.set_reply("a b c d e f")
    fake_openai.script([cut_stream(after_chunks=3)])  # role chunk + 2 content tokens
    stream = client(fake_openai).chat.completions.create(model="m", messages=MESSAGES, stream=True)
    received: list[str] = []
    with pytest.raises(openai.APIConnectionError):  # wraps "incomplete chunked read"
        for chunk in stream:
            received.append(chunk.choices[0].delta.content or "")
    assert "".join(received) == "a b"
    assert fake_openai.usage_totals() == {
        "prompt_tokens": 5,
        "completion_tokens": 2,
        "total_tokens": 7,
    }


def test_cut_stream_past_the_end_still_drops_done(fake_openai: FakeUpstream) -> None:
    fake_openai.script([cut_stream(after_chunks=99)])
    body = {"model": "m", "messages": MESSAGES, "stream": True}
    with (
        httpx.stream("POST", fake_openai.openai_base + "/chat/completions", json=body) as resp,
        pytest.raises(httpx.RemoteProtocolError),
    ):
        for _ in resp.iter_lines():
            pass


def test_cut_non_stream_body(fake_openai: FakeUpstream) -> None:
    fake_openai.script([cut_stream(after_chunks=0)])
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.post(fake_openai.openai_base + "/chat/completions", json={"messages": MESSAGES})


def test_malformed_chunk_breaks_strict_parsers(fake_openai: FakeUpstream) -> None:
    fake_openai.script([malformed_chunk(after_chunks=2)])
    body = {"model": "m", "messages": MESSAGES, "stream": True}
    lines = sse_lines(fake_openai, body)
    assert lines[2] == "data: {not json" and lines[-1] == "data: [DONE]"
    fake_openai.script([malformed_chunk(after_chunks=2)])
    with pytest.raises(json.JSONDecodeError):
        list(client(fake_openai).chat.completions.create(model="m", messages=MESSAGES, stream=True))


def test_no_done_ends_after_finish_reason(fake_openai: FakeUpstream) -> None:
    fake_openai.script([no_done()])
    body = {"model": "m", "messages": MESSAGES, "stream": True}
    lines = sse_lines(fake_openai, body)
    assert "data: [DONE]" not in lines
    assert json.loads(lines[-1][len("data: ") :])["choices"][0]["finish_reason"] == "stop"


def test_many_concurrent_connections_with_latency(fake_openai: FakeUpstream) -> None:
    fake_openai.latency_s = 0.5

    async def main() -> list[int]:
        async with httpx.AsyncClient(limits=httpx.Limits(max_connections=200)) as http:
            url = fake_openai.openai_base + "/chat/completions"
            body = {"messages": MESSAGES}
            resps = await asyncio.gather(*(http.post(url, json=body) for _ in range(50)))
            return [r.status_code for r in resps]

    start = time.monotonic()
    assert asyncio.run(main()) == [200] * 50
    assert time.monotonic() - start < 10  # served concurrently, not 50 x 0.5 s
    assert len(fake_openai.requests) == 50


def test_fixture_starts_clean(fake_openai: FakeUpstream) -> None:
    assert fake_openai.requests == [] and fake_openai.latency_s == 0
    assert fake_openai.usage_totals()["total_tokens"] == 0


# --- Anthropic dialect ------------------------------------------------------------------------


def test_anthropic_event_sequence(fake_anthropic: FakeUpstream) -> None:
    fake_anthropic.set_reply("hi there", tool_calls=[{"name": "t", "arguments": {"x": 1}}])
    body = {"model": "claude-x", "max_tokens": 10, "messages": MESSAGES, "stream": True}
    lines = sse_lines(fake_anthropic, body, path="/v1/messages")
    events = [line.removeprefix("event: ") for line in lines if line.startswith("event: ")]
    assert events == [
        "message_start",
        "content_block_start",
        "ping",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    data = [json.loads(line[len("data: ") :]) for line in lines if line.startswith("data: ")]
    assert data[7]["delta"]["type"] == "input_json_delta"
    assert data[10]["delta"]["stop_reason"] == "tool_use"
    assert data[10]["usage"]["output_tokens"] == 4

    resp = httpx.post(fake_anthropic.url + "/v1/messages", json=dict(body, stream=False)).json()
    assert [b["type"] for b in resp["content"]] == ["text", "tool_use"]
    assert resp["content"][1]["input"] == {"x": 1}
    assert resp["usage"]["input_tokens"] == 5


def test_anthropic_error_shape(fake_anthropic: FakeUpstream) -> None:
    fake_anthropic.script([status(429, retry_after="3")])
    resp = httpx.post(fake_anthropic.url + "/v1/messages", json={"messages": MESSAGES})
    assert resp.status_code == 429 and resp.headers["retry-after"] == "3"
    assert resp.json()["error"]["type"] == "rate_limit_error"


# --- litellm against the fakes ------------------------------------------------------------------


@pytest.fixture(scope="module")
def litellm_module() -> Any:
    os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    import litellm  # noqa: TID251  (tests check the fakes against the real vendor library)

    litellm.suppress_debug_info = True
    return litellm


def test_litellm_anthropic_provider(fake_anthropic: FakeUpstream, litellm_module: Any) -> None:
    fake_anthropic.set_reply("Your order shipped")
    kwargs = {
        "model": "anthropic/claude-3-5-haiku-20241022",
        "api_base": fake_anthropic.url,
        "api_key": "x",
        "messages": MESSAGES,
        "max_tokens": 50,
    }

    async def main() -> tuple[Any, str, Any, Any]:
        resp = await litellm_module.acompletion(**kwargs)
        stream = await litellm_module.acompletion(
            **kwargs, stream=True, stream_options={"include_usage": True}
        )
        text, usage = "", None
        async for chunk in stream:
            if chunk.choices:
                text += chunk.choices[0].delta.content or ""
            usage = getattr(chunk, "usage", None) or usage
        fake_anthropic.set_reply("", tool_calls=[{"name": "lookup_order", "arguments": {"a": 1}}])
        tools = await litellm_module.acompletion(**kwargs, tools=TOOLS)
        fake_anthropic.script([cut_stream(after_chunks=4)])
        with pytest.raises(litellm_module.exceptions.MidStreamFallbackError):
            async for _ in await litellm_module.acompletion(**kwargs, stream=True):
                pass
        return resp, text, usage, tools

    resp, text, usage, tools = asyncio.run(main())
    assert resp.choices[0].message.content == "Your order shipped"
    assert (resp.usage.prompt_tokens, resp.usage.completion_tokens) == (5, 3)
    assert text == "Your order shipped"
    assert (usage.prompt_tokens, usage.completion_tokens) == (5, 3)
    assert tools.choices[0].finish_reason == "tool_calls"
    assert json.loads(tools.choices[0].message.tool_calls[0].function.arguments) == {"a": 1}
    req = fake_anthropic.requests[0]
    assert req.path == "/v1/messages" and req.headers["x-api-key"] == "x"
    assert fake_anthropic.usage_totals()["prompt_tokens"] == 4 * 5  # the cut stream counts too


def test_litellm_openai_provider(fake_openai: FakeUpstream, litellm_module: Any) -> None:
    fake_openai.set_reply("Your order shipped")
    kwargs = {
        "model": "openai/gpt-4o-mini",
        "api_base": fake_openai.openai_base,
        "api_key": "x",
        "messages": MESSAGES,
    }

    async def main() -> tuple[Any, str]:
        resp = await litellm_module.acompletion(**kwargs, logprobs=True, top_logprobs=2)
        stream = await litellm_module.acompletion(**kwargs, stream=True)
        text = ""
        async for chunk in stream:
            text += chunk.choices[0].delta.content or ""
        fake_openai.script([cut_stream(after_chunks=3)])
        with pytest.raises(litellm_module.exceptions.MidStreamFallbackError):
            async for _ in await litellm_module.acompletion(**kwargs, stream=True, max_retries=0):
                pass
        return resp, text

    resp, text = asyncio.run(main())
    assert resp.choices[0].message.content == text == "Your order shipped"
    assert resp.usage.prompt_tokens == 5
    assert [t.token for t in resp.choices[0].logprobs.content] == ["Your", " order", " shipped"]
    assert fake_openai.requests[0].path == "/v1/chat/completions"
    assert fake_openai.requests[0].body["model"] == "gpt-4o-mini"
