"""The native Anthropic connector against the fake Anthropic upstream (real HTTP on 127.0.0.1).

Asserted: what the upstream received (path, headers, body), the answers and usage it reported,
and how each fault maps onto our error tree. One test goes through the whole gateway app.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from connectors.anthropic.config import AnthropicBackend
from connectors.anthropic.connector import AnthropicConnector
from connectors.cost_map import CostMap
from gateway.connlimits import upstream_reserve
from gateway.core.deadline import Deadline
from gateway.core.errors import (
    ContextLengthExceeded,
    ProviderAuthError,
    ProviderRateLimited,
    ProviderRejected,
    ProviderTimeout,
    ProviderUnavailable,
)
from gateway.core.records import AttemptRecord
from gateway.core.types import ChatRequest, Chunk, Completion, NativeBody
from gateway.policy.loader import PolicyLoadError, load_policy, parse_policy
from gateway.simulate.costing import CostModel
from gateway.simulate.gputime import GpuTime
from gateway.telemetry.genai import provider_name
from tests.support.app_client import running_app
from tests.support.fakes.upstream import (
    FakeUpstream,
    cut_stream,
    echo_auth,
    hang,
    malformed_chunk,
    no_done,
    reset,
    slow_first_token,
    split_tokens,
    stall,
    status,
    stream_error_echo,
)
from tests.support.ledger_view import request_rows

KEY_ENV = "TEST_ANTHROPIC_NATIVE_KEY"
KEY = "sk-ant-api03-test-0123456789abcdefghijklmnopqrstuvwxyz"
MODEL = "claude-3-5-haiku-20241022"
QUESTION = "Why was order 1234 refunded twice?"


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv(KEY_ENV, KEY)
    yield


def connector(fake: FakeUpstream, **config: Any) -> AnthropicConnector:
    config.setdefault("timeouts", {"connect_s": 1, "request_s": 5})
    backend = AnthropicBackend(
        type="anthropic", model=MODEL, api_key_env=KEY_ENV, base_url=fake.url, **config
    )
    return AnthropicConnector("claude", backend, price=None)


def request(**extra: Any) -> ChatRequest:
    body: dict[str, Any] = {"model": "auto", "messages": [{"role": "user", "content": QUESTION}]}
    body.update(extra)
    return ChatRequest.from_wire(body)


def complete(conn: AnthropicConnector, req: ChatRequest, *, seconds: float = 5) -> Completion:
    async def go() -> Completion:
        try:
            return await conn.complete(req, Deadline.after(seconds))
        finally:
            await conn.aclose()

    return asyncio.run(go())


def stream(
    conn: AnthropicConnector,
    req: ChatRequest,
    *,
    seconds: float = 5,
    got: list[Chunk] | None = None,
) -> list[Chunk]:
    """All chunks; with `got`, the chunks that arrived before an error are left there."""
    chunks = got if got is not None else []

    async def go() -> list[Chunk]:
        try:
            async for chunk in conn.stream(req, Deadline.after(seconds)):
                chunks.append(chunk)
            return chunks
        finally:
            await conn.aclose()

    return asyncio.run(go())


def words(text: str) -> int:
    return len(text.split())


# --- answers ------------------------------------------------------------------------------


def test_a_text_answer_and_what_the_upstream_received(fake_anthropic: FakeUpstream) -> None:
    answer = "It was charged on two cards; one refund is automatic."
    fake_anthropic.set_reply(answer)
    system = "You are a support agent."
    req = request(
        messages=[{"role": "system", "content": system}, {"role": "user", "content": QUESTION}],
        max_tokens=200,
    )
    completion = complete(connector(fake_anthropic), req)

    assert completion.content == answer
    assert completion.finish_reason == "stop"
    assert completion.usage.prompt_tokens == words(system) + words(QUESTION)
    assert completion.usage.completion_tokens == len(split_tokens(answer))
    assert completion.blocks == ({"type": "text", "text": answer},)
    sent = fake_anthropic.last_request
    assert (sent.method, sent.path) == ("POST", "/v1/messages")
    assert sent.headers["x-api-key"] == KEY
    assert sent.headers["anthropic-version"] == "2023-06-01"
    assert sent.headers["content-type"] == "application/json"
    assert "authorization" not in sent.headers
    assert sent.body == {
        "model": MODEL,
        "max_tokens": 200,
        "messages": [{"role": "user", "content": QUESTION}],
        "system": system,
        "stream": False,
    }


def test_tools_round_trip(fake_anthropic: FakeUpstream) -> None:
    arguments = {"order_id": "1234", "include_refunds": True}
    fake_anthropic.set_reply(
        "", tool_calls=[{"id": "toolu_1", "name": "lookup_order", "arguments": arguments}]
    )
    tool = {
        "type": "function",
        "function": {
            "name": "lookup_order",
            "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}}},
        },
    }
    earlier = {"order_id": "1111"}
    messages = [
        {"role": "user", "content": "Check my last order"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "lookup_order", "arguments": json.dumps(earlier)},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "refunded twice"},
    ]
    completion = complete(
        connector(fake_anthropic), request(messages=messages, tools=[tool], tool_choice="required")
    )

    assert completion.finish_reason == "tool_calls"
    assert completion.content is None
    (call,) = completion.tool_calls
    assert (call["id"], call["type"], call["function"]["name"]) == (
        "toolu_1",
        "function",
        "lookup_order",
    )
    assert json.loads(call["function"]["arguments"]) == arguments
    body = fake_anthropic.last_request.body
    assert body["messages"][1] == {
        "role": "assistant",
        "content": [{"type": "tool_use", "id": "call_1", "name": "lookup_order", "input": earlier}],
    }
    assert body["messages"][2] == {
        "role": "user",
        "content": [{"type": "tool_result", "tool_use_id": "call_1", "content": "refunded twice"}],
    }
    assert body["tools"] == [
        {"name": "lookup_order", "input_schema": tool["function"]["parameters"]}
    ]
    assert body["tool_choice"] == {"type": "any"}


def test_a_stream_of_text_and_tool_call_fragments(fake_anthropic: FakeUpstream) -> None:
    answer = "Let me check that order."
    arguments = {"order_id": "1234", "reason": "double refund"}
    fake_anthropic.set_reply(answer, tool_calls=[{"name": "lookup_order", "arguments": arguments}])
    chunks = stream(connector(fake_anthropic), request())

    assert chunks[0].role == "assistant"
    assert "".join(c.content or "" for c in chunks) == answer
    calls = [call for c in chunks for call in c.tool_calls]
    head, *fragments = calls
    assert head["function"] == {"name": "lookup_order", "arguments": ""}
    assert head["id"].startswith("toolu_") and head["index"] == 0
    assert len(fragments) > 1  # streamed in pieces, OpenAI-shaped
    assert all(set(f) == {"index", "function"} and f["index"] == 0 for f in fragments)
    assert json.loads("".join(f["function"]["arguments"] for f in fragments)) == arguments
    assert [c.finish_reason for c in chunks if c.finish_reason] == ["tool_calls"]
    usage = chunks[-1].usage
    assert usage is not None
    assert usage.prompt_tokens == words(QUESTION)
    assert fake_anthropic.last_request.body["stream"] is True


@pytest.mark.parametrize("streamed", [False, True])
def test_cache_reads_and_writes_are_prompt_tokens(
    fake_anthropic: FakeUpstream, streamed: bool
) -> None:
    fake_anthropic.set_reply(
        "ok", prompt_tokens=12, cache_read_tokens=900, cache_creation_tokens=64
    )
    conn = connector(fake_anthropic)
    if streamed:
        usage = [c.usage for c in stream(conn, request()) if c.usage is not None][-1]
    else:
        usage = complete(conn, request()).usage
    assert usage.prompt_tokens == 12 + 900 + 64
    assert usage.cached_tokens == 900
    assert usage.completion_tokens == 1


def test_thinking_blocks_are_kept_and_relayed(fake_anthropic: FakeUpstream) -> None:
    thought = "The customer paid twice, so one charge must be reversed."
    answer = "One refund is on its way."
    fake_anthropic.set_reply(answer, thinking=thought)

    completion = complete(connector(fake_anthropic), request())
    assert completion.content == answer
    assert completion.blocks[0]["type"] == "thinking"
    assert completion.blocks[0]["thinking"] == thought
    assert completion.blocks[0]["signature"]

    chunks = stream(connector(fake_anthropic), request())
    assert "".join(c.content or "" for c in chunks) == answer
    events = [c.block_event for c in chunks if c.block_event is not None]
    assert [e["type"] for e in (events[0], events[-1])] == [
        "content_block_start",
        "content_block_stop",
    ]
    deltas = [e["delta"] for e in events if e["type"] == "content_block_delta"]
    assert "".join(d.get("thinking", "") for d in deltas) == thought
    assert any(d["type"] == "signature_delta" for d in deltas)


def test_a_native_body_reaches_the_upstream_unchanged(fake_anthropic: FakeUpstream) -> None:
    native = {
        "model": "whatever-the-caller-named",
        "max_tokens": 300,
        "system": [
            {
                "type": "text",
                "text": "A long, cached policy.",
                "cache_control": {"type": "ephemeral"},
            }
        ],
        "messages": [
            {
                "role": "user",
                "content": [
                    {
                        "type": "text",
                        "text": QUESTION,
                        "cache_control": {"type": "ephemeral", "ttl": "1h"},
                    }
                ],
            }
        ],
        "metadata": {"user_id": "u-1"},
    }
    req = request().with_native(
        NativeBody("anthropic", native, ("system[0].cache_control: caching",))
    )
    complete(connector(fake_anthropic), req)
    assert fake_anthropic.last_request.body == {**native, "model": MODEL, "stream": False}


def test_a_continuation_is_sent_as_a_prefill(fake_anthropic: FakeUpstream) -> None:
    so_far = "Your order shipped on Monday and "
    fake_anthropic.set_reply(" should arrive by Friday.")
    follow = request(max_tokens=100).continued(so_far, prefill=True, sent_tokens=6)
    chunks = stream(connector(fake_anthropic), follow)

    body = fake_anthropic.last_request.body
    assert body["messages"] == [
        {"role": "user", "content": QUESTION},
        {"role": "assistant", "content": so_far.rstrip()},
    ]
    assert body["max_tokens"] == 100 - 6
    # The space stripped from the prefill is already the caller's: the answer's is not repeated.
    assert (
        so_far + "".join(c.content or "" for c in chunks)
        == "Your order shipped on Monday and should arrive by Friday."
    )


# --- faults -------------------------------------------------------------------------------


def test_429_with_retry_after(fake_anthropic: FakeUpstream) -> None:
    fake_anthropic.script([status(429, retry_after=7)])
    with pytest.raises(ProviderRateLimited) as info:
        complete(connector(fake_anthropic), request())
    assert info.value.retry_after_s == 7
    assert info.value.upstream_status == 429


@pytest.mark.parametrize("code", [500, 529])
@pytest.mark.parametrize("streamed", [False, True])
def test_overloaded_and_server_errors_are_unavailable(
    fake_anthropic: FakeUpstream, code: int, streamed: bool
) -> None:
    fake_anthropic.script([status(code)])
    conn = connector(fake_anthropic)
    with pytest.raises(ProviderUnavailable) as info:
        stream(conn, request()) if streamed else complete(conn, request())
    assert info.value.upstream_status == code
    assert f"fake upstream error {code}" in info.value.message


def test_prompt_too_long_is_context_length_exceeded(fake_anthropic: FakeUpstream) -> None:
    too_long = {
        "type": "error",
        "error": {
            "type": "invalid_request_error",
            "message": "prompt is too long: 210000 tokens > 200000 maximum",
        },
    }
    fake_anthropic.script(
        [
            status(400, body=too_long),
            status(
                400,
                body={
                    "type": "error",
                    "error": {
                        "type": "invalid_request_error",
                        "message": "temperature: range is 0..1",
                    },
                },
            ),
        ]
    )
    with pytest.raises(ContextLengthExceeded):
        complete(connector(fake_anthropic), request())
    with pytest.raises(ProviderRejected) as info:
        complete(connector(fake_anthropic), request())
    assert not isinstance(info.value, ContextLengthExceeded)
    assert "temperature: range is 0..1" in info.value.message


def test_refused_credentials_are_an_auth_error_without_the_key(
    fake_anthropic: FakeUpstream,
) -> None:
    fake_anthropic.script([echo_auth(401)])
    with pytest.raises(ProviderAuthError) as info:
        complete(connector(fake_anthropic), request())
    assert "Incorrect API key provided" in info.value.message
    assert KEY not in info.value.message and KEY[-12:] not in info.value.message


def test_a_missing_key_is_an_auth_error_before_any_call(
    fake_anthropic: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(KEY_ENV)
    for call in (complete, stream):
        with pytest.raises(ProviderAuthError, match=KEY_ENV):
            call(connector(fake_anthropic), request())
    assert fake_anthropic.requests == []


def test_a_stream_cut_before_message_stop(fake_anthropic: FakeUpstream) -> None:
    fake_anthropic.set_reply("one two three four five")
    fake_anthropic.script([cut_stream(after_chunks=4)])
    got: list[Chunk] = []
    with pytest.raises(ProviderUnavailable):
        stream(connector(fake_anthropic), request(), got=got)
    assert got and got[0].role == "assistant"
    assert not any(c.finish_reason for c in got)


def test_a_stream_with_a_stop_reason_but_no_message_stop_is_complete(
    fake_anthropic: FakeUpstream,
) -> None:
    # As the OpenAI wire treats a stream with a finish_reason but no [DONE].
    fake_anthropic.set_reply("done anyway")
    fake_anthropic.script([no_done()])
    chunks = stream(connector(fake_anthropic), request())
    assert "".join(c.content or "" for c in chunks) == "done anyway"
    assert chunks[-1].usage is not None


@pytest.mark.parametrize("streamed", [False, True])
def test_a_malformed_reply(fake_anthropic: FakeUpstream, streamed: bool) -> None:
    fake_anthropic.script([malformed_chunk(after_chunks=2)])
    conn = connector(fake_anthropic)
    with pytest.raises(ProviderUnavailable, match=r"not JSON|malformed"):
        stream(conn, request()) if streamed else complete(conn, request())


def test_a_reply_without_the_messages_shape(fake_anthropic: FakeUpstream) -> None:
    fake_anthropic.script([status(200, body={"id": "msg", "content": "not blocks"})])
    with pytest.raises(ProviderUnavailable, match="malformed reply"):
        complete(connector(fake_anthropic), request())


def test_an_error_event_mid_stream(fake_anthropic: FakeUpstream) -> None:
    fake_anthropic.set_reply("one two three")
    fake_anthropic.script([stream_error_echo(after_chunks=3, code=529)])
    got: list[Chunk] = []
    with pytest.raises(ProviderUnavailable) as info:
        stream(connector(fake_anthropic), request(), got=got)
    assert got  # it failed after the stream had started
    assert info.value.upstream_status == 529
    assert KEY not in info.value.message and KEY[-12:] not in info.value.message


def test_a_stall_after_the_first_event(fake_anthropic: FakeUpstream) -> None:
    fake_anthropic.script([stall(after_chunks=2, seconds=2)])
    conn = connector(fake_anthropic, timeouts={"connect_s": 1, "request_s": 5, "stall_s": 0.3})
    got: list[Chunk] = []
    with pytest.raises(ProviderTimeout, match="stalled"):
        stream(conn, request(), got=got)
    assert got


def test_no_first_event_in_time(fake_anthropic: FakeUpstream) -> None:
    fake_anthropic.script([slow_first_token(2)])
    conn = connector(
        fake_anthropic, timeouts={"connect_s": 1, "request_s": 5, "first_token_s": 0.3}
    )
    with pytest.raises(ProviderTimeout, match="first event"):
        stream(conn, request())


def test_the_request_deadline_and_a_reset(fake_anthropic: FakeUpstream) -> None:
    fake_anthropic.script([hang(3), reset()])
    with pytest.raises(ProviderTimeout, match="deadline"):
        complete(connector(fake_anthropic), request(), seconds=0.3)
    with pytest.raises(ProviderUnavailable, match="unreachable"):
        complete(connector(fake_anthropic), request())


def test_untranslatable_tool_arguments_are_refused_before_any_call(
    fake_anthropic: FakeUpstream,
) -> None:
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{broken"}}
    req = request(
        messages=[{"role": "user", "content": "hi"}, {"role": "assistant", "tool_calls": [call]}]
    )
    with pytest.raises(ProviderRejected) as info:
        complete(connector(fake_anthropic), req)
    assert info.value.code == "invalid_tool_arguments"
    assert "messages[1].tool_calls[0].function.arguments" in info.value.message
    assert fake_anthropic.requests == []


# --- through the gateway ------------------------------------------------------------------

POLICY = """
version: 1
backends:
  claude:
    type: anthropic
    model: claude-haiku-4-5
    api_key_env: {key_env}
    base_url: {url}
    timeouts: {{connect_s: 1, request_s: 5}}
baseline: claude
routes:
  - name: all
    target: claude
default_route: all
"""


def test_through_the_gateway(tmp_path: Path, fake_anthropic: FakeUpstream) -> None:
    answer = "Both charges were refunded."
    fake_anthropic.set_reply(answer, prompt_tokens=40, cache_read_tokens=1000, completion_tokens=6)
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY.format(key_env=KEY_ENV, url=fake_anthropic.url))
    body = {"model": "auto", "messages": [{"role": "user", "content": QUESTION}]}
    with running_app(policy, tmp_path) as client:
        r = client.post("/v1/chat/completions", json=body)
        assert r.status_code == 200, r.text
        data = r.json()
        _, attempts = request_rows(client, r.headers["x-request-id"])
        s = client.post("/v1/chat/completions", json={**body, "stream": True})
        assert s.status_code == 200, s.text
    assert data["choices"][0]["message"]["content"] == answer
    assert data["usage"]["prompt_tokens"] == 1040
    assert data["usage"]["prompt_tokens_details"] == {"cached_tokens": 1000}
    assert [(a["backend"], a["backend_type"], a["model"]) for a in attempts] == [
        ("claude", "anthropic", "claude-haiku-4-5")
    ]
    # Priced from litellm's cost map (anthropic/claude-haiku-4-5), cache reads at their rate.
    entry = CostMap().lookup("claude-haiku-4-5")
    assert entry is not None
    usd = (
        40 * Decimal(repr(entry["input_cost_per_token"]))
        + 1000 * Decimal(repr(entry["cache_read_input_token_cost"]))
        + 6 * Decimal(repr(entry["output_cost_per_token"]))
    )
    assert attempts[0]["cost_nanos"] == int((usd * 10**9).to_integral_value())
    frames = [line[6:] for line in s.text.splitlines() if line.startswith("data: ")]
    assert frames[-1] == "[DONE]"
    text = "".join(
        (json.loads(f)["choices"] or [{}])[0].get("delta", {}).get("content") or ""
        for f in frames[:-1]
    )
    assert text == answer
    assert fake_anthropic.requests[-1].path == "/v1/messages"


# --- the policy and the places that branch on backend types -------------------------------


def test_the_example_policy_loads_and_is_priced() -> None:
    policy = load_policy("policies/examples/anthropic.yaml", env={})
    backends = policy.backends.values()
    assert {b.type for b in backends} == {"anthropic"}
    costs = CostModel(policy, gpu_time=GpuTime())
    assert costs.unpriced() == []  # both models are in litellm's offline cost map


def test_the_fd_reserve_counts_the_backends_pool() -> None:
    def reserve(pool: int) -> int:
        text = POLICY.format(key_env=KEY_ENV, url="https://x.test")
        text = text.replace("    timeouts:", f"    max_connections: {pool}\n    timeouts:")
        policy = parse_policy(text, path="p.yaml", env={})
        return upstream_reserve(policy)

    # Both above the reserve's floor: the difference is the pool's.
    assert reserve(3000) - reserve(2000) == 1000


@pytest.mark.parametrize(
    ("old", "new", "words"),
    [
        ("model: claude-haiku-4-5", "model: anthropic/claude-haiku-4-5", "bare Anthropic model id"),
        ("base_url: https://x.test", "base_url: https://x.test/v1", "appends /v1/messages"),
        (f"api_key_env: {KEY_ENV}", "api_key_env: ${SECRET}", "must name an environment variable"),
        ("type: anthropic", "type: anthropik", "`type: anthropic`"),
    ],
)
def test_policy_mistakes_are_named(old: str, new: str, words: str) -> None:
    text = POLICY.format(key_env=KEY_ENV, url="https://x.test")
    assert old in text
    with pytest.raises(PolicyLoadError) as info:
        parse_policy(text.replace(old, new), path="p.yaml", env={"SECRET": "sk-ant-pasted"})
    assert words in str(info.value)
    assert "sk-ant-pasted" not in str(info.value)


def test_telemetry_names_the_provider() -> None:
    attempt = AttemptRecord(
        request_id="r",
        attempt=0,
        role="primary",
        backend="claude",
        backend_type="anthropic",
        model="claude-haiku-4-5",
        outcome="ok",
        error_class=None,
        prompt_tokens=1,
        completion_tokens=1,
        cached_tokens=0,
        cost_nanos=None,
        baseline_cost_nanos=None,
        latency_ms=1.0,
        started_at=0.0,
    )
    assert provider_name(attempt) == "anthropic"
