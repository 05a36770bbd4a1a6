"""Every failure ends in a ledger row and a settled reservation, whatever the exception.

The finding: a failure that was not one of our typed errors (a 1024-deep body failing on
forwarding) escaped the pipeline: a 500, no ledger row, and the budget reservation made for
the request was never settled. The trigger used here is outside our code: foreign data under
the gateway's Redis keys (an operator's script, another application sharing the database),
which Redis refuses with WRONGTYPE. That is that request's failure (a 500 rendered by the one
renderer), recorded like any other, and it leaves other tenants' limits alone.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis
from sqlalchemy import select

from gateway.core.types import ChatRequest
from gateway.db.engine import create_db_engine
from gateway.ledger.tables import requests
from gateway.limits import cache
from gateway.limits.budgets import window
from gateway.limits.keys import KeyLimits
from tests.conftest import render_policy
from tests.support.fakes.upstream import FakeUpstream
from tests.support.ledger_view import settle
from tests.support.limits import app_client, bearer, mint

REDIS_URL = "redis://127.0.0.1:6379/14"
CACHE = "cache:\n  enabled: true\n  kinds: [classify, extract]\n  ttl_s: 60\n"

pytestmark = pytest.mark.redis


def _redis(*commands: tuple[Any, ...]) -> list[Any]:
    async def go() -> list[Any]:
        client = Redis.from_url(REDIS_URL)
        try:
            return [await client.execute_command(*c) for c in commands]
        finally:
            await client.aclose()

    return asyncio.run(go())


def _budget_key(key_id: str) -> str:
    return f"stepgate:b:key:{key_id}:{window('daily', datetime.now(UTC)).tag}"


def _rows(url: str) -> list[dict[str, Any]]:
    engine = create_db_engine(url)
    try:
        with engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(select(requests))]
    finally:
        engine.dispose()


@pytest.fixture
def policy(
    tmp_path: Path, fake_dllm: FakeUpstream, fake_openai: FakeUpstream, fake_anthropic: FakeUpstream
) -> Path:
    fake_dllm.set_reply(content="billing", prompt_tokens=12, completion_tokens=3)
    path = tmp_path / "policy.yaml"
    path.write_text(render_policy(fake_dllm, fake_openai, fake_anthropic) + CACHE)
    return path


def _body() -> dict[str, Any]:
    # A unique prompt per run keeps cache entries of earlier runs out of the way.
    return {
        "model": "dllm-direct",
        "max_tokens": 20,
        "temperature": 0,
        "messages": [{"role": "user", "content": f"Classify ticket {uuid.uuid4()}"}],
    }


def test_a_failure_after_the_reservation_is_recorded_and_settled(
    tmp_path: Path, policy: Path, fake_dllm: FakeUpstream
) -> None:
    url = f"sqlite:///{tmp_path}/ledger.db"
    key, key_id = mint(url, "support", KeyLimits(daily_budget_nanos=10**9))
    body = _body()
    # The cache entry this request will look up (after its budget reservation) is a hash.
    entry = cache.cache_key("stepgate:", "support", ChatRequest.from_wire(body))
    _redis(("DEL", entry), ("HSET", entry, "foreign", "data"))
    try:
        with app_client(policy, tmp_path, redis_url=REDIS_URL) as client:
            r = client.post(
                "/v1/chat/completions",
                json=body,
                headers={**bearer(key), "X-Step-Kind": "classify"},
            )
            settle(client)
            assert r.status_code == 500, r.text
            assert r.json()["error"]["code"] == "gateway_internal"
            assert "Traceback" not in r.text and "WRONGTYPE" not in r.text
            (row,) = _rows(url)
            assert row["request_id"] == r.headers["x-request-id"]
            assert row["status"] == 500 and row["error_class"] == "gateway_internal"
            assert row["api_key_id"] == key_id
            # The reservation admit made is released: nothing is left charged to the key.
            (spent,) = _redis(("GET", _budget_key(key_id)))
            assert int(spent) == 0
            assert fake_dllm.requests == []
            # The next request (another prompt, so another cache entry) is served.
            ok = client.post("/v1/chat/completions", json=_body(), headers=bearer(key))
            assert ok.status_code == 200, ok.text
    finally:
        _redis(("DEL", entry))


def test_foreign_data_under_one_key_fails_only_that_key(
    tmp_path: Path, policy: Path, fake_dllm: FakeUpstream
) -> None:
    url = f"sqlite:///{tmp_path}/ledger.db"
    broken, broken_id = mint(url, "support", KeyLimits(daily_budget_nanos=10**9))
    other, _ = mint(url, "support", KeyLimits(daily_budget_nanos=10**9))
    budget = _budget_key(broken_id)
    _redis(("DEL", budget), ("HSET", budget, "foreign", "data"))
    try:
        with app_client(policy, tmp_path, redis_url=REDIS_URL) as client:
            r = client.post("/v1/chat/completions", json=_body(), headers=bearer(broken))
            fine = client.post("/v1/chat/completions", json=_body(), headers=bearer(other))
            settle(client)
        assert r.status_code == 500 and r.json()["error"]["code"] == "gateway_internal"
        assert fine.status_code == 200, fine.text
        rows = {row["request_id"]: row for row in _rows(url)}
        assert rows[r.headers["x-request-id"]]["status"] == 500
        assert rows[fine.headers["x-request-id"]]["status"] == 200
    finally:
        _redis(("DEL", budget))
