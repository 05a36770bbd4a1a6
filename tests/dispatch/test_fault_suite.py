"""Faults the circuit breakers must absorb (issue 15): clients keep getting answers.

A flapping backend opens on its error rate, not on failures in a row; a dead dLLM under
concurrent load costs it a handful of calls and the clients nothing; with Redis gone the
breakers work locally, the limits gate still admits, and the state reaches Redis when it is back.
Timings live in bench/outage.py; these tests assert behaviour only.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from gateway.limits.keys import KeyLimits
from tests.support.app_client import running_app
from tests.support.e2e_server import free_port
from tests.support.fakes.upstream import FakeUpstream, ok, persistent, status
from tests.support.limits import bearer, mint

POLICY = """
version: 1
backends:
  dllm:
    type: dllm
    engine: vllm
    base_url: {dllm}
    model: test-diffusion
    logprobs: true
    timeouts: {{connect_s: 1, request_s: 5}}
    pricing: {{input_per_mtok_usd: "0.05", output_per_mtok_usd: "0.20"}}
  ar-main:
    type: litellm
    model: openai/gpt-4.1-mini
    api_key_env: TEST_OPENAI_KEY
    base_url: {ar}
    timeouts: {{connect_s: 1, request_s: 5}}
baseline: ar-main
retry: {{max_attempts: {attempts}, backoff_base_ms: 1, backoff_max_ms: 2}}
circuit_breaker: {breaker}
routes:
  - name: fast
    match: {{kind: [lookup]}}
    target: dllm
    fallbacks: [ar-main]
    escalation: {{min_confidence: 0.7, on_low: escalate, to: ar-main}}
  - name: deep
    target: ar-main
default_route: deep
"""
# A lookup answer has no structural validator: only token confidence could hold it back, and
# an AR fallback's answer has no logprobs, so this is the step that must not come back a draft.
LOOKUP = {
    "model": "auto",
    "messages": [
        {"role": "system", "content": "Answer from the snippet. Snippet: Returns take 14 days."},
        {"role": "user", "content": "How long do I have to return my shoes?"},
    ],
}
ANSWER = "You have 14 days."
HEADERS = {"X-Step-Kind": "lookup"}


def _policy(tmp_path: Path, *, dllm: str, ar: FakeUpstream, breaker: str, attempts: int) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY.format(dllm=dllm, ar=ar.openai_base, breaker=breaker, attempts=attempts))
    return path


def _post(client: Any, headers: dict[str, str] | None = None) -> Any:
    return client.post("/v1/chat/completions", json=LOOKUP, headers={**HEADERS, **(headers or {})})


def _circuit(client: Any) -> dict[str, Any]:
    circuit: dict[str, Any] = client.get("/readyz").json()["backends"]["dllm"]["circuit"]
    return circuit


def _failed_calls(client: Any, backend: str) -> float:
    prefix = "stepgate_backend_attempts_total{"
    total = 0.0
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(prefix) and f'backend="{backend}"' in line and 'outcome="error"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def _sample(client: Any, prefix: str) -> float:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(prefix):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def _eventually(check: Callable[[], bool], timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


def test_a_flapping_backend_opens_on_its_error_rate_not_on_a_run(
    tmp_path: Path, fake_dllm: FakeUpstream, fake_openai: FakeUpstream
) -> None:
    # Two failures, one success, over and over: never three failures in a row, but 7 of the
    # first 10 calls fail, which is over the 50% error rate once min_calls is reached.
    fake_dllm.script([status(503), status(503), ok(ANSWER)] * 6)
    fake_openai.set_reply(ANSWER)
    breaker = "{failures: 3, error_rate: 0.5, min_calls: 10, window_s: 30, cooldown_s: 60}"
    policy = _policy(
        tmp_path, dllm=fake_dllm.openai_base, ar=fake_openai, breaker=breaker, attempts=1
    )
    with running_app(policy, tmp_path) as client:
        for n in range(1, 10):
            r = _post(client)
            assert r.status_code == 200, r.text
            expected = "dllm" if n % 3 == 0 else "ar-main"
            assert r.headers["x-stepgate-backend"] == expected
            circuit = _circuit(client)
            assert circuit["state"] == "closed", (n, circuit)
            assert circuit["consecutive_failures"] <= 2
        assert circuit["window_calls"] == 9 and circuit["window_failures"] == 6
        r = _post(client)  # the 10th call fails: 7 of 10, and min_calls is met
        assert r.status_code == 200 and r.headers["x-stepgate-backend"] == "ar-main"
        assert _circuit(client)["state"] == "open"
        assert len(fake_dllm.requests) == 10
        for _ in range(5):
            r = _post(client)
            assert r.status_code == 200 and r.headers["x-stepgate-backend"] == "ar-main"
        assert len(fake_dllm.requests) == 10  # skipped while open


@pytest.mark.parametrize("fault", ["503", "refused"])
def test_a_dead_dllm_under_concurrent_load_costs_clients_nothing(
    tmp_path: Path, fake_dllm: FakeUpstream, fake_openai: FakeUpstream, fault: str
) -> None:
    threads, per_thread, failures = 16, 10, 3
    if fault == "503":
        fake_dllm.script([persistent(status(503))])
        dllm = fake_dllm.openai_base
    else:
        dllm = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens: connection refused
    fake_openai.set_reply(ANSWER)
    breaker = f"{{failures: {failures}, cooldown_s: 60}}"
    policy = _policy(tmp_path, dllm=dllm, ar=fake_openai, breaker=breaker, attempts=2)
    results: list[tuple[int, str | None, str | None]] = []
    lock = threading.Lock()
    with running_app(policy, tmp_path) as client:
        start = threading.Barrier(threads)

        def worker() -> None:
            start.wait()
            for _ in range(per_thread):
                r = _post(client)
                with lock:
                    results.append(
                        (
                            r.status_code,
                            r.headers.get("x-stepgate-disposition"),
                            r.headers.get("x-stepgate-backend"),
                        )
                    )

        pool = [threading.Thread(target=worker) for _ in range(threads)]
        for t in pool:
            t.start()
        for t in pool:
            t.join(60)
        assert len(results) == threads * per_thread
        assert [r for r in results if r[0] != 200] == []
        assert [r for r in results if r[1] == "draft"] == []
        assert {r[2] for r in results} == {"ar-main"}
        # Calls admitted before the breaker opened: at most one per thread in flight, plus the
        # ones whose failures were reported before the third. Without a breaker: 320.
        calls = len(fake_dllm.requests) if fault == "503" else _failed_calls(client, "dllm")
        assert failures <= calls <= threads + failures, calls
        assert _circuit(client)["state"] == "open"


class ThrowawayRedis:
    """`redis-server` on a free port without persistence; `kill` and `start` keep the port."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}"
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        argv = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1"]
        self._proc = subprocess.Popen(
            [*argv, "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _eventually(self._answers)

    def _answers(self) -> bool:
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        try:
            return bool(client.ping())
        except redis.ConnectionError:
            return False
        finally:
            client.close()

    def kill(self) -> None:
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait(timeout=5)
            self._proc = None

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_connect_timeout=0.5)


@pytest.fixture
def throwaway_redis() -> Iterator[ThrowawayRedis]:
    if shutil.which("redis-server") is None:
        pytest.skip("no redis-server binary")
    server = ThrowawayRedis()
    server.start()
    try:
        yield server
    finally:
        server.kill()


def _published(server: ThrowawayRedis, backend: str) -> dict[str, Any] | None:
    try:
        with server.client() as client:
            raw = client.hget("stepgate:breakers", backend)
    except redis.RedisError:
        return None
    return None if raw is None else dict(json.loads(raw))


def test_with_redis_down_breakers_work_locally_and_publish_when_it_is_back(
    tmp_path: Path,
    fake_dllm: FakeUpstream,
    fake_openai: FakeUpstream,
    throwaway_redis: ThrowawayRedis,
) -> None:
    database = f"sqlite:///{tmp_path}/ledger.db"
    rate_key, _ = mint(database, "support", KeyLimits(rpm=10_000))
    budget_key, _ = mint(database, "support", KeyLimits(daily_budget_nanos=10**9))
    fake_openai.set_reply(ANSWER)
    fake_dllm.set_reply(ANSWER)
    policy = _policy(
        tmp_path,
        dllm=fake_dllm.openai_base,
        ar=fake_openai,
        breaker="{failures: 3, cooldown_s: 60}",
        attempts=1,
    )
    with running_app(policy, tmp_path, redis_url=throwaway_redis.url) as client:
        for key in (rate_key, budget_key):
            r = _post(client, bearer(key))
            assert r.status_code == 200 and r.headers["x-stepgate-backend"] == "dllm", r.text
        with throwaway_redis.client() as r_client:
            assert r_client.keys("stepgate:rl:*")  # the rate limits live in Redis
        throwaway_redis.kill()
        # The breaker sync has noticed (it reports each failed round as a store error), so
        # what follows is decided while it knows Redis is gone.
        sync_errors = 'stepgate_store_errors_total{limit="circuit",mode="local"}'
        _eventually(lambda: _sample(client, sync_errors) > 0)
        fake_dllm.clear()
        fake_dllm.script([persistent(status(503))])
        for headers in [bearer(rate_key)] * 4 + [{}] * 2:
            r = _post(client, headers)
            assert r.status_code == 200, r.text  # rate limits fail open; the fallback answers
            assert r.headers["x-stepgate-backend"] == "ar-main"
        assert _circuit(client)["state"] == "open"  # decided here, with no Redis to tell
        assert len(fake_dllm.requests) == 3
        # A budget cannot be checked without its counter: the shipped default refuses
        # (limits.on_store_error.budget: closed) with a retryable 429, not a 500.
        r = _post(client, bearer(budget_key))
        assert r.status_code == 429, r.text
        assert r.json()["error"]["code"] == "limits_store_unavailable"
        assert "retry-after" in r.headers

        throwaway_redis.start()  # same port, empty
        _eventually(lambda: _published(throwaway_redis, "dllm") is not None)
        record = _published(throwaway_redis, "dllm")
        assert record is not None and record["s"] == "open"
        assert record["u"] is not None and record["u"] > time.time()  # its cooldown end
        # And the limits store is used again: the budget key is admitted once its counter is
        # re-seeded from the ledger.
        _eventually(lambda: _post(client, bearer(budget_key)).status_code == 200)
