"""End to end: `stepgate serve` as a process, driven with the official anthropic SDK, unchanged
(base_url pointed at the gateway): sync, async, streaming and tools."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import anthropic
import pytest

from tests.ingress.test_anthropic_ingress import POLICY
from tests.support.e2e_server import serve
from tests.support.fakes.upstream import FakeUpstream

pytestmark = pytest.mark.e2e

HINT = {"X-Step-Kind": "lookup"}
# The module-scoped server starts before the autouse fixture that sets these.
PROVIDER_KEYS = {"TEST_OPENAI_KEY": "test-openai-key", "TEST_ANTHROPIC_KEY": "test-anthropic-key"}
REFUND_TOOL: Any = {
    "name": "refund",
    "description": "Refund an order",
    "input_schema": {
        "type": "object",
        "properties": {"order_id": {"type": "string"}, "amount": {"type": "number"}},
        "required": ["order_id", "amount"],
    },
}


@pytest.fixture(scope="module")
def gateway_url(
    tmp_path_factory: pytest.TempPathFactory,
    fake_dllm_server: FakeUpstream,
    fake_openai_server: FakeUpstream,
    fake_anthropic_server: FakeUpstream,
) -> Iterator[str]:
    """One gateway for the module; each test resets the fakes (the function-scoped views)."""
    workdir = tmp_path_factory.mktemp("anthropic-e2e")
    policy = workdir / "policy.yaml"
    policy.write_text(
        POLICY.format(
            dllm=fake_dllm_server.openai_base,
            openai=fake_openai_server.openai_base,
            anthropic=fake_anthropic_server.url,
        )
    )
    with serve(policy, workdir, env=PROVIDER_KEYS) as url:
        yield url


def sdk(url: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=url, api_key="unused", max_retries=0)


def test_sync_message_with_routing_headers(gateway_url: str, fake_dllm: FakeUpstream) -> None:
    fake_dllm.set_reply(content="It ships tomorrow.", completion_tokens=3)
    raw = sdk(gateway_url).messages.with_raw_response.create(
        model="auto",
        max_tokens=100,
        system="You answer from the order record.",
        messages=[{"role": "user", "content": "When does order A-7 ship?"}],
        extra_headers=HINT,
    )
    message = raw.parse()
    assert message.content[0].type == "text"
    assert message.content[0].text == "It ships tomorrow."
    assert message.stop_reason == "end_turn"
    assert message.usage.output_tokens == 3
    assert raw.headers["x-stepgate-backend"] == "dllm"
    assert raw.headers["x-stepgate-route"] == "fast"
    assert float(raw.headers["x-stepgate-cost-usd"]) > 0
    # The SDK's own request id (`request-id`, Anthropic's header) is the gateway's ledger key.
    assert message._request_id == raw.headers["x-request-id"]
    assert fake_dllm.last_request.body["messages"][0]["role"] == "system"


def test_async_messages(gateway_url: str, fake_dllm: FakeUpstream) -> None:
    fake_dllm.set_reply(content="shipping")

    async def run() -> list[str]:
        client = anthropic.AsyncAnthropic(base_url=gateway_url, api_key="unused")
        results = await asyncio.gather(
            *(
                client.messages.create(
                    model="auto",
                    max_tokens=20,
                    messages=[{"role": "user", "content": f"ticket {i}"}],
                    extra_headers=HINT,
                )
                for i in range(6)
            )
        )
        await client.close()
        return [r.content[0].text for r in results]  # type: ignore[union-attr]

    assert asyncio.run(run()) == ["shipping"] * 6


def test_streaming_text_and_final_usage(gateway_url: str, fake_dllm: FakeUpstream) -> None:
    fake_dllm.set_reply(content="your parcel ships tomorrow", completion_tokens=4)
    with sdk(gateway_url).messages.stream(
        model="auto",
        max_tokens=50,
        messages=[{"role": "user", "content": "when does it ship?"}],
        extra_headers=HINT,
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "your parcel ships tomorrow"
    assert final.usage.output_tokens == 4
    assert final.stop_reason == "end_turn"


def test_tools_round_trip(gateway_url: str, fake_openai: FakeUpstream) -> None:
    fake_openai.set_reply(
        content="",
        tool_calls=[{"name": "refund", "arguments": {"order_id": "A-7", "amount": 12.5}}],
    )
    client = sdk(gateway_url)
    first = client.messages.create(
        model="auto",
        max_tokens=200,
        tools=[REFUND_TOOL],
        messages=[{"role": "user", "content": "Refund 12.50 on A-7 if the policy allows it."}],
        extra_headers={"X-Step-Kind": "reason"},
    )
    assert first.stop_reason == "tool_use"
    use = first.content[-1]
    assert use.type == "tool_use" and use.name == "refund"
    assert use.input == {"order_id": "A-7", "amount": 12.5}
    fake_openai.set_reply(content="Refunded.")
    second = client.messages.create(
        model="auto",
        max_tokens=200,
        tools=[REFUND_TOOL],
        messages=[
            {"role": "user", "content": "Refund 12.50 on A-7 if the policy allows it."},
            {"role": "assistant", "content": first.content},  # type: ignore[typeddict-item]
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "ok"}],
            },
        ],
        extra_headers={"X-Step-Kind": "reason"},
    )
    assert second.content[0].text == "Refunded."  # type: ignore[union-attr]
    sent = fake_openai.last_request.body["messages"]
    assert sent[-1] == {"role": "tool", "tool_call_id": use.id, "content": "ok"}
    assert sent[-2]["tool_calls"][0]["id"] == use.id


def test_streamed_tool_use_accumulates_in_the_sdk(
    gateway_url: str, fake_openai: FakeUpstream
) -> None:
    args = {"order_id": "B-12", "amount": 3}
    fake_openai.set_reply(content="", tool_calls=[{"name": "refund", "arguments": args}])
    with sdk(gateway_url).messages.stream(
        model="auto",
        max_tokens=200,
        tools=[REFUND_TOOL],
        messages=[{"role": "user", "content": "Refund B-12"}],
        extra_headers={"X-Step-Kind": "reason"},
    ) as stream:
        final = stream.get_final_message()
    use = final.content[-1]
    assert use.type == "tool_use" and use.input == args


def test_malformed_body_raises_the_sdks_bad_request(gateway_url: str) -> None:
    with pytest.raises(anthropic.BadRequestError) as caught:
        sdk(gateway_url).messages.create(
            model="auto",
            max_tokens=10,
            messages=[{"role": "user", "content": [{"type": "video", "url": "x"}]}],  # type: ignore[list-item]
        )
    assert caught.value.status_code == 400
    body: Any = caught.value.body
    assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
    assert "messages.0.content.0" in body["error"]["message"]


def test_unroutable_native_feature_is_a_clear_400(gateway_url: str) -> None:
    with pytest.raises(anthropic.BadRequestError) as caught:
        sdk(gateway_url).messages.create(
            model="auto",
            max_tokens=10,
            system=[{"type": "text", "text": "policy", "cache_control": {"type": "ephemeral"}}],
            messages=[{"role": "user", "content": "Why was I charged twice?"}],
            extra_headers={"X-Step-Kind": "reason"},
        )
    assert "cache_control" in str(caught.value)
