"""Two `stepgate serve` replicas sharing Redis and PostgreSQL: a budget holds across both, and
a Redis outage mid-load is ridden out per each limit's `on_store_error` mode."""

from __future__ import annotations

import asyncio
import subprocess
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from sqlalchemy import func, select

from gateway.classify.classifier import Classifier
from gateway.db.engine import create_db_engine
from gateway.ingress.openai import parse_chat
from gateway.ledger.tables import requests
from gateway.limits.budgets import window
from gateway.limits.keys import KeyLimits
from tests.conftest import render_policy
from tests.support.e2e_server import serve
from tests.support.fakes.upstream import FakeUpstream
from tests.support.ledger import temp_postgres
from tests.support.limits import bearer, mint

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.redis]

REDIS_URL = "redis://127.0.0.1:6379/13"
# dllm pricing in the test policy: $0.05 / $0.20 per million tokens = 50 / 200 nanos a token.
IN_NANOS, OUT_NANOS = 50, 200
BODY = {
    "model": "dllm-direct",
    "max_tokens": 3,
    "messages": [
        {
            "role": "user",
            "content": "Is ticket 4411 about billing or shipping? Answer with one word.",
        }
    ],
}


def _budget_key(scope: str, ident: str) -> str:
    return f"stepgate:b:{scope}:{ident}:{window('daily', datetime.now(UTC)).tag}"


def _ledger(url: str, key_id: str) -> tuple[int, int]:
    engine = create_db_engine(url)
    try:
        with engine.connect() as conn:
            count, spent = conn.execute(
                select(func.count(), func.coalesce(func.sum(requests.c.cost_nanos), 0)).where(
                    requests.c.api_key_id == key_id, requests.c.status == 200
                )
            ).one()
    finally:
        engine.dispose()
    return int(count), int(spent)


def _policy(tmp_path: Path, fakes: tuple[FakeUpstream, ...], extra: str = "") -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(render_policy(*fakes) + extra)
    return path


@pytest.fixture
def fakes(
    fake_dllm: FakeUpstream, fake_openai: FakeUpstream, fake_anthropic: FakeUpstream
) -> tuple[FakeUpstream, ...]:
    return fake_dllm, fake_openai, fake_anthropic


def test_budget_holds_across_two_replicas(tmp_path: Path, fakes: tuple[FakeUpstream, ...]) -> None:
    dllm = fakes[0]
    # The upstream reports exactly the tokens the gateway estimates (prompt estimate plus
    # max_tokens), so each reservation equals the request's final cost.
    prompt = Classifier.load().classify(parse_chat(BODY), {}).prompt_tokens
    dllm.set_reply(content="billing", prompt_tokens=prompt, completion_tokens=3)
    dllm.latency_s = 0.2  # keep all 100 requests in flight together
    cost = prompt * IN_NANOS + 3 * OUT_NANOS
    budget = cost * 101 // 2  # covers 50.5 of 100 requests
    policy = _policy(tmp_path, fakes)
    with temp_postgres() as pg:
        key, key_id = mint(pg, f"team-{uuid.uuid4().hex[:8]}", KeyLimits(daily_budget_nanos=budget))
        env = {
            "STEPGATE_DATABASE_URL": pg,
            "STEPGATE_REDIS_URL": REDIS_URL,
            "STEPGATE_REQUIRE_KEYS": "true",
            "STEPGATE_POLICY_POLL_S": "0",
        }
        with ExitStack() as stack:
            # Start both replicas at once (start-up is the slow part of this test).
            contexts = []
            for i in range(2):
                work = tmp_path / f"replica{i}"
                work.mkdir()
                contexts.append(serve(policy, work, env=env))
            with ThreadPoolExecutor(2) as pool:
                futures = [pool.submit(cm.__enter__) for cm in contexts]
                for cm in contexts:  # a context whose start failed exits as a no-op
                    stack.push(cm.__exit__)
                urls = [f.result() for f in futures]

            async def burst() -> list[int]:
                async with httpx.AsyncClient(timeout=30) as client:
                    calls = [
                        client.post(
                            f"{urls[i % 2]}/v1/chat/completions", json=BODY, headers=bearer(key)
                        )
                        for i in range(100)
                    ]
                    return [r.status_code for r in await asyncio.gather(*calls)]

            statuses = asyncio.run(burst())
        # Both replicas have shut down: their ledgers and settles are flushed.
        ok = statuses.count(200)
        assert set(statuses) <= {200, 402}, statuses
        count, spent = _ledger(pg, key_id)
        counter = redis.Redis.from_url(REDIS_URL).get(_budget_key("key", key_id))
    assert count == ok and spent == ok * cost
    assert budget <= spent <= budget + cost, (budget, spent, cost)
    assert counter is not None and int(counter) == spent
    assert ok == 51


def _redis_down() -> None:
    subprocess.run(
        ["redis-cli", "-h", "127.0.0.1", "shutdown", "nosave"], check=False, capture_output=True
    )


def _redis_up() -> None:
    subprocess.run(
        [
            "redis-server",
            "--daemonize",
            "yes",
            "--bind",
            "127.0.0.1",
            "--port",
            "6379",
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        check=True,
        capture_output=True,
    )
    client = redis.Redis(host="127.0.0.1", port=6379, socket_connect_timeout=0.2)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            if client.ping():
                return
        except redis.RedisError:
            time.sleep(0.05)
    raise RuntimeError("redis-server did not come back")


def test_redis_outage_mid_load_follows_each_limits_mode(
    tmp_path: Path, fakes: tuple[FakeUpstream, ...]
) -> None:
    fakes[0].set_reply(content="billing", prompt_tokens=15, completion_tokens=3)
    extra = "limits:\n  on_store_error: {rate: open, budget: closed}\n"
    policy = _policy(tmp_path, fakes, extra)
    with temp_postgres() as pg:
        team = f"team-{uuid.uuid4().hex[:8]}"
        rate_key, _ = mint(pg, team, KeyLimits(rpm=10_000))
        budget_key, budget_id = mint(pg, team, KeyLimits(daily_budget_nanos=10**9))
        env = {
            "STEPGATE_DATABASE_URL": pg,
            "STEPGATE_REDIS_URL": REDIS_URL,
            "STEPGATE_POLICY_POLL_S": "0",
        }
        work = tmp_path / "replica"
        work.mkdir()
        with serve(policy, work, env=env) as url, httpx.Client(timeout=10) as client:

            def call(key: str) -> Any:
                return client.post(f"{url}/v1/chat/completions", json=BODY, headers=bearer(key))

            before = [call(rate_key).status_code for _ in range(5)]
            before += [call(budget_key).status_code for _ in range(5)]
            assert before == [200] * 10
            # Background load on the rate-limited key through the whole outage and recovery.
            stop = threading.Event()
            load: list[int] = []

            def background() -> None:
                with httpx.Client(timeout=10) as own:
                    while not stop.is_set():
                        r = own.post(
                            f"{url}/v1/chat/completions", json=BODY, headers=bearer(rate_key)
                        )
                        load.append(r.status_code)

            worker = threading.Thread(target=background)
            worker.start()
            during_rate, during_budget = [], []
            try:
                time.sleep(0.3)
                _redis_down()
                for _ in range(10):
                    during_rate.append(call(rate_key).status_code)
                    r = call(budget_key)
                    during_budget.append((r.status_code, r.json().get("error", {}).get("code")))
            finally:
                _redis_up()
            time.sleep(0.3)
            stop.set()
            worker.join()
            assert during_rate == [200] * 10  # rate: open -> keeps serving
            assert during_budget == [(429, "limits_store_unavailable")] * 10  # budget: closed
            assert len(load) > 10 and set(load) == {200}, load  # never a failed request
            metrics = client.get(f"{url}/metrics").text
            assert 'stepgate_store_errors_total{limit="key_rpm",mode="open"}' in metrics
            assert 'stepgate_store_errors_total{limit="key_daily_budget",mode="closed"}' in metrics

            # Back up: the budget counter (lost with Redis) is re-seeded from the ledger.
            time.sleep(1.2)  # the store's cool-down after errors, and the ledger's batch interval
            _, spent_before = _ledger(pg, budget_id)
            deadline = time.monotonic() + 5
            while (r := call(budget_key)).status_code != 200 and time.monotonic() < deadline:
                time.sleep(0.2)
            assert r.status_code == 200, r.text
            assert call(rate_key).status_code == 200
            counter = redis.Redis.from_url(REDIS_URL).get(_budget_key("key", budget_id))
            assert counter is not None and int(counter) >= spent_before > 0
