"""A timed-out backend hands over to the next candidate, and a hanging primary cannot spend the
fallbacks' time (issue 15, item 1: `retry.on_timeout`, `retry.min_fallback_s`).

Before: a `ProviderTimeout` was retried on the same backend like a 503, and the primary could
use the whole request deadline, so the fallback was never tried ("request deadline reached").
Two dLLM-type backends on the fake OpenAI-wire servers keep litellm out of the timing.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from tests.support.app_client import running_app
from tests.support.fakes.upstream import FakeUpstream, hang, ok, persistent, slow_first_token, stall

POLICY = """
version: 1
backends:
  primary:
    type: dllm
    engine: vllm
    base_url: {primary}
    model: test-diffusion
    timeouts:
      {{connect_s: 1, request_s: {request_s}, first_token_s: {first_token}, stall_s: {stall}}}
    pricing: {{input_per_mtok_usd: "0.05", output_per_mtok_usd: "0.20"}}
  backup:
    type: dllm
    engine: vllm
    base_url: {backup}
    model: test-diffusion
    timeouts: {{connect_s: 1, request_s: 30, first_token_s: 30}}
    pricing: {{input_per_mtok_usd: "0.05", output_per_mtok_usd: "0.20"}}
baseline: backup
retry: {{max_attempts: 2, backoff_base_ms: 10, backoff_max_ms: 50{retry}}}
request_timeout_s: {deadline}
routes:
  - name: only
    target: primary
    fallbacks: [backup]
default_route: only
"""
BODY = {"model": "auto", "messages": [{"role": "user", "content": "Tag: billing or shipping?"}]}


def _policy(tmp_path: Path, primary: FakeUpstream, backup: FakeUpstream, **values: Any) -> Path:
    fields = {"request_s": 1.5, "retry": "", "deadline": 60, **values}
    fields.setdefault("first_token", fields["request_s"])
    fields.setdefault("stall", fields["request_s"])
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY.format(primary=primary.openai_base, backup=backup.openai_base, **fields))
    return path


def _attempts(client: Any, request_id: str) -> list[tuple[str, str]]:
    from tests.support.ledger_view import request_rows

    _, attempts = request_rows(client, request_id)
    return [(a["backend"], a["outcome"]) for a in attempts]


def test_a_timeout_moves_to_the_next_candidate(
    tmp_path: Path, fake_dllm: FakeUpstream, fake_openai: FakeUpstream
) -> None:
    fake_dllm.script([persistent(hang(10))])
    fake_openai.set_reply(content="billing")
    with running_app(_policy(tmp_path, fake_dllm, fake_openai), tmp_path) as client:
        r = client.post("/v1/chat/completions", json=BODY)
        assert r.status_code == 200, r.text
        assert r.headers["x-stepgate-backend"] == "backup"
        attempts = _attempts(client, r.headers["x-request-id"])
    assert attempts[0][0] == "primary" and attempts[0][1] != "ok"
    assert attempts[1:] == [("backup", "ok")]  # no retry of the timed-out primary
    assert len(fake_dllm.requests) == 1


def test_on_timeout_retry_keeps_the_old_behaviour(
    tmp_path: Path, fake_dllm: FakeUpstream, fake_openai: FakeUpstream
) -> None:
    fake_dllm.script([persistent(hang(10))])
    fake_openai.set_reply(content="billing")
    policy = _policy(tmp_path, fake_dllm, fake_openai, retry=", on_timeout: retry")
    with running_app(policy, tmp_path) as client:
        r = client.post("/v1/chat/completions", json=BODY)
        assert r.status_code == 200, r.text
        attempts = _attempts(client, r.headers["x-request-id"])
    assert [a[0] for a in attempts] == ["primary", "primary", "backup"]


def test_a_hanging_primary_leaves_the_fallback_its_share(
    tmp_path: Path, fake_dllm: FakeUpstream, fake_openai: FakeUpstream
) -> None:
    # Only the 6 s request deadline bounds the primary (its own timeout is 30 s): it may use
    # the deadline less min(5 s, half of what is left) = 3 s, and the backup answers in time.
    fake_dllm.script([persistent(hang(20))])
    fake_openai.set_reply(content="billing")
    policy = _policy(tmp_path, fake_dllm, fake_openai, request_s=30, deadline=6)
    with running_app(policy, tmp_path) as client:
        r = client.post("/v1/chat/completions", json=BODY)
        assert r.status_code == 200, r.text
        assert r.headers["x-stepgate-backend"] == "backup"
        stream = client.post("/v1/chat/completions", json={**BODY, "stream": True})
        assert stream.status_code == 200
        assert stream.headers["x-stepgate-backend"] == "backup"
        assert stream.text.rstrip().endswith("[DONE]")


def test_a_slow_first_token_hands_over_within_the_deadline(
    tmp_path: Path, fake_dllm: FakeUpstream, fake_openai: FakeUpstream
) -> None:
    fake_dllm.script([persistent(slow_first_token(20))])
    fake_openai.set_reply(content="billing")
    policy = _policy(tmp_path, fake_dllm, fake_openai, request_s=30, deadline=6)
    with running_app(policy, tmp_path) as client:
        r = client.post("/v1/chat/completions", json={**BODY, "stream": True})
        assert r.status_code == 200, r.text
        assert r.headers["x-stepgate-backend"] == "backup"
        assert "billing" in r.text


def test_a_stalled_stream_ends_after_stall_s_not_request_s(
    tmp_path: Path, fake_dllm: FakeUpstream, fake_openai: FakeUpstream
) -> None:
    # The primary sends its role chunk and two tokens, then goes silent for 30 s with the
    # connection open. With stall_s: 1 the gateway gives up after one silent second (an in-band
    # error, since bytes were relayed); before, the silence was bounded only by request_s (30 s).
    fake_dllm.script([stall(3, 30, ok("one two three four"))])
    policy = _policy(tmp_path, fake_dllm, fake_openai, request_s=30, deadline=40, stall=1)
    with running_app(policy, tmp_path) as client:
        started = time.monotonic()
        r = client.post("/v1/chat/completions", json={**BODY, "stream": True})
        waited = time.monotonic() - started
        assert r.status_code == 200
        assert "stalled" in r.text  # the in-band error names the cause
        assert "four" not in r.text
        assert waited < 20  # well before the fake's 30 s silence ends
        attempts = _attempts(client, r.headers["x-request-id"])
    assert attempts[0][0] == "primary" and attempts[0][1] == "error"


def test_first_token_s_is_separate_from_the_header_wait(
    tmp_path: Path, fake_dllm: FakeUpstream, fake_openai: FakeUpstream
) -> None:
    # Headers come at once, the first event after 3 s: first_token_s: 1 hands over to the backup
    # although request_s (30 s) would wait.
    fake_dllm.script([persistent(slow_first_token(3))])
    fake_openai.set_reply(content="billing")
    policy = _policy(tmp_path, fake_dllm, fake_openai, request_s=30, deadline=40, first_token=1)
    with running_app(policy, tmp_path) as client:
        r = client.post("/v1/chat/completions", json={**BODY, "stream": True})
        assert r.status_code == 200, r.text
        assert r.headers["x-stepgate-backend"] == "backup"
