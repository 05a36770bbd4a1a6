"""Circuit breakers in the request path (issue 15, item 2).

A backend that keeps failing is skipped without a call while its breaker is open (an attempt
recorded as `skipped`, costing nothing), `/readyz` and `stepgate_backend_up` show it, and after
the cooldown one probe brings it back. With Redis, two gateways agree on the state.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.support.app_client import running_app
from tests.support.fakes.upstream import FakeUpstream, persistent, status
from tests.support.ledger_view import request_rows

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
  backup:
    type: dllm
    engine: openai
    base_url: {backup}
    model: test-backup
    timeouts: {{connect_s: 1, request_s: 5}}
    pricing: {{input_per_mtok_usd: "0.40", output_per_mtok_usd: "1.60"}}
baseline: backup
retry: {{max_attempts: 2, backoff_base_ms: 1, backoff_max_ms: 2}}
circuit_breaker: {{failures: 3, cooldown_s: {cooldown}}}
routes:
  - name: fast
    target: dllm
    fallbacks: [backup]
default_route: fast
"""
BODY = {"model": "auto", "messages": [{"role": "user", "content": "billing or shipping?"}]}
REDIS_URL = "redis://127.0.0.1:6379/12"  # a database of its own: the breakers hash is global


def _policy(tmp_path: Path, dllm: FakeUpstream, backup: FakeUpstream, cooldown: float) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(
        POLICY.format(dllm=dllm.openai_base, backup=backup.openai_base, cooldown=cooldown)
    )
    return path


@pytest.fixture
def outage(fake_dllm: FakeUpstream, fake_openai: FakeUpstream) -> Iterator[None]:
    fake_dllm.script([persistent(status(503))])
    fake_openai.set_reply("shipping")
    yield


def _backend_up(client: Any, backend: str) -> float:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(f'stepgate_backend_up{{backend="{backend}"}}'):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no stepgate_backend_up sample for {backend}")


def _transitions(client: Any, backend: str, state: str) -> float:
    prefix = f'stepgate_circuit_transitions_total{{backend="{backend}",state="{state}"}}'
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(prefix):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_an_open_breaker_skips_the_dead_backend_at_no_cost(
    tmp_path: Path, fake_dllm: FakeUpstream, fake_openai: FakeUpstream, outage: None
) -> None:
    with running_app(_policy(tmp_path, fake_dllm, fake_openai, 60), tmp_path) as client:
        assert _backend_up(client, "dllm") == 1.0
        ids = []
        for _ in range(5):
            r = client.post("/v1/chat/completions", json=BODY)
            assert r.status_code == 200, r.text  # the fallback answers every request
            ids.append(r.headers["x-request-id"])
        # 3 failed calls (two requests' worth with 2 attempts each) open it: only the first
        # two requests reached the dead backend.
        assert len(fake_dllm.requests) == 3
        _, first = request_rows(client, ids[0])
        assert [(a["backend"], a["outcome"]) for a in first] == [
            ("dllm", "error"),
            ("dllm", "error"),
            ("backup", "ok"),
        ]
        _, later = request_rows(client, ids[-1])
        assert [(a["backend"], a["outcome"]) for a in later] == [
            ("dllm", "skipped"),
            ("backup", "ok"),
        ]
        skipped = later[0]
        assert skipped["error_class"] == "provider_circuit_open"
        assert skipped["cost_nanos"] == 0 and skipped["prompt_tokens"] == 0
        ready = client.get("/readyz").json()
        assert ready["backends"]["dllm"]["ready"] is False
        assert ready["backends"]["dllm"]["circuit"]["state"] == "open"
        assert ready["backends"]["backup"]["ready"] is True
        assert _backend_up(client, "dllm") == 0.0
        assert _transitions(client, "dllm", "open") == 1.0


def test_half_open_probe_brings_the_backend_back(
    tmp_path: Path, fake_dllm: FakeUpstream, fake_openai: FakeUpstream, outage: None
) -> None:
    with running_app(_policy(tmp_path, fake_dllm, fake_openai, 0.5), tmp_path) as client:
        for _ in range(2):
            client.post("/v1/chat/completions", json=BODY)
        assert client.get("/readyz").json()["backends"]["dllm"]["circuit"]["state"] == "open"
        skipped = client.post("/v1/chat/completions", json=BODY)
        assert skipped.headers["x-stepgate-backend"] == "backup"
        fake_dllm.reset_script()
        fake_dllm.set_reply("billing")
        calls = len(fake_dllm.requests)
        time.sleep(0.6)  # the cooldown passes
        r = client.post("/v1/chat/completions", json=BODY)
        assert r.status_code == 200
        assert r.headers["x-stepgate-backend"] == "dllm"  # the probe went through, and won
        assert len(fake_dllm.requests) == calls + 1
        ready = client.get("/readyz").json()["backends"]["dllm"]
        assert ready["ready"] is True and ready["circuit"]["state"] == "closed"
        assert _backend_up(client, "dllm") == 1.0
        assert _transitions(client, "dllm", "half_open") == 1.0
        assert _transitions(client, "dllm", "closed") == 1.0


def test_a_failed_probe_reopens(
    tmp_path: Path, fake_dllm: FakeUpstream, fake_openai: FakeUpstream, outage: None
) -> None:
    with running_app(_policy(tmp_path, fake_dllm, fake_openai, 0.5), tmp_path) as client:
        for _ in range(2):
            client.post("/v1/chat/completions", json=BODY)
        calls = len(fake_dllm.requests)
        time.sleep(0.6)
        r = client.post("/v1/chat/completions", json=BODY)
        assert r.headers["x-stepgate-backend"] == "backup"
        assert len(fake_dllm.requests) == calls + 1  # one probe, not a retry on top
        client.post("/v1/chat/completions", json=BODY)
        assert len(fake_dllm.requests) == calls + 1  # open again: skipped
        assert _transitions(client, "dllm", "open") == 2.0


def test_rejected_requests_do_not_open_the_breaker(
    tmp_path: Path, fake_dllm: FakeUpstream, fake_openai: FakeUpstream
) -> None:
    # A 400 says the request is bad, not the backend: ten of them leave it closed.
    fake_dllm.script([persistent(status(400))])
    with running_app(_policy(tmp_path, fake_dllm, fake_openai, 60), tmp_path) as client:
        for _ in range(10):
            assert client.post("/v1/chat/completions", json=BODY).status_code == 400
        assert client.get("/readyz").json()["backends"]["dllm"]["circuit"]["state"] == "closed"
        assert len(fake_dllm.requests) == 10


@pytest.mark.redis
def test_two_gateways_agree_through_redis(
    tmp_path: Path, fake_dllm: FakeUpstream, fake_openai: FakeUpstream, outage: None
) -> None:
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=0.5).ping()
    except redis.RedisError:
        pytest.skip("no Redis on 127.0.0.1:6379")
    policy = _policy(tmp_path, fake_dllm, fake_openai, 60)
    a_dir, b_dir = tmp_path / "a", tmp_path / "b"
    a_dir.mkdir()
    b_dir.mkdir()
    shared = {"redis_url": REDIS_URL}
    redis.Redis.from_url(REDIS_URL).delete("stepgate:breakers")
    try:
        with (
            running_app(policy, a_dir, **shared) as a,
            running_app(policy, b_dir, **shared) as b,
        ):
            for _ in range(2):
                a.post("/v1/chat/completions", json=BODY)
            assert a.get("/readyz").json()["backends"]["dllm"]["circuit"]["state"] == "open"
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                if b.get("/readyz").json()["backends"]["dllm"]["circuit"]["state"] == "open":
                    break
                time.sleep(0.05)
            calls = len(fake_dllm.requests)
            r = b.post("/v1/chat/completions", json=BODY)
            assert r.headers["x-stepgate-backend"] == "backup"
            assert len(fake_dllm.requests) == calls  # B skipped it without trying
    finally:
        redis.Redis.from_url(REDIS_URL).flushdb()
