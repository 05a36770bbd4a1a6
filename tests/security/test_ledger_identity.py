"""The ledger's identity is the gateway's, and retries are idempotent only when asked.

The finding: the ledger keyed rows on the caller's `x-request-id` with ON CONFLICT DO NOTHING,
so ten requests sharing one id left one row, another team's later (dearer) request with the
same id was never recorded, and budgets re-seeded from the ledger after a restart let a capped
key spend many times its budget. Now every request gets a gateway id (the ledger key, sent
back as `x-request-id`); the caller's id is stored beside it and echoed as
`x-client-request-id`; a retry of the same request is deduplicated only by an explicit
`Idempotency-Key`, scoped to the caller's API key.
"""

from __future__ import annotations

import threading
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from gateway.db.engine import create_db_engine
from gateway.ledger.tables import requests
from gateway.limits.keys import KeyLimits
from tests.conftest import render_policy
from tests.support.fakes.upstream import (
    FakeUpstream,
    cut_stream,
    ok,
    persistent,
    slow_first_token,
    status,
)
from tests.support.ledger_view import settle
from tests.support.limits import app_client, bearer, chat, mint

DIRECT = {"model": "dllm-direct", "max_tokens": 20}
REDIS_URL = "redis://127.0.0.1:6379/14"


@pytest.fixture
def fakes(
    fake_dllm: FakeUpstream, fake_openai: FakeUpstream, fake_anthropic: FakeUpstream
) -> tuple[FakeUpstream, FakeUpstream, FakeUpstream]:
    # 12 prompt + 3 output tokens at $0.05/$0.20 per Mtok = 1200 nano-dollars a call.
    fake_dllm.set_reply(content="billing", prompt_tokens=12, completion_tokens=3)
    return fake_dllm, fake_openai, fake_anthropic


def _policy(tmp_path: Path, fakes: tuple[FakeUpstream, ...]) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(render_policy(*fakes))
    return path


def _db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/ledger.db"


def _rows(url: str) -> list[dict[str, Any]]:
    engine = create_db_engine(url)
    try:
        with engine.connect() as conn:
            stmt = select(requests).order_by(requests.c.started_at)
            return [dict(r._mapping) for r in conn.execute(stmt)]
    finally:
        engine.dispose()


# -- one row per request, whatever id the caller sends -----------------------------------------


def test_repeated_client_ids_leave_one_row_per_request(tmp_path: Path, fakes: Any) -> None:
    url = _db(tmp_path)
    alpha, alpha_id = mint(url, "alpha")
    beta, beta_id = mint(url, "beta")
    shared = "req-shared-0001"
    with app_client(_policy(tmp_path, fakes), tmp_path) as client:
        sent = []
        for _ in range(10):
            r = client.post(
                "/v1/chat/completions",
                json=chat(**DIRECT),
                headers={**bearer(alpha), "x-request-id": shared},
            )
            assert r.status_code == 200, r.text
            assert r.headers["x-client-request-id"] == shared
            sent.append(r.headers["x-request-id"])
        # Another team, the same id, a dearer request: recorded under its own team.
        fakes[0].set_reply(content="billing", prompt_tokens=1200, completion_tokens=300)
        r = client.post(
            "/v1/chat/completions",
            json=chat(**DIRECT),
            headers={**bearer(beta), "x-client-request-id": shared},
        )
        assert r.status_code == 200 and r.headers["x-client-request-id"] == shared
        sent.append(r.headers["x-request-id"])
        settle(client)
    assert len(set(sent)) == 11 and shared not in sent  # the gateway's ids, all distinct
    rows = _rows(url)
    assert [row["request_id"] for row in rows] == sent
    assert {row["client_request_id"] for row in rows} == {shared}
    assert [row["api_key_id"] for row in rows] == [alpha_id] * 10 + [beta_id]
    assert [row["team"] for row in rows] == ["alpha"] * 10 + ["beta"]
    # $0.05 / $0.20 per Mtok = 50 / 200 nano-dollars a token.
    assert [row["cost_nanos"] for row in rows] == [12 * 50 + 3 * 200] * 10 + [1200 * 50 + 300 * 200]
    assert len(fakes[0].requests) == 11


def test_a_capped_key_stays_capped_across_a_restart(tmp_path: Path, fakes: Any) -> None:
    url = _db(tmp_path)
    key, _ = mint(url, "support", KeyLimits(daily_budget_nanos=3_600))  # three calls
    headers = {**bearer(key), "x-request-id": "same-id-every-time"}
    policy = _policy(tmp_path, fakes)
    with app_client(policy, tmp_path) as client:
        statuses = []
        for _ in range(5):
            statuses.append(client.post("/v1/chat/completions", json=chat(**DIRECT),
                                        headers=headers).status_code)  # fmt: skip
            settle(client)
    assert statuses == [200, 200, 200, 402, 402]
    # A new process seeds the budget from the ledger: all three calls are there.
    with app_client(policy, tmp_path) as client:
        r = client.post("/v1/chat/completions", json=chat(**DIRECT), headers=headers)
        assert r.status_code == 402, r.text
        assert r.json()["error"]["code"] == "key_daily_budget_exhausted"
    assert len(fakes[0].requests) == 3
    assert sum(row["cost_nanos"] for row in _rows(url) if row["status"] == 200) == 3_600


def test_an_odd_client_id_is_ignored_not_echoed(client: Any, fake_dllm: FakeUpstream) -> None:
    r = client.post(
        "/v1/chat/completions",
        json=chat(**DIRECT),
        headers={"x-request-id": "bad id\twith spaces"},
    )
    assert r.status_code == 200
    assert "x-client-request-id" not in r.headers
    assert r.headers["x-request-id"] != "bad id\twith spaces"


def test_errors_carry_both_ids(client: Any) -> None:
    r = client.post(
        "/v1/chat/completions",
        json={"model": "auto", "messages": []},
        headers={"x-client-request-id": "client-err-0001"},
    )
    assert r.status_code == 400
    assert r.headers["x-client-request-id"] == "client-err-0001"
    assert r.headers["x-request-id"] != "client-err-0001"


# -- Idempotency-Key ----------------------------------------------------------------------------


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def store_settings(request: pytest.FixtureRequest) -> dict[str, Any]:
    if request.param == "memory":
        return {}
    return {"redis_url": REDIS_URL}


def _idem(key: str, api_key: str | None = None) -> dict[str, str]:
    headers = {"idempotency-key": key}
    if api_key is not None:
        headers.update(bearer(api_key))
    return headers


def test_a_retry_with_its_key_replays_the_answer(
    tmp_path: Path, fakes: Any, store_settings: dict[str, Any]
) -> None:
    url = _db(tmp_path)
    key, _ = mint(url, "support", KeyLimits(daily_budget_nanos=10**9))
    idem = f"idem-{uuid.uuid4()}"
    with app_client(_policy(tmp_path, fakes), tmp_path, **store_settings) as client:
        first = client.post("/v1/chat/completions", json=chat(**DIRECT), headers=_idem(idem, key))
        assert first.status_code == 200, first.text
        settle(client)
        again = client.post("/v1/chat/completions", json=chat(**DIRECT), headers=_idem(idem, key))
        assert again.status_code == 200, again.text
        assert again.content == first.content
        assert again.headers["x-request-id"] == first.headers["x-request-id"]
        assert again.headers["x-stepgate-idempotent-replay"] == "true"
        assert "x-stepgate-idempotent-replay" not in first.headers
        # Another body under the same key is a caller mistake, named as such.
        other = client.post(
            "/v1/chat/completions",
            json=chat("Where is my parcel?", **DIRECT),
            headers=_idem(idem, key),
        )
        assert other.status_code == 422
        assert other.json()["error"]["code"] == "idempotency_key_reused"
        # Without the key, the same body is a new request.
        fresh = client.post("/v1/chat/completions", json=chat(**DIRECT), headers=bearer(key))
        assert fresh.status_code == 200
        settle(client)
    assert len(fakes[0].requests) == 2
    rows = _rows(url)
    assert [r["request_id"] for r in rows] == [
        first.headers["x-request-id"],
        fresh.headers["x-request-id"],
    ]
    assert sum(r["cost_nanos"] for r in rows) == 2 * 1_200  # the replay was not charged


def test_the_key_is_scoped_to_the_api_key(
    tmp_path: Path, fakes: Any, store_settings: dict[str, Any]
) -> None:
    url = _db(tmp_path)
    alpha, _ = mint(url, "alpha")
    beta, _ = mint(url, "beta")
    idem = f"idem-{uuid.uuid4()}"
    with app_client(_policy(tmp_path, fakes), tmp_path, **store_settings) as client:
        fakes[0].set_reply(content="alpha-secret-answer")
        a = client.post("/v1/chat/completions", json=chat(**DIRECT), headers=_idem(idem, alpha))
        settle(client)
        fakes[0].set_reply(content="beta-own-answer")
        b = client.post("/v1/chat/completions", json=chat(**DIRECT), headers=_idem(idem, beta))
        settle(client)
    assert a.status_code == b.status_code == 200
    assert "alpha-secret-answer" not in b.text and "beta-own-answer" in b.text
    assert "x-stepgate-idempotent-replay" not in b.headers
    assert len(_rows(url)) == 2


def test_a_failed_request_releases_its_key(
    tmp_path: Path, fakes: Any, store_settings: dict[str, Any]
) -> None:
    fakes[0].script([persistent(status(500))])
    idem = f"idem-{uuid.uuid4()}"
    url = _db(tmp_path)
    with app_client(_policy(tmp_path, fakes), tmp_path, **store_settings) as client:
        failed = client.post("/v1/chat/completions", json=chat(**DIRECT), headers=_idem(idem))
        assert failed.status_code >= 500
        settle(client)
        fakes[0].reset_script()
        retried = client.post("/v1/chat/completions", json=chat(**DIRECT), headers=_idem(idem))
        assert retried.status_code == 200, retried.text
        assert "x-stepgate-idempotent-replay" not in retried.headers
        settle(client)
    rows = _rows(url)
    assert [r["status"] for r in rows] == [failed.status_code, 200]  # both recorded


def test_a_concurrent_duplicate_gets_409(
    tmp_path: Path, fakes: Any, store_settings: dict[str, Any]
) -> None:
    fakes[0].script([slow_first_token(1.5, ok("billing"))])
    idem = f"idem-{uuid.uuid4()}"
    with app_client(_policy(tmp_path, fakes), tmp_path, **store_settings) as client:
        results: dict[str, Any] = {}

        def first() -> None:
            results["first"] = client.post(
                "/v1/chat/completions", json=chat(**DIRECT), headers=_idem(idem)
            )

        worker = threading.Thread(target=first)
        worker.start()
        while not fakes[0].requests:  # the first request has reached the upstream
            threading.Event().wait(0.02)
        dup = client.post("/v1/chat/completions", json=chat(**DIRECT), headers=_idem(idem))
        worker.join(10)
        assert dup.status_code == 409, dup.text
        assert dup.json()["error"]["code"] == "idempotency_in_progress"
        assert dup.headers["retry-after"] == "1"
        assert results["first"].status_code == 200
        settle(client)
        replay = client.post("/v1/chat/completions", json=chat(**DIRECT), headers=_idem(idem))
        assert replay.content == results["first"].content
    assert len(fakes[0].requests) == 1


def test_a_stream_is_replayed_only_when_it_completed(
    tmp_path: Path, fakes: Any, store_settings: dict[str, Any]
) -> None:
    idem = f"idem-{uuid.uuid4()}"
    body = chat(**DIRECT, stream=True)
    with app_client(_policy(tmp_path, fakes), tmp_path, **store_settings) as client:
        first = client.post("/v1/chat/completions", json=body, headers=_idem(idem))
        assert first.status_code == 200 and first.text.rstrip().endswith("[DONE]")
        settle(client)
        again = client.post("/v1/chat/completions", json=body, headers=_idem(idem))
        assert again.status_code == 200
        assert again.headers["content-type"].startswith("text/event-stream")
        assert again.text == first.text
        assert again.headers["x-stepgate-idempotent-replay"] == "true"
        # A stream cut by the upstream is not kept: its retry runs again.
        cut = f"idem-{uuid.uuid4()}"
        fakes[0].script([cut_stream(2)])
        broken = client.post("/v1/chat/completions", json=body, headers=_idem(cut))
        settle(client)
        retried = client.post("/v1/chat/completions", json=body, headers=_idem(cut))
        assert "x-stepgate-idempotent-replay" not in retried.headers
        assert retried.text.rstrip().endswith("[DONE]")
    assert broken.status_code == 200 and not broken.text.rstrip().endswith("[DONE]")


def test_a_malformed_key_is_a_400(client: Any, fake_dllm: FakeUpstream) -> None:
    r = client.post(
        "/v1/chat/completions", json=chat(**DIRECT), headers={"idempotency-key": "x" * 300}
    )
    assert r.status_code == 400
    assert r.json()["error"]["param"] == "Idempotency-Key"
    assert fake_dllm.requests == []


@pytest.mark.redis
def test_replicas_share_the_key_through_redis(tmp_path: Path, fakes: Any) -> None:
    """Two gateways over one Redis: a retry that lands on the other replica is replayed."""
    idem = f"idem-{uuid.uuid4()}"
    policy = _policy(tmp_path, fakes)
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    with app_client(policy, one, redis_url=REDIS_URL) as a:
        first = a.post("/v1/chat/completions", json=chat(**DIRECT), headers=_idem(idem))
        settle(a)
    with app_client(policy, two, redis_url=REDIS_URL) as b:
        again = b.post("/v1/chat/completions", json=chat(**DIRECT), headers=_idem(idem))
    assert first.status_code == again.status_code == 200
    assert again.content == first.content
    assert len(fakes[0].requests) == 1
