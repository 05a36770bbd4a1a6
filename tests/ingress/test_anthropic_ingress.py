"""POST /v1/messages in-process: routed, checked, costed and limited like a chat completion,
answered and refused in Anthropic's shapes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from gateway.limits.keys import KeyLimits
from tests.support.app_client import running_app
from tests.support.fakes.upstream import FakeUpstream, cut_stream
from tests.support.ledger_view import request_rows, settle
from tests.support.limits import mint

POLICY = """
version: 1
backends:
  dllm:
    type: dllm
    engine: vllm
    base_url: {dllm}
    model: test-diffusion
    timeouts: {{connect_s: 1, request_s: 5}}
    pricing: {{input_per_mtok_usd: "0.05", output_per_mtok_usd: "0.20"}}
  ar-openai:
    type: litellm
    model: openai/gpt-4.1-mini
    api_key_env: TEST_OPENAI_KEY
    base_url: {openai}
    timeouts: {{connect_s: 1, request_s: 15}}
  claude:
    type: anthropic
    model: claude-haiku-4-5
    api_key_env: TEST_ANTHROPIC_KEY
    base_url: {anthropic}
    timeouts: {{connect_s: 1, request_s: 15}}
baseline: ar-openai
retry: {{max_attempts: 1}}
circuit_breaker: {{enabled: false}}
aliases:
  claude: claude
routes:
  - name: checked
    match: {{kind: [classify, extract]}}
    target: dllm
    escalation: {{min_confidence: 0.7, on_low: escalate, to: ar-openai}}
  - name: fast
    match: {{kind: [format, lookup]}}
    target: dllm
    fallbacks: [claude]
  - name: deep
    target: ar-openai
default_route: deep
"""

VERSION = {"anthropic-version": "2023-06-01"}


@pytest.fixture
def client(
    tmp_path: Path, fake_dllm: FakeUpstream, fake_openai: FakeUpstream, fake_anthropic: FakeUpstream
) -> Iterator[Any]:
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        POLICY.format(
            dllm=fake_dllm.openai_base, openai=fake_openai.openai_base, anthropic=fake_anthropic.url
        )
    )
    with running_app(policy, tmp_path) as c:
        yield c


def messages_body(text: str = "Where is my parcel?", **extra: Any) -> dict[str, Any]:
    return {
        "model": "auto",
        "max_tokens": 200,
        "messages": [{"role": "user", "content": text}],
        **extra,
    }


def post(client: Any, body: Any, kind: str | None = None, **headers: str) -> Any:
    sent = {**VERSION, **headers}
    if kind:
        sent["X-Step-Kind"] = kind
    return client.post("/v1/messages", json=body, headers=sent)


def events_of(text: str) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for frame in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in frame.split("\n"))
        out.append((lines["event"], orjson.loads(lines["data"])))
    return out


def test_answer_is_a_message_with_stepgate_headers_and_a_ledger_row(
    client: Any, fake_dllm: FakeUpstream
) -> None:
    fake_dllm.set_reply(content="It ships tomorrow.", prompt_tokens=11, completion_tokens=4)
    r = post(client, messages_body(system="Be brief."), kind="lookup")
    assert r.status_code == 200
    message = r.json()
    assert message["type"] == "message" and message["role"] == "assistant"
    assert message["content"] == [{"type": "text", "text": "It ships tomorrow."}]
    assert message["stop_reason"] == "end_turn"
    assert message["usage"]["input_tokens"] == 11 and message["usage"]["output_tokens"] == 4
    assert message["id"].startswith("msg_")
    for name in (
        "x-request-id",
        "x-stepgate-route",
        "x-stepgate-cost-usd",
        "x-stepgate-overhead-ms",
        "x-stepgate-escalated",
    ):
        assert name in r.headers
    assert r.headers["x-stepgate-backend"] == "dllm"
    assert r.headers["x-stepgate-step-kind"] == "lookup"
    # The dLLM got an OpenAI-shaped request: the system prompt as a system message.
    sent = fake_dllm.last_request.body
    assert sent["messages"][0] == {"role": "system", "content": "Be brief."}
    assert sent["max_tokens"] == 200
    req, atts = request_rows(client, r.headers["x-request-id"])
    assert req["route"] == "fast" and req["final_backend"] == "dllm" and req["status"] == 200
    assert [a["backend"] for a in atts] == ["dllm"]
    assert atts[0]["prompt_tokens"] == 11 and atts[0]["completion_tokens"] == 4
    assert req["cost_nanos"] == atts[0]["cost_nanos"] > 0


def test_metadata_step_kind_routes_like_the_header(client: Any, fake_dllm: FakeUpstream) -> None:
    fake_dllm.set_reply(content="ok")
    r = post(client, messages_body(metadata={"step_kind": "format", "user_id": "u-1"}))
    assert r.status_code == 200
    assert r.headers["x-stepgate-route"] == "fast"
    assert fake_dllm.last_request.body.get("user") == "u-1"


def test_low_confidence_cheap_answer_escalates(
    client: Any, fake_dllm: FakeUpstream, fake_openai: FakeUpstream
) -> None:
    fake_dllm.set_reply(content="shipping", logprobs=-3.0)
    fake_openai.set_reply(content="billing")
    r = post(
        client,
        messages_body(
            "Classify the ticket. Answer with one of: billing, shipping.\nI was charged twice"
        ),
        kind="classify",
    )
    assert r.status_code == 200
    assert r.headers["x-stepgate-escalated"] == "true"
    assert r.json()["content"][0]["text"] == "billing"
    _, atts = request_rows(client, r.headers["x-request-id"])
    assert [(a["role"], a["backend"]) for a in atts] == [
        ("primary", "dllm"),
        ("escalation", "ar-openai"),
    ]


def test_stream_is_anthropics_event_sequence(client: Any, fake_dllm: FakeUpstream) -> None:
    fake_dllm.set_reply(content="your parcel ships tomorrow", completion_tokens=4)
    r = post(client, messages_body(stream=True), kind="lookup")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/event-stream")
    events = events_of(r.text)
    names = [name for name, _ in events]
    assert names[:2] == ["message_start", "ping"]
    assert names[2] == "content_block_start"
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    text = "".join(d["delta"]["text"] for n, d in events if n == "content_block_delta")
    assert text == "your parcel ships tomorrow"
    delta = events[-2][1]
    assert delta["delta"]["stop_reason"] == "end_turn"
    assert delta["usage"]["output_tokens"] == 4
    assert delta["x_stepgate"]["backend"] == "dllm"
    assert all(d.get("index", 0) == 0 for _, d in events)


def test_streamed_tool_call_becomes_a_tool_use_block(
    client: Any, fake_openai: FakeUpstream
) -> None:
    args = {"order_id": "A-7", "amount": 12.5}
    fake_openai.set_reply(content="", tool_calls=[{"name": "refund", "arguments": args}])
    tools = [{"name": "refund", "input_schema": {"type": "object"}}]
    r = post(client, messages_body("Refund A-7", stream=True, tools=tools), kind="reason")
    events = events_of(r.text)
    starts = [d for n, d in events if n == "content_block_start"]
    assert [s["content_block"]["type"] for s in starts] == ["tool_use"]
    assert starts[0]["content_block"]["name"] == "refund"
    fragments = [
        d["delta"]["partial_json"]
        for n, d in events
        if n == "content_block_delta" and d["delta"]["type"] == "input_json_delta"
    ]
    assert json.loads("".join(fragments)) == args
    assert events[-2][1]["delta"]["stop_reason"] == "tool_use"
    sent = fake_openai.last_request.body
    assert sent["tools"][0]["function"]["name"] == "refund"


def test_stream_cut_after_first_bytes_ends_with_an_error_event(
    client: Any, fake_dllm: FakeUpstream
) -> None:
    fake_dllm.set_reply(content="one two three four five")
    fake_dllm.script([cut_stream(after_chunks=2)])
    r = post(client, messages_body(stream=True), kind="lookup")
    events = events_of(r.text)
    assert events[-1][0] == "error"
    assert events[-1][1]["type"] == "error"
    assert events[-1][1]["error"]["type"] == "api_error"
    assert "message_stop" not in [n for n, _ in events]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "auto", "messages": [{"role": "user", "content": "x"}]}, "max_tokens"),
        (
            messages_body(messages=[{"role": "user", "content": [{"type": "video"}]}]),
            "messages.0.content.0",
        ),
        (messages_body(api_key="sk-stolen"), "api_key"),
    ],
)
def test_malformed_body_gets_anthropic_shaped_400(client: Any, body: Any, param: str) -> None:
    r = post(client, body)
    assert r.status_code == 400
    error = r.json()
    assert error["type"] == "error"
    assert error["error"]["type"] == "invalid_request_error"
    assert param in error["error"]["message"]
    assert "x-request-id" in r.headers


def test_invalid_json_and_missing_version_header(client: Any) -> None:
    r = client.post("/v1/messages", content=b"{nope", headers=VERSION)
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"
    r = client.post("/v1/messages", json=messages_body())
    assert r.status_code == 400
    assert "anthropic-version" in r.json()["error"]["message"]
    r = post(client, messages_body(), **{"anthropic-version": "1999-01-01"})
    assert r.status_code == 400


def test_cache_control_never_reaches_a_backend_that_would_drop_it(
    client: Any, fake_dllm: FakeUpstream, fake_openai: FakeUpstream
) -> None:
    body = messages_body(
        system=[{"type": "text", "text": "Policy text", "cache_control": {"type": "ephemeral"}}]
    )
    r = post(client, body, kind="reason")  # deep -> ar-openai, not Anthropic
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["code"] == "needs_native_backend"
    assert "cache_control" in error["message"] and "ar-openai" in error["message"]
    assert fake_openai.requests == [] and fake_dllm.requests == []


def test_native_only_parts_go_to_the_anthropic_fallback_unchanged(
    client: Any, fake_dllm: FakeUpstream, fake_anthropic: FakeUpstream
) -> None:
    fake_anthropic.set_reply(content="cached answer")
    body = messages_body(
        system=[{"type": "text", "text": "Policy text", "cache_control": {"type": "ephemeral"}}]
    )
    r = post(client, body, kind="lookup")  # fast: dllm, fallback claude (native)
    assert r.status_code == 200
    assert r.headers["x-stepgate-backend"] == "claude"
    assert fake_dllm.requests == []
    sent = fake_anthropic.last_request.body
    assert sent["system"] == body["system"]  # cache_control intact
    assert sent["model"] == "claude-haiku-4-5"
    assert r.json()["content"][0]["text"] == "cached answer"


def test_alias_to_the_native_backend_passes_thinking_through(
    client: Any, fake_anthropic: FakeUpstream
) -> None:
    fake_anthropic.set_reply(content="Done.")
    body = messages_body(model="claude", thinking={"type": "enabled", "budget_tokens": 1024})
    r = post(client, body)
    assert r.status_code == 200
    assert fake_anthropic.last_request.body["thinking"] == body["thinking"]
    assert fake_anthropic.last_request.headers["anthropic-version"] == "2023-06-01"


def test_unknown_model_is_an_anthropic_not_found(client: Any) -> None:
    r = post(client, messages_body(model="gpt-17"))
    assert r.status_code == 404
    assert r.json()["error"]["type"] == "not_found_error"


def test_key_rate_limit_is_anthropic_shaped_with_retry_after(
    tmp_path: Path, client: Any, fake_dllm: FakeUpstream
) -> None:
    key, _ = mint(f"sqlite:///{tmp_path}/ledger.db", "support", KeyLimits(rpm=1))
    fake_dllm.set_reply(content="ok")
    # x-api-key, as the Anthropic SDK sends a key
    first = post(client, messages_body(), kind="lookup", **{"x-api-key": key})
    second = post(client, messages_body(), kind="lookup", **{"x-api-key": key})
    assert first.status_code == 200, first.text
    assert second.status_code == 429
    assert second.json()["error"]["type"] == "rate_limit_error"
    assert int(second.headers["retry-after"]) >= 1
    req, _ = request_rows(client, first.headers["x-request-id"])
    assert req["team"] == "support"


def test_idempotent_stream_replays_the_same_events(client: Any, fake_dllm: FakeUpstream) -> None:
    fake_dllm.set_reply(content="one two")
    headers = {"Idempotency-Key": "msg-key-1"}
    first = post(client, messages_body(stream=True), kind="lookup", **headers)
    settle(client)
    second = post(client, messages_body(stream=True), kind="lookup", **headers)
    assert second.text == first.text
    assert len(fake_dllm.requests) == 1
