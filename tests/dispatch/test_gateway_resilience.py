"""Dispatch through real HTTP fakes: retries, Retry-After, fallbacks, no-retry 4xx, streams.

Faults that both wires must handle alike run twice (the `wire` fixture): on the dLLM route
(dllm, falling back to ar-openai) and on the AR route (ar-openai over the native OpenAI wire,
falling back to ar-anthropic through litellm).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import orjson
import pytest

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

HINT = {"X-Step-Kind": "classify"}


def chat(**extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": "auto",
        "messages": [{"role": "user", "content": "Label this ticket: refund or shipping?"}],
    }
    body.update(extra)
    return body


def sse_events(text: str) -> list[str]:
    return [line[6:] for line in text.split("\n") if line.startswith("data: ")]


@dataclass(frozen=True)
class Wire:
    """A route under test: its hint, its first backend and the one it falls back to."""

    headers: dict[str, str]
    name: str
    upstream: FakeUpstream
    fallback_name: str
    fallback: FakeUpstream


@pytest.fixture(params=["dllm", "ar-openai"])
def wire(
    request: pytest.FixtureRequest,
    fake_dllm: FakeUpstream,
    fake_openai: FakeUpstream,
    fake_anthropic: FakeUpstream,
) -> Wire:
    if request.param == "dllm":
        return Wire(HINT, "dllm", fake_dllm, "ar-openai", fake_openai)
    return Wire({"X-Step-Kind": "reason"}, "ar-openai", fake_openai, "ar-anthropic", fake_anthropic)


def test_429_with_retry_after_is_honoured_then_succeeds(client: Any, wire: Wire) -> None:
    wire.upstream.script([status(429, retry_after=1), ok(content="refund")])
    started = time.monotonic()
    r = client.post("/v1/chat/completions", json=chat(), headers=wire.headers)
    elapsed = time.monotonic() - started
    assert r.status_code == 200, r.text
    assert r.headers["x-stepgate-backend"] == wire.name
    assert len(wire.upstream.requests) == 2
    assert elapsed >= 0.95  # waited for Retry-After, not the 10 ms backoff


def test_429_without_retry_after_retries_with_backoff(client: Any, fake_dllm: FakeUpstream) -> None:
    fake_dllm.script([status(429), ok(content="refund")])
    r = client.post("/v1/chat/completions", json=chat(), headers=HINT)
    assert r.status_code == 200
    assert len(fake_dllm.requests) == 2


def test_retry_after_beyond_cap_falls_back_instead_of_waiting(
    client: Any, fake_dllm: FakeUpstream, fake_openai: FakeUpstream
) -> None:
    fake_dllm.script([status(429, retry_after=60)])
    r = client.post("/v1/chat/completions", json=chat(), headers=HINT)
    assert r.status_code == 200, r.text
    assert r.headers["x-stepgate-backend"] == "ar-openai"
    assert len(fake_dllm.requests) == 1


def test_500_once_is_retried_on_same_backend(client: Any, wire: Wire) -> None:
    wire.upstream.script([status(500), ok(content="shipping")])
    r = client.post("/v1/chat/completions", json=chat(), headers=wire.headers)
    assert r.status_code == 200
    assert r.json()["choices"][0]["message"]["content"] == "shipping"
    assert len(wire.upstream.requests) == 2 and not wire.fallback.requests


def test_persistent_503_falls_back_in_policy_order(client: Any, wire: Wire) -> None:
    wire.upstream.script([persistent(status(503))])
    wire.fallback.set_reply(content="refund")
    r = client.post("/v1/chat/completions", json=chat(), headers=wire.headers)
    assert r.status_code == 200, r.text
    assert r.headers["x-stepgate-backend"] == wire.fallback_name
    assert r.json()["choices"][0]["message"]["content"] == "refund"
    assert len(wire.upstream.requests) == 2  # max_attempts per backend
    assert len(wire.fallback.requests) == 1


def test_every_backend_down_is_503_with_each_failure_named(client: Any, wire: Wire) -> None:
    wire.upstream.script([persistent(status(503))])
    wire.fallback.script([persistent(status(503))])
    r = client.post("/v1/chat/completions", json=chat(), headers=wire.headers)
    assert r.status_code == 503
    message = r.json()["error"]["message"]
    assert wire.name in message and wire.fallback_name in message


def test_context_length_400_is_not_retried_nor_failed_over(client: Any, wire: Wire) -> None:
    body = {
        "error": {
            "message": "context length exceeded",
            "type": "invalid_request_error",
            "code": "context_length_exceeded",
        }
    }
    wire.upstream.script([status(400, body=body)])
    r = client.post("/v1/chat/completions", json=chat(), headers=wire.headers)
    assert r.status_code == 400
    err = r.json()["error"]
    assert "context length exceeded" in err["message"]
    assert err["code"] == "context_length_exceeded"
    assert len(wire.upstream.requests) == 1 and not wire.fallback.requests


def test_connection_reset_is_retried(client: Any, wire: Wire) -> None:
    wire.upstream.script([reset(), ok(content="refund")])
    r = client.post("/v1/chat/completions", json=chat(), headers=wire.headers)
    assert r.status_code == 200, r.text
    assert len(wire.upstream.requests) == 2


def test_no_response_times_out_and_falls_back(
    client: Any, fake_dllm: FakeUpstream, fake_openai: FakeUpstream
) -> None:
    fake_dllm.script([hang(10), hang(10)])
    r = client.post("/v1/chat/completions", json=chat(), headers=HINT)
    assert r.status_code == 200, r.text
    assert r.headers["x-stepgate-backend"] == "ar-openai"


def test_upstream_429_everywhere_is_429_with_retry_after(client: Any, wire: Wire) -> None:
    wire.upstream.script([persistent(status(429, retry_after=30))])
    wire.fallback.script([persistent(status(429, retry_after=30))])
    r = client.post("/v1/chat/completions", json=chat(), headers=wire.headers)
    assert r.status_code == 429
    assert int(r.headers["retry-after"]) >= 1


# --- streaming ---------------------------------------------------------------------------


def test_stream_sse_framing_done_and_usage_chunk(client: Any, fake_dllm: FakeUpstream) -> None:
    fake_dllm.set_reply(content="refund approved today", prompt_tokens=9)
    r = client.post(
        "/v1/chat/completions",
        headers=HINT,
        json=chat(stream=True, stream_options={"include_usage": True}),
    )
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/event-stream")
    assert r.headers["x-stepgate-backend"] == "dllm"
    events = sse_events(r.text)
    assert events[-1] == "[DONE]"
    chunks = [orjson.loads(e) for e in events[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == "refund approved today"
    usage_chunk = chunks[-1]
    assert usage_chunk["choices"] == []
    assert usage_chunk["usage"]["prompt_tokens"] == 9
    assert usage_chunk["usage"]["completion_tokens"] == 3
    assert usage_chunk["x_stepgate"]["backend"] == "dllm"
    assert usage_chunk["x_stepgate"]["cost_usd"] != "unknown"


def test_stream_without_include_usage_has_no_usage_chunk(
    client: Any, fake_dllm: FakeUpstream
) -> None:
    r = client.post("/v1/chat/completions", json=chat(stream=True), headers=HINT)
    chunks = [orjson.loads(e) for e in sse_events(r.text)[:-1]]
    assert all(c["choices"] for c in chunks)
    assert all("usage" not in c for c in chunks)


def test_stream_cut_midway_is_an_error_not_a_truncated_success(client: Any, wire: Wire) -> None:
    wire.upstream.set_reply(content="one two three four five six")
    wire.upstream.script([cut_stream(after_chunks=3)])
    r = client.post("/v1/chat/completions", json=chat(stream=True), headers=wire.headers)
    events = sse_events(r.text)
    assert "[DONE]" not in events
    last = orjson.loads(events[-1])
    assert last["error"]["code"] == "provider_stream_interrupted"
    assert not wire.fallback.requests  # no switch after the first byte


def test_stream_malformed_chunk_is_an_error(client: Any, wire: Wire) -> None:
    wire.upstream.set_reply(content="one two three four")
    wire.upstream.script([malformed_chunk(after_chunks=2)])
    r = client.post("/v1/chat/completions", json=chat(stream=True), headers=wire.headers)
    events = sse_events(r.text)
    assert "[DONE]" not in events
    assert "error" in orjson.loads(events[-1])


def test_stream_missing_done_after_finish_is_complete(client: Any, wire: Wire) -> None:
    wire.upstream.set_reply(content="all good")
    wire.upstream.script([no_done()])
    r = client.post("/v1/chat/completions", json=chat(stream=True), headers=wire.headers)
    events = sse_events(r.text)
    assert events[-1] == "[DONE]"
    finals = [orjson.loads(e)["choices"][0]["finish_reason"] for e in events[:-1]]
    assert "stop" in finals


def test_stream_fails_over_before_first_byte(client: Any, wire: Wire) -> None:
    wire.upstream.script([persistent(status(503))])
    wire.fallback.set_reply(content="from the fallback")
    r = client.post("/v1/chat/completions", json=chat(stream=True), headers=wire.headers)
    assert r.status_code == 200
    assert r.headers["x-stepgate-backend"] == wire.fallback_name
    events = sse_events(r.text)
    assert events[-1] == "[DONE]"
    text = "".join(
        orjson.loads(e)["choices"][0]["delta"].get("content") or ""
        for e in events[:-1]
        if orjson.loads(e)["choices"]
    )
    assert text == "from the fallback"


def test_stream_slow_first_token_times_out_to_fallback(
    client: Any, fake_dllm: FakeUpstream, fake_openai: FakeUpstream
) -> None:
    fake_dllm.script([slow_first_token(5), slow_first_token(5)])
    r = client.post("/v1/chat/completions", json=chat(stream=True), headers=HINT)
    assert r.status_code == 200
    assert r.headers["x-stepgate-backend"] == "ar-openai"


def test_stream_all_backends_fail_before_first_byte_is_json_error(client: Any, wire: Wire) -> None:
    wire.upstream.script([persistent(status(503))])
    wire.fallback.script([persistent(status(500))])
    r = client.post("/v1/chat/completions", json=chat(stream=True), headers=wire.headers)
    assert r.status_code in (502, 503)
    assert r.json()["error"]["message"]


@pytest.mark.parametrize("stream", [False, True])
def test_anthropic_through_litellm(client: Any, fake_anthropic: FakeUpstream, stream: bool) -> None:
    fake_anthropic.set_reply(content="Dear customer, your refund is on its way.")
    r = client.post("/v1/chat/completions", json=chat(model="claude-haiku", stream=stream))
    assert r.status_code == 200, r.text
    assert r.headers["x-stepgate-backend"] == "ar-anthropic"
    if stream:
        events = sse_events(r.text)
        assert events[-1] == "[DONE]"
        text = "".join(
            orjson.loads(e)["choices"][0]["delta"].get("content") or ""
            for e in events[:-1]
            if orjson.loads(e)["choices"]
        )
    else:
        text = r.json()["choices"][0]["message"]["content"]
    assert text == "Dear customer, your refund is on its way."
    assert fake_anthropic.requests[-1].path.endswith("/v1/messages")


def test_missing_provider_key_is_named_and_not_retried(
    client: Any, fake_anthropic: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TEST_ANTHROPIC_KEY")
    r = client.post("/v1/chat/completions", json=chat(model="claude-haiku"))
    assert r.status_code == 502
    error = r.json()["error"]
    assert "TEST_ANTHROPIC_KEY is not set" in error["message"]
    assert error["code"] == "provider_auth"
    assert not fake_anthropic.requests
