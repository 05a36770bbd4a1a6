"""GPU-hour priced backends bill the time of calls they worked on, never a refused call."""

from __future__ import annotations

from pathlib import Path

from tests.support.app_client import running_app
from tests.support.e2e_server import free_port
from tests.support.fakes.upstream import FakeUpstream, persistent, status
from tests.support.ledger_view import request_rows

POLICY = """
version: 1
backends:
  gpu-down:
    type: dllm
    engine: vllm
    base_url: http://127.0.0.1:{dead}/v1
    model: m
    timeouts: {{connect_s: 1, request_s: 5}}
    pricing: {{gpu_hour_usd: "3600"}}
  gpu-up:
    type: dllm
    engine: vllm
    base_url: {dllm}
    model: m
    timeouts: {{connect_s: 1, request_s: 5}}
    pricing: {{gpu_hour_usd: "3600"}}
baseline: gpu-up
retry: {{max_attempts: 1}}
routes:
  - name: fast
    target: gpu-down
    fallbacks: [gpu-up]
default_route: fast
"""

BODY = {"model": "auto", "messages": [{"role": "user", "content": "billing or shipping?"}]}


def test_refused_and_rejected_calls_cost_nothing_answered_call_costs_its_time(
    tmp_path: Path, fake_dllm: FakeUpstream
) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY.format(dead=free_port(), dllm=fake_dllm.openai_base))
    fake_dllm.latency_s = 0.05
    with running_app(policy, tmp_path) as client:
        r = client.post("/v1/chat/completions", json=BODY, headers={"X-Step-Kind": "classify"})
        assert r.status_code == 200, r.text
        _, atts = request_rows(client, r.headers["x-request-id"])
        refused, answered = atts
        assert (refused["backend"], refused["outcome"]) == ("gpu-down", "error")
        assert refused["cost_nanos"] == 0
        # $3600/GPU-hour is one dollar a second: at least the fake's 50 ms of model time.
        assert answered["cost_nanos"] >= 50_000_000

        fake_dllm.script([persistent(status(503))])
        r = client.post("/v1/chat/completions", json=BODY, headers={"X-Step-Kind": "classify"})
        assert r.status_code == 503
        _, atts = request_rows(client, r.headers["x-request-id"])
        assert [a["cost_nanos"] for a in atts] == [0, 0]


SHARE_POLICY = """
version: 1
backends:
  gpu:
    type: dllm
    engine: vllm
    base_url: {dllm}
    model: m
    timeouts: {{connect_s: 1, request_s: 5}}
    pricing:
      gpu_hour_usd: "3600"
      gpu_prompt_tokens_per_s: 1000
      gpu_completion_tokens_per_s: 100
baseline: gpu
retry: {{max_attempts: 1}}
routes:
  - name: fast
    target: gpu
default_route: fast
"""


def test_gpu_share_bills_the_tokens_at_the_gpus_throughput_not_the_wall_time(
    tmp_path: Path, fake_dllm: FakeUpstream
) -> None:
    """$3600 per GPU-hour is $1 per GPU-second: 1,000 prompt tokens or 100 answer tokens take one
    GPU-second, so a token costs 1,000,000 or 10,000,000 nano-dollars, however long the call
    waited (the GPU served others meanwhile)."""
    policy = tmp_path / "policy.yaml"
    policy.write_text(SHARE_POLICY.format(dllm=fake_dllm.openai_base))
    fake_dllm.set_reply(content="billing", prompt_tokens=40, completion_tokens=2)
    fake_dllm.latency_s = 0.2  # ten times what the tokens' share is worth
    with running_app(policy, tmp_path) as client:
        r = client.post("/v1/chat/completions", json=BODY, headers={"X-Step-Kind": "classify"})
        assert r.status_code == 200, r.text
        req, atts = request_rows(client, r.headers["x-request-id"])
    assert atts[0]["cost_nanos"] == 40 * 1_000_000 + 2 * 10_000_000
    assert req["cost_nanos"] == 60_000_000
