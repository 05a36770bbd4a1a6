"""No caller chooses where a provider key goes: SSRF through body keys, for every backend type.

A "sink" fake upstream plays the attacker's listener. Every control key is sent, pointing at
the sink where it takes a URL, to each backend type (dLLM, OpenAI over the native wire, OpenAI
through `litellm.acompletion`, Anthropic through litellm), streaming and not: the gateway must
answer 400 naming the key, and neither the sink nor any upstream may see a byte. Below the edge,
the connectors themselves drop such keys even when a request is built without the edge check.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from connectors.dllm.config import DllmBackend
from connectors.dllm.connector import DllmConnector
from connectors.litellm_ar.config import LitellmBackend
from connectors.litellm_ar.connector import LitellmConnector, _LitellmModule
from gateway.core.deadline import Deadline
from gateway.core.errors import ProviderRejected
from gateway.core.types import ChatRequest
from tests.support.fakes.upstream import FakeUpstream

SECRET = "sk-test-canary-openai-0123456789abcdef"


@pytest.fixture(scope="module")
def sink() -> Iterator[FakeUpstream]:
    with FakeUpstream(dialect="openai") as fake:
        yield fake


@pytest.fixture(autouse=True)
def _clean_sink(sink: FakeUpstream, monkeypatch: pytest.MonkeyPatch) -> None:
    sink.reset_all()
    monkeypatch.setenv("TEST_OPENAI_KEY", SECRET)


def control_values(sink: FakeUpstream) -> dict[str, Any]:
    url = sink.openai_base
    return {
        "base_url": url,
        "api_base": url,
        "api_key": "sk-attacker",
        "api_version": "2024-01-01",
        "headers": {"x-injected": "1"},
        "extra_headers": {"x-injected": "1"},
        "extra_body": {"base_url": url},
        "extra_query": {"a": "b"},
        "custom_llm_provider": "openai",
        "organization": "org-evil",
        "mock_response": "I am a fake answer",
        "mock_tool_calls": [],
        "fallbacks": [{"model": "openai/gpt-4o", "api_base": url}],
        "model_list": [{"model_name": "x", "litellm_params": {"api_base": url}}],
        "callbacks": ["langfuse"],
        "success_callback": ["webhook"],
        "litellm_params": {"api_base": url},
        "litellm_call_id": "x",
        "aws_access_key_id": "AKIA",
        "vertex_credentials": "{}",
        "input_cost_per_token": 0,
        "timeout": 0.001,
        "num_retries": 100,
        "proxy_server_request": {"url": url},
    }


# (model, extra body, headers): one row per backend type and call path.
BACKENDS = {
    "dllm": ("dllm-direct", {}, {"X-Step-Kind": "classify"}),
    "openai-native": ("gpt-4.1-mini", {}, {}),
    "openai-litellm": ("gpt-4.1-mini", {"reasoning_effort": "low"}, {}),
    "anthropic-litellm": ("claude-haiku", {}, {}),
}


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_every_control_key_is_refused_and_nothing_leaves(
    client: Any,
    sink: FakeUpstream,
    fake_dllm: FakeUpstream,
    fake_openai: FakeUpstream,
    fake_anthropic: FakeUpstream,
    backend: str,
    stream: bool,
) -> None:
    model, extra, headers = BACKENDS[backend]
    for key, value in control_values(sink).items():
        body = {
            "model": model,
            "messages": [{"role": "user", "content": "Is this about billing or shipping?"}],
            "stream": stream,
            **extra,
            key: value,
        }
        r = client.post("/v1/chat/completions", json=body, headers=headers)
        assert r.status_code == 400, (key, r.status_code, r.text)
        error = r.json()["error"]
        assert error["param"] == key, (key, error)
        assert error["code"] == "forbidden_parameter"
        assert key in error["message"]
    assert sink.requests == []
    assert fake_dllm.requests == [] and fake_openai.requests == [] and fake_anthropic.requests == []


def test_unknown_parameter_is_refused_by_name(client: Any, fake_dllm: FakeUpstream) -> None:
    body = {
        "model": "auto",
        "messages": [{"role": "user", "content": "hi"}],
        "temprature": 0.2,
    }
    r = client.post("/v1/chat/completions", json=body)
    assert r.status_code == 400
    assert r.json()["error"]["param"] == "temprature"
    assert r.json()["error"]["code"] == "unknown_parameter"
    assert fake_dllm.requests == []


def test_allowed_provider_parameters_still_reach_the_upstream(
    client: Any, fake_openai: FakeUpstream, sink: FakeUpstream
) -> None:
    """The allow-list is not a deny-all: documented parameters keep working on each path."""
    body = {
        "model": "gpt-4.1-mini",
        "messages": [{"role": "user", "content": "Why was order 1234 refunded twice?"}],
        "reasoning_effort": "low",
        "presence_penalty": 0.5,
        "user": "agent-7",
    }
    r = client.post("/v1/chat/completions", json=body)
    assert r.status_code == 200, r.text
    sent = fake_openai.last_request
    assert sent.headers["authorization"] == f"Bearer {SECRET}"
    assert sent.body["presence_penalty"] == 0.5
    assert sink.requests == []


# --- below the edge: the connectors filter too ---------------------------------------------------

_MODULE = _LitellmModule()


def _sneaky(sink: FakeUpstream, **extra: Any) -> ChatRequest:
    """A request carrying control keys, built without the edge's check (as a bug might)."""
    return ChatRequest.model_validate(
        {
            "model": "auto",
            "messages": [{"role": "user", "content": "Why was order 1234 refunded twice?"}],
            "base_url": sink.openai_base,
            "api_base": sink.openai_base,
            "extra_headers": {"x-injected": "1"},
            "mock_response": "fake answer, no upstream call",
            **extra,
        }
    )


def _run_connector(conn: Any, request: ChatRequest, *, stream: bool) -> str:
    async def go() -> str:
        try:
            if stream:
                parts = [c.content or "" async for c in conn.stream(request, Deadline.after(10))]
                return "".join(parts)
            return str((await conn.complete(request, Deadline.after(10))).content)
        finally:
            await conn.aclose()

    return asyncio.run(go())


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
@pytest.mark.parametrize(
    "case",
    ["openai-native", "openai-litellm", "anthropic-litellm", "dllm"],
)
def test_connectors_drop_control_keys(
    sink: FakeUpstream,
    fake_openai: FakeUpstream,
    fake_anthropic: FakeUpstream,
    fake_dllm: FakeUpstream,
    case: str,
    stream: bool,
) -> None:
    conn: Any
    if case == "dllm":
        fake_dllm.set_reply(content="billing")
        upstream = fake_dllm
        conn = DllmConnector(
            "dllm",
            DllmBackend(type="dllm", engine="vllm", base_url=fake_dllm.openai_base, model="m"),
        )
        request = _sneaky(sink)
    else:
        anthropic = case.startswith("anthropic")
        upstream = fake_anthropic if anthropic else fake_openai
        upstream.set_reply(content="Your refund is on its way.")
        model = "anthropic/claude-haiku-4-5" if anthropic else "openai/gpt-4.1-mini"
        backend = LitellmBackend(
            type="litellm",
            model=model,
            api_key_env="TEST_OPENAI_KEY",
            base_url=upstream.url if anthropic else upstream.openai_base,
        )
        conn = LitellmConnector("ar", backend, module=_MODULE, price=None)
        extra = {"reasoning_effort": "low"} if case == "openai-litellm" else {}
        request = _sneaky(sink, **extra)
    answer = _run_connector(conn, request, stream=stream)
    assert "fake answer" not in answer  # mock_response was not honoured
    assert sink.requests == []
    sent = upstream.last_request
    assert "x-injected" not in sent.headers
    for key in ("base_url", "api_base", "extra_headers", "mock_response"):
        assert key not in (sent.body or {}), key


# --- media URLs the gateway would fetch itself ---------------------------------------------------


@pytest.mark.parametrize(
    "part",
    [
        {"type": "image_url", "image_url": {"url": "http://127.0.0.1:9/x.png"}},
        {"type": "image_url", "image_url": "file:///etc/passwd"},
        {"type": "file", "file": {"file_id": "http://127.0.0.1:9/doc.pdf"}},
        {"type": "file", "file": {"file_data": "http://127.0.0.1:9/doc.pdf"}},
        "not-an-object",
    ],
)
def test_media_urls_that_the_gateway_would_fetch_are_refused(
    client: Any, fake_anthropic: FakeUpstream, part: Any
) -> None:
    body = {
        "model": "claude-haiku",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "look"}, part]}],
    }
    r = client.post("/v1/chat/completions", json=body)
    assert r.status_code == 400, r.text
    assert "content" in r.json()["error"]["message"]
    assert fake_anthropic.requests == []


def test_remote_images_refused_for_providers_whose_sdk_downloads_them(sink: FakeUpstream) -> None:
    backend = LitellmBackend(
        type="litellm", model="gemini/gemini-2.0-flash", base_url=sink.openai_base
    )
    conn = LitellmConnector("ar-gemini", backend, module=_MODULE, price=None)
    request = ChatRequest.from_wire(
        {
            "model": "auto",
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "image_url", "image_url": {"url": "https://127.0.0.1:9/cat.png"}},
                    ],
                }
            ],
        }
    )
    with pytest.raises(ProviderRejected, match="data: URLs"):
        _run_connector(conn, request, stream=False)
    assert sink.requests == []
