"""What a failure costs and how long the gateway itself took (issue 15): a stream cut before
its usage chunk is billed from the tokens actually received, not from a chars/4 estimate, and
`x-stepgate-overhead-ms` does not count the backoff between retries as gateway time.
"""

from __future__ import annotations

from pathlib import Path

from tests.support.app_client import running_app
from tests.support.fakes.upstream import FakeUpstream, cut_stream, ok, status
from tests.support.ledger_view import request_rows

POLICY = """
version: 1
backends:
  dllm:
    type: dllm
    engine: vllm
    base_url: {dllm}
    model: test-diffusion
    logprobs: {logprobs}
    timeouts: {{connect_s: 1, request_s: 5}}
    pricing: {{input_per_mtok_usd: "0.05", output_per_mtok_usd: "0.20"}}
baseline: dllm
retry: {{max_attempts: 2, backoff_base_ms: 400, backoff_max_ms: 400}}
routes:
  - name: only
    target: dllm
default_route: only
"""
BODY = {"model": "auto", "messages": [{"role": "user", "content": "Write the reply."}]}
# Long tokens: four characters or more each, so chars/4 would bill more than was generated.
TOKENS = [" unfortunately", " replacement", " shipments", " acknowledged", " tomorrow", " ok"]


def _policy(tmp_path: Path, dllm: FakeUpstream, *, logprobs: bool) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY.format(dllm=dllm.openai_base, logprobs=str(logprobs).lower()))
    return path


def test_a_cut_stream_is_billed_the_tokens_received(
    tmp_path: Path, fake_dllm: FakeUpstream
) -> None:
    for logprobs in (False, True):
        fake_dllm.clear()
        # The role chunk and four content tokens, then the connection drops.
        fake_dllm.script([cut_stream(5, ok(tokens=TOKENS))])
        with running_app(_policy(tmp_path, fake_dllm, logprobs=logprobs), tmp_path) as client:
            r = client.post("/v1/chat/completions", json={**BODY, "stream": True})
            assert r.status_code == 200
            _, attempts = request_rows(client, r.headers["x-request-id"])
        sent = fake_dllm.usage_totals()["completion_tokens"]
        assert sent == 4
        assert attempts[0]["completion_tokens"] == sent, logprobs


def test_overhead_excludes_the_backoff_between_retries(
    tmp_path: Path, fake_dllm: FakeUpstream
) -> None:
    fake_dllm.script([status(503)])  # then the default reply: the retry succeeds
    with running_app(_policy(tmp_path, fake_dllm, logprobs=True), tmp_path) as client:
        r = client.post("/v1/chat/completions", json=BODY)
        assert r.status_code == 200, r.text
        req, attempts = request_rows(client, r.headers["x-request-id"])
    assert [a["outcome"] for a in attempts] == ["error", "ok"]
    # The backoff waited 200-400 ms (jittered); the gateway's own share is a few ms.
    assert req["latency_ms"] >= 200
    assert float(r.headers["x-stepgate-overhead-ms"]) < 100
