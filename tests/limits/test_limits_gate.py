"""Rate limits and budgets through the real app (in-process store, SQLite ledger), and the
store-error modes against an unreachable Redis."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from gateway.core.records import RequestRecord
from gateway.db.engine import create_db_engine
from gateway.ledger.store import write_batch
from gateway.ledger.tables import requests
from gateway.limits.budgets import window
from gateway.limits.keys import KeyLimits
from tests.conftest import render_policy
from tests.support.fakes.upstream import FakeUpstream, cut_stream, hang, persistent, status
from tests.support.ledger import attempt
from tests.support.ledger_view import settle
from tests.support.limits import app_client, bearer, chat, mint

DIRECT = {"model": "dllm-direct", "max_tokens": 20}


def _policy(
    tmp_path: Path, dllm: FakeUpstream, openai: FakeUpstream, anth: FakeUpstream, extra: str = ""
) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(render_policy(dllm, openai, anth) + extra)
    return path


@pytest.fixture
def fakes(
    fake_dllm: FakeUpstream, fake_openai: FakeUpstream, fake_anthropic: FakeUpstream
) -> tuple[FakeUpstream, FakeUpstream, FakeUpstream]:
    fake_dllm.set_reply(content="billing", prompt_tokens=12, completion_tokens=3)
    return fake_dllm, fake_openai, fake_anthropic


def _db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/ledger.db"


def _counter(client: Any, key: str) -> int | None:
    gate = client.app.state.services.gate
    return client.portal.call(gate.store.counter, key)  # type: ignore[no-any-return]


def _budget_key(scope: str, ident: str, period: str = "daily") -> str:
    from datetime import UTC, datetime

    return f"stepgate:b:{scope}:{ident}:{window(period, datetime.now(UTC)).tag}"  # type: ignore[arg-type]


def _ledger_spend(url: str, key_id: str, *, ok_only: bool = True) -> tuple[int, int]:
    engine = create_db_engine(url)
    try:
        with engine.connect() as conn:
            row = conn.execute(
                select(func.count(), func.coalesce(func.sum(requests.c.cost_nanos), 0)).where(
                    requests.c.api_key_id == key_id,
                    requests.c.status == 200 if ok_only else requests.c.status > 0,
                )
            ).one()
    finally:
        engine.dispose()
    return int(row[0]), int(row[1])


def test_key_rpm_429_with_retry_after(tmp_path: Path, fakes: Any) -> None:
    key, _ = mint(_db(tmp_path), "support", KeyLimits(rpm=2))
    with app_client(_policy(tmp_path, *fakes), tmp_path) as client:
        codes = [
            client.post("/v1/chat/completions", json=chat(**DIRECT), headers=bearer(key))
            for _ in range(3)
        ]
        assert [r.status_code for r in codes] == [200, 200, 429]
        refused = codes[-1]
        # One request comes back every 30 s at 2 rpm.
        assert 29 <= int(refused.headers["retry-after"]) <= 30
        err = refused.json()["error"]
        assert err["type"] == "rate_limit_error" and err["code"] == "key_rpm_exceeded"
        assert len(fakes[0].requests) == 2  # the refused request never reached the upstream


def test_team_limits_from_the_policy_cover_all_its_keys(tmp_path: Path, fakes: Any) -> None:
    a, _ = mint(_db(tmp_path), "support")
    b, _ = mint(_db(tmp_path), "support")
    other, _ = mint(_db(tmp_path), "sales")
    extra = "limits:\n  teams:\n    support: {rpm: 1, daily_budget_usd: '5'}\n"
    with app_client(_policy(tmp_path, *fakes, extra=extra), tmp_path) as client:
        assert (
            client.post("/v1/chat/completions", json=chat(**DIRECT), headers=bearer(a)).status_code
            == 200
        )
        r = client.post("/v1/chat/completions", json=chat(**DIRECT), headers=bearer(b))
        assert r.status_code == 429 and r.json()["error"]["code"] == "team_rpm_exceeded"
        assert (
            client.post(
                "/v1/chat/completions", json=chat(**DIRECT), headers=bearer(other)
            ).status_code
            == 200
        )


def test_tpm_reserves_the_estimate_and_settles_actual_tokens(tmp_path: Path, fakes: Any) -> None:
    # Each call reserves its estimated prompt plus max_tokens=20, but uses 12 + 3 tokens.
    key, _ = mint(_db(tmp_path), "support", KeyLimits(tpm=120))
    with app_client(_policy(tmp_path, *fakes), tmp_path) as client:
        ok = 0
        for _ in range(6):
            r = client.post("/v1/chat/completions", json=chat(**DIRECT), headers=bearer(key))
            settle(client)
            if r.status_code != 200:
                assert r.status_code == 429 and r.json()["error"]["code"] == "key_tpm_exceeded"
                break
            ok += 1
        # Without settling, at most 4 reservations (>= 28 tokens each) fit in 120 tokens;
        # settled at 15 tokens each, the sixth still finds 45 tokens left.
        assert ok == 6


def test_budget_is_seeded_from_the_ledger(tmp_path: Path, fakes: Any) -> None:
    url = _db(tmp_path)
    key, key_id = mint(url, "support", KeyLimits(daily_budget_nanos=1_000_000))
    engine = create_db_engine(url)
    now = time.time()
    earlier = RequestRecord(
        request_id="earlier-spend-1",
        started_at=now - 5,
        api_key_id=key_id,
        team="support",
        route="fast",
        step_kind="classify",
        difficulty=0.1,
        final_backend="dllm",
        status=200,
        error_class=None,
        latency_ms=10.0,
        ttft_ms=None,
        escalated=False,
        confidence=None,
        disposition="final",
        escalation_reason=None,
        stream=False,
        cache_hit=False,
        attempts=(attempt("earlier-spend-1", 0, cost=1_000_000, started_at=now - 5),),
    )
    try:
        write_batch(engine, [earlier])
    finally:
        engine.dispose()
    with app_client(_policy(tmp_path, *fakes), tmp_path) as client:
        r = client.post("/v1/chat/completions", json=chat(**DIRECT), headers=bearer(key))
        assert r.status_code == 402, r.text
        err = r.json()["error"]
        assert err["type"] == "insufficient_quota" and err["code"] == "key_daily_budget_exhausted"
        assert "resets at" in err["message"]
        assert _counter(client, _budget_key("key", key_id)) == 1_000_000
        assert not fakes[0].requests


def test_budget_overshoot_is_at_most_one_request_and_counter_matches_ledger(
    tmp_path: Path, fakes: Any
) -> None:
    url = _db(tmp_path)
    # 12 prompt + 3 output tokens at $0.05/$0.20 per Mtok = 1200 nano-dollars a call.
    budget = 6_000
    key, key_id = mint(url, "support", KeyLimits(daily_budget_nanos=budget))
    with app_client(_policy(tmp_path, *fakes), tmp_path) as client:
        statuses = []
        for _ in range(10):
            r = client.post("/v1/chat/completions", json=chat(**DIRECT), headers=bearer(key))
            statuses.append(r.status_code)
            settle(client)
        assert set(statuses) == {200, 402}
        assert statuses.index(402) == statuses.count(200)  # refused only once exhausted
        count, spent = _ledger_spend(url, key_id)
        assert count == statuses.count(200) and spent == count * 1_200
        assert budget <= spent <= budget + 1_200
        assert _counter(client, _budget_key("key", key_id)) == spent


def test_failed_call_releases_its_reservation(tmp_path: Path, fakes: Any) -> None:
    url = _db(tmp_path)
    key, key_id = mint(url, "support", KeyLimits(daily_budget_nanos=10**9))
    fakes[0].script([persistent(status(500))])
    with app_client(_policy(tmp_path, *fakes), tmp_path) as client:
        r = client.post("/v1/chat/completions", json=chat(**DIRECT), headers=bearer(key))
        assert r.status_code >= 500
        settle(client)
        assert _counter(client, _budget_key("key", key_id)) == 0


def test_client_disconnect_settles_the_reservation(tmp_path: Path, fakes: Any) -> None:
    """A caller that goes away mid-call: the pipeline is cancelled, and the reservation is
    settled at what was actually spent (nothing) instead of staying reserved."""
    from gateway.ingress.openai import parse_chat
    from gateway.limits.keys import parse_key
    from gateway.services import Services
    from gateway.settings import Settings
    from gateway.trace import RequestContext

    url = _db(tmp_path)
    key, key_id = mint(url, "support", KeyLimits(daily_budget_nanos=10**9))
    assert parse_key(key)
    fakes[0].script([hang(5)])
    settings = Settings(
        policy=_policy(tmp_path, *fakes),
        database_url=url,
        spool_dir=tmp_path / "spool",
        policy_poll_s=0,
    )

    async def scenario() -> None:
        services = await Services.build(settings)
        try:
            headers = {"authorization": f"Bearer {key}"}
            principal = await services.gate.authenticate(headers)
            ctx = RequestContext(
                request_id="disconnect-1",
                headers=headers,
                received=time.monotonic(),
                received_at=time.time(),
                api_key_id=key_id,
                team="support",
                principal=principal,
            )
            task = asyncio.create_task(services.pipeline.chat(parse_chat(chat(**DIRECT)), ctx))
            counter = _budget_key("key", key_id)
            for _ in range(200):
                await asyncio.sleep(0.01)
                if fakes[0].requests:
                    break
            reserved = await services.gate.store.counter(counter)
            assert reserved is not None and reserved > 0
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await services.gate.flush()
            assert await services.gate.store.counter(counter) == 0
        finally:
            await services.aclose()

    asyncio.run(scenario())


def test_store_errors_follow_each_limits_mode(tmp_path: Path, fakes: Any) -> None:
    """Redis unreachable: rate limits set `open` admit; a budget set `closed` refuses; both
    are counted in stepgate_store_errors."""
    url = _db(tmp_path)
    rate_only, _ = mint(url, "open-team", KeyLimits(rpm=5))
    budgeted, _ = mint(url, "open-team", KeyLimits(rpm=5, daily_budget_nanos=10**9))
    extra = "limits:\n  on_store_error: {rate: open, budget: closed}\n"
    with app_client(
        _policy(tmp_path, *fakes, extra=extra), tmp_path, redis_url="redis://127.0.0.1:1/0"
    ) as client:
        for _ in range(8):  # more than the rpm: nothing can count while the store is down
            r = client.post("/v1/chat/completions", json=chat(**DIRECT), headers=bearer(rate_only))
            assert r.status_code == 200
        r = client.post("/v1/chat/completions", json=chat(**DIRECT), headers=bearer(budgeted))
        assert r.status_code == 429
        assert r.json()["error"]["code"] == "limits_store_unavailable"
        assert r.headers["retry-after"] == "1"
        metrics = client.get("/metrics").text
        assert 'stepgate_store_errors_total{limit="key_rpm",mode="open"} 9.0' in metrics
        assert 'stepgate_store_errors_total{limit="key_daily_budget",mode="closed"} 1.0' in metrics


def test_streams_settle_at_what_was_billed_also_when_cut(tmp_path: Path, fakes: Any) -> None:
    url = _db(tmp_path)
    key, key_id = mint(url, "support", KeyLimits(daily_budget_nanos=10**9))
    fakes[0].set_reply(content="one two three four five six", prompt_tokens=12)
    fakes[0].script([cut_stream(after_chunks=3)])
    with app_client(_policy(tmp_path, *fakes), tmp_path) as client:
        for _ in range(2):  # the first is cut mid-stream, the second completes
            with client.stream(
                "POST",
                "/v1/chat/completions",
                json=chat(stream=True, **DIRECT),
                headers=bearer(key),
            ) as r:
                assert r.status_code == 200
                r.read()
        settle(client)
        count, spent = _ledger_spend(url, key_id, ok_only=False)
        assert count == 2 and spent > 0  # the cut stream (502 in-stream) is billed too
        assert _counter(client, _budget_key("key", key_id)) == spent
