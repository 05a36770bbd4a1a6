"""litellm backends over the native OpenAI wire (`transport: auto`) against real HTTP fakes.

What the upstream receives is asserted on, including that the JSON body equals what
`litellm.acompletion` sends for the same request (`transport: litellm`): litellm stays the
authority on provider, model name and parameter mapping; only the HTTP client differs. Faults on
the AR route (429, 500, fallback, cut and malformed streams) run in test_gateway_resilience.py.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
import pytest

from connectors.litellm_ar.config import LitellmBackend
from connectors.litellm_ar.connector import LitellmConnector, _LitellmModule
from gateway.core.deadline import Deadline
from gateway.core.errors import (
    ProviderAuthError,
    ProviderError,
    ProviderRejected,
    ProviderTimeout,
)
from gateway.core.types import ChatRequest, Chunk, Completion
from tests.support.fakes.upstream import (
    FakeUpstream,
    persistent,
    slow_first_token,
    status,
)

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "lookup_order",
            "parameters": {
                "type": "object",
                "properties": {"order_id": {"type": "string"}},
                "additionalProperties": False,
            },
        },
    }
]
REGEX_TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "find_customer",
            "parameters": {
                "type": "object",
                "properties": {"name": {"type": "string", "pattern": "^\\p{L}+$"}},
            },
        },
    }
]
IMAGE_MESSAGES = [
    {
        "role": "user",
        "content": [
            {"type": "text", "text": "Is this parcel damaged?"},
            {"type": "image_url", "image_url": "https://example.com/parcel.png"},
        ],
    }
]
SYSTEM_MESSAGES = [
    {"role": "system", "content": "You are a support agent."},
    {"role": "user", "content": "Where is my parcel?"},
]
_MODULE = _LitellmModule()  # one import per test session, as the gateway has one per process


def connector(fake: FakeUpstream, model: str, **config: Any) -> LitellmConnector:
    config.setdefault("base_url", fake.openai_base)
    backend = LitellmBackend(type="litellm", model=model, **config)
    return LitellmConnector("ar-test", backend, module=_MODULE, price=None)


def chat(**extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": "auto",
        "messages": [{"role": "user", "content": "Why was order 1234 refunded twice?"}],
    }
    body.update(extra)
    return body


def complete(conn: LitellmConnector, body: dict[str, Any]) -> Completion:
    async def go() -> Completion:
        try:
            return await conn.complete(ChatRequest.from_wire(body), Deadline.after(10))
        finally:
            await conn.aclose()

    return asyncio.run(go())


def stream(conn: LitellmConnector, body: dict[str, Any]) -> list[Chunk]:
    async def go() -> list[Chunk]:
        try:
            return [c async for c in conn.stream(ChatRequest.from_wire(body), Deadline.after(10))]
        finally:
            await conn.aclose()

    return asyncio.run(go())


def via_litellm_sdk(fake: FakeUpstream) -> bool:
    """litellm's OpenAI path is the openai SDK (x-stainless-*); its own handler says litellm/."""
    headers = fake.requests[-1].headers
    return "x-stainless-lang" in headers or headers.get("user-agent", "").startswith("litellm/")


# --- what the upstream receives ---------------------------------------------------------------


def test_native_request_body_and_answer(fake_openai: FakeUpstream) -> None:
    fake_openai.set_reply(content="Refunded twice by mistake.", prompt_tokens=7)
    conn = connector(fake_openai, "openai/gpt-4.1-mini", api_key_env="TEST_OPENAI_KEY")
    body = chat(
        temperature=0.2,
        top_p=0.9,
        max_tokens=64,
        seed=7,
        stop=["\n\n"],
        user="agent-7",
        top_k=5,  # not an OpenAI parameter: litellm forwards it as-is
        metadata={"ticket": "1234"},  # litellm's own logging payload: never forwarded
        tools=TOOLS,
        tool_choice="auto",
    )
    completion = complete(conn, body)
    assert completion.content == "Refunded twice by mistake."
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (7, 4)
    got = fake_openai.requests[-1]
    assert got.path == "/v1/chat/completions"
    assert got.headers["authorization"] == "Bearer test-openai-key"
    assert not via_litellm_sdk(fake_openai)
    assert got.body == {
        "model": "gpt-4.1-mini",
        "messages": body["messages"],
        "temperature": 0.2,
        "top_p": 0.9,
        "max_tokens": 64,
        "seed": 7,
        "stop": ["\n\n"],
        "user": "agent-7",
        "top_k": 5,
        "tools": TOOLS,
        "tool_choice": "auto",
    }


def test_native_stream_asks_for_usage_and_parses_chunks(fake_openai: FakeUpstream) -> None:
    fake_openai.set_reply(content="one two three")
    chunks = stream(
        connector(fake_openai, "openai/gpt-4.1-mini", api_key_env="TEST_OPENAI_KEY"), chat()
    )
    assert "".join(c.content or "" for c in chunks) == "one two three"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 3
    got = fake_openai.requests[-1].body
    assert got["stream"] is True and got["stream_options"] == {"include_usage": True}
    assert not via_litellm_sdk(fake_openai)


def test_o_series_parameters_are_mapped_by_litellm(fake_openai: FakeUpstream) -> None:
    conn = connector(fake_openai, "openai/o3-mini", api_key_env="TEST_OPENAI_KEY")
    complete(conn, chat(max_tokens=50, temperature=0.2, top_p=0.9, logprobs=True, seed=1))
    got = fake_openai.requests[-1].body
    assert not via_litellm_sdk(fake_openai)
    assert got["model"] == "o3-mini"
    assert got["max_completion_tokens"] == 50
    for dropped in ("max_tokens", "temperature", "top_p", "logprobs"):
        assert dropped not in got
    assert got["seed"] == 1


def test_mapped_parameters_are_reused_only_for_equal_values(fake_openai: FakeUpstream) -> None:
    conn = connector(fake_openai, "openai/o3-mini", api_key_env="TEST_OPENAI_KEY")
    sent = []
    for temperature in (1.0, 0.2, 1.0, 0.2):  # o-series take temperature=1 only
        complete(conn, chat(max_tokens=50, temperature=temperature))
        sent.append(fake_openai.requests[-1].body.get("temperature"))
    assert sent == [1.0, None, 1.0, None]


PARITY_CASES = [
    # (model, extra config, request params, stream)
    ("openai/gpt-4.1-mini", {}, {"temperature": 0.3, "max_tokens": 20, "top_k": 4}, False),
    ("openai/gpt-4.1-mini", {}, {"tools": TOOLS, "response_format": {"type": "json_object"}}, True),
    # a model litellm does not know (any OpenAI-compatible server): `user` is not sent,
    # a tool_choice without tools is dropped
    ("openai/bench-ar", {}, {"user": "u1", "tool_choice": "auto", "max_tokens": 9}, False),
    ("openai/o3-mini", {}, {"max_tokens": 50, "temperature": 0.2, "top_p": 0.5}, True),
    ("openai/o3-mini", {}, {"max_tokens": 50, "temperature": 1.0}, False),
    # vLLM: litellm strips additionalProperties from tool schemas; its default key
    ("hosted_vllm/support-llm", {"api_key_env": None}, {"tools": TOOLS, "temperature": 0.1}, False),
    # litellm's request transform: an image_url given as a string becomes {"url": ...}, a
    # schema pattern Python's `re` cannot compile is dropped for OpenAI
    ("openai/gpt-4.1-mini", {}, {"tools": REGEX_TOOLS, "tool_choice": "required"}, False),
    ("openai/gpt-4.1-mini", {}, {"messages": IMAGE_MESSAGES}, False),
    ("hosted_vllm/support-llm", {}, {"messages": IMAGE_MESSAGES}, True),
    # o-series: litellm's own message rules
    ("openai/o3-mini", {}, {"messages": SYSTEM_MESSAGES, "max_tokens": 30}, False),
]


@pytest.mark.parametrize(("model", "config", "params", "streaming"), PARITY_CASES)
def test_native_body_equals_what_litellm_sends(
    fake_openai: FakeUpstream,
    model: str,
    config: dict[str, Any],
    params: dict[str, Any],
    streaming: bool,
) -> None:
    config = {"api_key_env": "TEST_OPENAI_KEY", **config}
    messages = [
        {"role": "developer", "content": "Answer in one sentence."},
        {"role": "user", "content": "Where is my parcel?"},
    ]
    body = chat(**{"messages": messages, **params})
    sent = orjson.dumps(body)
    received = []
    for transport in ("litellm", "auto"):
        conn = connector(fake_openai, model, transport=transport, **config)
        answer = stream(conn, body) if streaming else [complete(conn, body)]
        assert answer
        assert via_litellm_sdk(fake_openai) is (transport == "litellm")
        received.append(fake_openai.requests[-1])
    assert orjson.dumps(body) == sent  # neither transport edits the caller's request
    via_litellm, native = received
    assert native.path == via_litellm.path
    assert native.headers["authorization"] == via_litellm.headers["authorization"]
    assert native.body == via_litellm.body


def test_transport_litellm_goes_through_litellm(fake_openai: FakeUpstream) -> None:
    conn = connector(
        fake_openai, "openai/gpt-4.1-mini", api_key_env="TEST_OPENAI_KEY", transport="litellm"
    )
    complete(conn, chat())
    assert fake_openai.requests[-1].headers["user-agent"].startswith("AsyncOpenAI/Python")


@pytest.mark.parametrize(
    ("model", "params"),
    [
        ("openai/bench-ar", {"reasoning_effort": "low"}),  # litellm resolves reasoning levels
        ("openai/gpt-5", {"tools": TOOLS}),  # litellm may bridge these to the Responses API
    ],
)
def test_requests_litellm_decides_go_through_litellm(
    fake_openai: FakeUpstream, model: str, params: dict[str, Any]
) -> None:
    conn = connector(fake_openai, model, api_key_env="TEST_OPENAI_KEY")
    complete(conn, chat())
    assert not via_litellm_sdk(fake_openai)
    conn = connector(fake_openai, model, api_key_env="TEST_OPENAI_KEY")
    complete(conn, chat(**params))
    assert via_litellm_sdk(fake_openai)


def test_anthropic_stays_on_litellm(fake_anthropic: FakeUpstream) -> None:
    fake_anthropic.set_reply(content="Your refund is on its way.")
    conn = LitellmConnector(
        "ar-anthropic",
        LitellmBackend(
            type="litellm",
            model="anthropic/claude-haiku-4-5",
            api_key_env="TEST_ANTHROPIC_KEY",
            base_url=fake_anthropic.url,
        ),
        module=_MODULE,
        price=None,
    )
    assert complete(conn, chat(max_tokens=30)).content == "Your refund is on its way."
    got = fake_anthropic.requests[-1]
    assert got.path == "/v1/messages"
    assert got.headers["x-api-key"] == "test-anthropic-key"
    assert got.body["model"] == "claude-haiku-4-5"


# --- readiness, keys, timeouts ----------------------------------------------------------------


def test_ready_after_import_and_resolution(fake_openai: FakeUpstream) -> None:
    module = _LitellmModule()
    backend = LitellmBackend(
        type="litellm", model="openai/gpt-4.1-mini", base_url=fake_openai.openai_base
    )
    conn = LitellmConnector("ar-test", backend, module=module, price=None)
    assert not conn.ready
    asyncio.run(conn.warm())
    assert conn.ready


def test_unplaceable_model_is_ready_and_fails_per_call(fake_openai: FakeUpstream) -> None:
    conn = connector(fake_openai, "no-such-provider/model-x", api_key_env="TEST_OPENAI_KEY")
    asyncio.run(conn.warm())
    assert conn.ready
    with pytest.raises(ProviderError) as err:
        complete(conn, chat())
    assert isinstance(err.value, ProviderRejected), err.value
    assert not fake_openai.requests


def test_missing_key_is_named_and_nothing_is_sent(
    fake_openai: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TEST_OPENAI_KEY")
    conn = connector(fake_openai, "openai/gpt-4.1-mini", api_key_env="TEST_OPENAI_KEY")
    with pytest.raises(ProviderAuthError, match="TEST_OPENAI_KEY is not set"):
        complete(conn, chat())
    assert not fake_openai.requests


def test_no_key_at_all_is_an_auth_error_before_any_call(
    fake_openai: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)  # litellm's default for `openai`
    conn = connector(fake_openai, "openai/gpt-4.1-mini")
    with pytest.raises(ProviderAuthError, match="api_key_env"):
        complete(conn, chat())
    assert not fake_openai.requests


def test_first_token_timeout_applies_to_native_streams(fake_openai: FakeUpstream) -> None:
    fake_openai.script([slow_first_token(3)])
    conn = connector(
        fake_openai,
        "openai/gpt-4.1-mini",
        api_key_env="TEST_OPENAI_KEY",
        timeouts={"connect_s": 1, "request_s": 10, "first_token_s": 0.3},
    )
    started = time.monotonic()
    with pytest.raises(ProviderTimeout):
        stream(conn, chat())
    assert time.monotonic() - started < 2


# --- through the gateway (faults on this route: test_gateway_resilience.py's `wire` fixture) --


def test_gateway_ar_route_is_native_and_anthropic_is_litellm(
    client: Any, fake_openai: FakeUpstream, fake_anthropic: FakeUpstream
) -> None:
    fake_openai.script([persistent(status(503))])
    fake_anthropic.set_reply(content="from anthropic")
    r = client.post("/v1/chat/completions", json=chat(), headers={"X-Step-Kind": "reason"})
    assert r.status_code == 200, r.text
    assert r.headers["x-stepgate-backend"] == "ar-anthropic"
    assert fake_openai.requests[-1].body["model"] == "gpt-4.1-mini"
    assert not via_litellm_sdk(fake_openai)
    assert fake_anthropic.requests[-1].path == "/v1/messages"


def test_readyz_reports_the_native_backend_ready(client: Any) -> None:
    deadline = time.monotonic() + 30
    while not client.get("/readyz").json()["backends"]["ar-openai"]["ready"]:
        assert time.monotonic() < deadline, "litellm never finished importing"
        time.sleep(0.05)


def test_litellm_objects_are_kept_out_of_full_collections() -> None:
    """After the lazy import, litellm's module objects are frozen (gc.freeze): a full cyclic
    collection would otherwise walk all of them and stall the event loop."""
    import gc

    module = _LitellmModule()
    litellm = asyncio.run(module.get())
    cost_map = litellm.model_cost
    assert gc.is_tracked(cost_map)
    assert not any(obj is cost_map for obj in gc.get_objects())  # not in generations 0-2
