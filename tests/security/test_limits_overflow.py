"""One request's bad data cannot switch limits off for every tenant (Redis).

The finding: `max_tokens: 1e16` made the cost estimate overflow int64, Redis' INCRBY failed
inside the admit script, and the store treated the script error as an outage: for a second
every tenant's limits followed the fail-open/closed default.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from gateway.limits.redis_store import RedisStore
from gateway.limits.store import Bucket, Counter, StoreRejected

REDIS_URL = "redis://127.0.0.1:6379/13"


@pytest.mark.redis
def test_script_error_fails_that_request_only() -> None:
    async def go() -> None:
        store = RedisStore(REDIS_URL)
        p = f"sec-{uuid.uuid4().hex[:10]}:"
        try:
            victim = Counter("team_daily_budget", f"{p}b:victim", 10**12, 1, 3600)
            await store._redis.set(victim.key, 0)
            attacker = Counter("team_daily_budget", f"{p}b:attacker", 10**30, 2**70, 3600)
            await store._redis.set(attacker.key, 0)
            with pytest.raises(StoreRejected):
                await store.admit([], [attacker])
            # Not an outage: the next tenant's limits are still enforced at once.
            rpm = Bucket("key_rpm", f"{p}rl:key:v:rpm", 1, 1)
            first = await store.admit([rpm], [victim])
            second = await store.admit([rpm], [victim])
            assert first.ok and not second.ok and second.kind == "rate"
        finally:
            await store.aclose()

    asyncio.run(go())


def test_overflowing_max_tokens_is_a_400(client: Any, fake_dllm: Any) -> None:
    body = {
        "model": "auto",
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 10**16,
    }
    r = client.post("/v1/chat/completions", json=body)
    assert r.status_code == 400
    assert r.json()["error"]["param"] == "max_tokens"
    assert fake_dllm.requests == []
