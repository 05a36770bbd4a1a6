"""End to end: `stepgate serve` as a process, driven with the official openai SDK."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from tests.support.e2e_server import serve
from tests.support.fakes.upstream import FakeUpstream, cut_stream

pytestmark = pytest.mark.e2e

HINT = {"X-Step-Kind": "classify"}


@pytest.fixture
def gateway_url(policy_file: Path, tmp_path: Path) -> Iterator[str]:
    with serve(policy_file, tmp_path) as url:
        yield url


def sdk(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)


def test_sync_completion_with_routing_headers(gateway_url: str, fake_dllm: FakeUpstream) -> None:
    fake_dllm.set_reply(content="billing")
    raw = sdk(gateway_url).chat.completions.with_raw_response.create(
        model="auto",
        messages=[{"role": "user", "content": "billing or shipping?"}],
        extra_headers=HINT,
    )
    completion = raw.parse()
    assert completion.choices[0].message.content == "billing"
    assert raw.headers["x-stepgate-backend"] == "dllm"
    assert raw.headers["x-stepgate-route"] == "fast"
    assert float(raw.headers["x-stepgate-overhead-ms"]) >= 0


def test_async_completion(gateway_url: str, fake_dllm: FakeUpstream) -> None:
    fake_dllm.set_reply(content="shipping")

    async def run() -> list[str]:
        client = openai.AsyncOpenAI(base_url=f"{gateway_url}/v1", api_key="unused")
        results = await asyncio.gather(
            *(
                client.chat.completions.create(
                    model="auto",
                    messages=[{"role": "user", "content": f"ticket {i}"}],
                    extra_headers=HINT,
                )
                for i in range(8)
            )
        )
        await client.close()
        return [r.choices[0].message.content or "" for r in results]

    assert asyncio.run(run()) == ["shipping"] * 8


def test_streaming_with_usage(gateway_url: str, fake_dllm: FakeUpstream) -> None:
    fake_dllm.set_reply(content="your parcel ships tomorrow")
    stream = sdk(gateway_url).chat.completions.create(
        model="auto",
        messages=[{"role": "user", "content": "when does it ship?"}],
        stream=True,
        stream_options={"include_usage": True},
        extra_headers=HINT,
    )
    text, usage = "", None
    for chunk in stream:
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
        if chunk.usage:
            usage = chunk.usage
    assert text == "your parcel ships tomorrow"
    assert usage is not None and usage.completion_tokens == 4


def test_tools_round_trip(gateway_url: str, fake_openai: FakeUpstream) -> None:
    fake_openai.set_reply(
        content="",
        tool_calls=[{"name": "refund", "arguments": {"order_id": "A-7", "amount": 12.5}}],
    )
    tools = [
        {
            "type": "function",
            "function": {
                "name": "refund",
                "parameters": {
                    "type": "object",
                    "properties": {"order_id": {"type": "string"}, "amount": {"type": "number"}},
                },
            },
        }
    ]
    completion = sdk(gateway_url).chat.completions.create(
        model="gpt-4.1-mini",
        messages=[{"role": "user", "content": "refund A-7"}],
        tools=tools,
        tool_choice="auto",  # type: ignore[arg-type]
    )
    call = completion.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert call.function.name == "refund"  # type: ignore[union-attr]
    assert json.loads(call.function.arguments) == {"order_id": "A-7", "amount": 12.5}  # type: ignore[union-attr]
    assert fake_openai.requests[-1].body["tools"] == tools


def test_stream_cut_raises_in_the_sdk(gateway_url: str, fake_dllm: FakeUpstream) -> None:
    fake_dllm.set_reply(content="one two three four five")
    fake_dllm.script([cut_stream(after_chunks=2)])
    stream = sdk(gateway_url).chat.completions.create(
        model="auto",
        messages=[{"role": "user", "content": "x"}],
        stream=True,
        extra_headers=HINT,
    )
    with pytest.raises(openai.APIError):
        for _ in stream:
            pass


def test_errors_are_sdk_exceptions(gateway_url: str) -> None:
    client = sdk(gateway_url)
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(
            model="no-such-model", messages=[{"role": "user", "content": "x"}]
        )
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="auto", messages=[])


def test_refuses_several_workers_without_redis(policy_file: Path, tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "gateway", "serve", "--policy", str(policy_file), "--workers", "2"],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=tmp_path,
        env={k: v for k, v in __import__("os").environ.items() if k != "STEPGATE_REDIS_URL"},
    )
    assert proc.returncode == 2
    assert "STEPGATE_REDIS_URL" in proc.stderr


def test_refuses_invalid_policy(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nbackends: {}\n")
    proc = subprocess.run(
        [sys.executable, "-m", "gateway", "serve", "--policy", str(bad)],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=tmp_path,
    )
    assert proc.returncode == 1
    assert f"{bad}:" in proc.stderr


def test_client_leaving_mid_body_is_not_logged_as_a_gateway_error(
    gateway_url: str, tmp_path: Path
) -> None:
    import socket
    import time

    host, port = gateway_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
            b'Content-Type: application/json\r\nContent-Length: 5000\r\n\r\n{"model": '
        )
        time.sleep(0.2)
    time.sleep(0.5)
    assert sdk(gateway_url).models.list().data  # still serving
    log = "".join(p.read_text() for p in tmp_path.glob("server-*.log"))
    assert "unhandled error" not in log
    assert "Traceback" not in log
