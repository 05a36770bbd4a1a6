"""The OpenAI-compatible surface in-process: routing headers, passthrough, bad input."""

from __future__ import annotations

import time
from typing import Any

import orjson
import pytest

from tests.support.fakes.upstream import FakeUpstream

ROUTED_HEADERS = (
    "x-request-id",
    "x-stepgate-route",
    "x-stepgate-backend",
    "x-stepgate-step-kind",
    "x-stepgate-escalated",
    "x-stepgate-cost-usd",
    "x-stepgate-overhead-ms",
)


def chat(**extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": "auto",
        "messages": [{"role": "user", "content": "Is this about billing or shipping?"}],
    }
    body.update(extra)
    return body


def test_hinted_classify_step_goes_to_dllm_without_launch_knobs(
    client: Any, fake_dllm: FakeUpstream
) -> None:
    fake_dllm.set_reply(content="billing", prompt_tokens=12, completion_tokens=1)
    r = client.post("/v1/chat/completions", json=chat(), headers={"X-Step-Kind": "classify"})
    assert r.status_code == 200, r.text
    for name in ROUTED_HEADERS:
        assert r.headers.get(name), name
    assert r.headers["x-stepgate-route"] == "fast"
    assert r.headers["x-stepgate-backend"] == "dllm"
    assert r.headers["x-stepgate-step-kind"] == "classify"
    assert r.headers["x-stepgate-escalated"] == "false"
    # 12 prompt tokens at $0.05/M + 1 completion token at $0.20/M = $0.0000008
    assert r.headers["x-stepgate-cost-usd"] == "0.0000008"
    body = r.json()
    assert body["choices"][0]["message"]["content"] == "billing"
    assert body["usage"] == {"prompt_tokens": 12, "completion_tokens": 1, "total_tokens": 13}
    sent = fake_dllm.requests[-1].body
    assert sent["model"] == "test-diffusion"
    assert sent["logprobs"] is True
    # vLLM's diffusion knobs are launch settings: the policy's `diffusion` block describes the
    # pool and is never sent (no invented `vllm_xargs`, no top-level knob fields).
    assert "vllm_xargs" not in sent
    assert not {"steps", "canvas_length", "block_length", "threshold", "gen_length"} & set(sent)


def test_generation_parameters_pass_through_unchanged(client: Any, fake_dllm: FakeUpstream) -> None:
    tools = [
        {
            "type": "function",
            "function": {
                "name": "lookup_order",
                "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}}},
            },
        }
    ]
    params = {
        "tools": tools,
        "tool_choice": "auto",
        "response_format": {"type": "json_object"},
        "temperature": 0.2,
        "max_tokens": 64,
        "max_completion_tokens": 60,
        "n": 1,
        "stop": ["\n\n"],
        "seed": 7,
        "user": "agent-17",
        "metadata": {"ticket": "T-1"},
        "top_p": 0.9,
    }
    r = client.post("/v1/chat/completions", json=chat(**params), headers={"X-Step-Kind": "extract"})
    assert r.status_code == 200, r.text
    sent = fake_dllm.requests[-1].body
    for key, value in params.items():
        assert sent[key] == value, key


def test_tool_calls_come_back(client: Any, fake_dllm: FakeUpstream) -> None:
    fake_dllm.set_reply(
        content="", tool_calls=[{"name": "lookup_order", "arguments": {"order_id": "A-1"}}]
    )
    r = client.post("/v1/chat/completions", json=chat(), headers={"X-Step-Kind": "lookup"})
    assert r.status_code == 200, r.text
    choice = r.json()["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    call = choice["message"]["tool_calls"][0]
    assert call["function"]["name"] == "lookup_order"
    assert orjson.loads(call["function"]["arguments"]) == {"order_id": "A-1"}


def test_logprobs_returned_only_when_asked(client: Any, fake_dllm: FakeUpstream) -> None:
    fake_dllm.set_reply(content="refund", logprobs=[-0.5])
    plain = client.post("/v1/chat/completions", json=chat(), headers={"X-Step-Kind": "classify"})
    assert plain.json()["choices"][0]["logprobs"] is None
    asked = client.post(
        "/v1/chat/completions", json=chat(logprobs=True), headers={"X-Step-Kind": "classify"}
    )
    content = asked.json()["choices"][0]["logprobs"]["content"]
    assert [t["token"] for t in content] == ["refund"]
    assert content[0]["logprob"] == pytest.approx(-0.5)


def test_metadata_hint_routes_like_header(client: Any) -> None:
    r = client.post("/v1/chat/completions", json=chat(metadata={"X-Step-Kind": "format"}))
    assert r.headers["x-stepgate-route"] == "fast"
    assert r.headers["x-stepgate-step-kind"] == "format"


def test_route_name_and_alias_pin(
    client: Any, fake_dllm: FakeUpstream, fake_openai: FakeUpstream
) -> None:
    r = client.post("/v1/chat/completions", json=chat(model="fast"))
    assert r.headers["x-stepgate-route"] == "fast"
    assert r.headers["x-stepgate-backend"] == "dllm"
    r = client.post(
        "/v1/chat/completions", json=chat(model="gpt-4.1-mini"), headers={"X-Step-Kind": "classify"}
    )
    assert r.status_code == 200, r.text
    assert r.headers["x-stepgate-backend"] == "ar-openai"
    assert r.headers["x-stepgate-route"] == "alias:gpt-4.1-mini"
    assert fake_openai.requests[-1].body["model"] == "gpt-4.1-mini"


def test_models_lists_auto_routes_and_aliases(client: Any) -> None:
    r = client.get("/v1/models")
    ids = [m["id"] for m in r.json()["data"]]
    assert ids == ["auto", "fast", "deep", "gpt-4.1-mini", "claude-haiku", "dllm-direct"]


def test_health_and_ready(client: Any) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    deadline = time.monotonic() + 60
    ready = client.get("/readyz")
    while ready.json()["warming"] and time.monotonic() < deadline:  # litellm still loading
        assert ready.status_code == 503
        time.sleep(0.05)
        ready = client.get("/readyz")
    assert ready.status_code == 200
    report = ready.json()
    assert report["ready"] is True
    assert report["backends"]["dllm"] == {
        "type": "dllm",
        "ready": True,
        "circuit": {"state": "closed"},
    }


@pytest.mark.parametrize(
    ("payload", "status", "needle"),
    [
        (b"{not json", 400, "not valid JSON"),
        (b"", 400, "empty"),
        (b"[1, 2]", 400, "JSON object"),
        (orjson.dumps({"model": "auto"}), 400, "messages"),
        (orjson.dumps({"model": "auto", "messages": "hi"}), 400, "messages"),
        (
            orjson.dumps({"model": "auto", "messages": [{"role": "robot", "content": "x"}]}),
            400,
            "role",
        ),
        (orjson.dumps({**chat(), "temperature": "hot"}), 400, "temperature"),
        (orjson.dumps({**chat(), "n": 2}), 400, "n=1"),
        (orjson.dumps({**chat(), "max_tokens": 0}), 400, "max_tokens"),
        (orjson.dumps({**chat(), "tools": [{"type": "function"}]}), 400, "tools[0]"),
        (orjson.dumps({**chat(), "model": "gpt-99"}), 404, "gpt-99"),
    ],
)
def test_bad_input_gets_openai_shaped_4xx(
    client: Any, payload: bytes, status: int, needle: str
) -> None:
    r = client.post(
        "/v1/chat/completions", content=payload, headers={"content-type": "application/json"}
    )
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert needle in error["message"]
    assert error["type"] in {"invalid_request_error"}
    assert error["code"]
    assert r.headers["x-request-id"]


def test_bad_step_kind_hint_is_400(client: Any) -> None:
    r = client.post("/v1/chat/completions", json=chat(), headers={"X-Step-Kind": "poetry"})
    assert r.status_code == 400
    assert "X-Step-Kind" in r.json()["error"]["message"]


def test_oversize_body_is_413(client: Any) -> None:
    big = chat(messages=[{"role": "user", "content": "x" * (5 * 1024 * 1024)}])
    r = client.post("/v1/chat/completions", json=big)
    assert r.status_code == 413
    assert "limit" in r.json()["error"]["message"]


def test_unknown_endpoint_and_method(client: Any) -> None:
    r = client.get("/v1/nope")
    assert r.status_code == 404 and r.json()["error"]["message"].startswith("no such endpoint")
    r = client.get("/v1/chat/completions")
    assert r.status_code == 405 and "not allowed" in r.json()["error"]["message"]
