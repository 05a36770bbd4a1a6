"""Exact-match response cache through the app: deterministic steps only, per team, ledger
records at zero cost with the saving, on the in-process store and on Redis."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from gateway.db.engine import create_db_engine
from gateway.ledger.tables import attempts, requests
from tests.conftest import render_policy
from tests.support.fakes.upstream import FakeUpstream
from tests.support.limits import app_client, bearer, chat, mint
from tests.support.telemetry_builders import profile as step_profile

CACHE = "cache:\n  enabled: true\n  kinds: [classify, extract]\n  ttl_s: 60\n"
HINT = {"X-Step-Kind": "classify"}


def _det(**extra: Any) -> dict[str, Any]:
    # A unique prompt per test keeps Redis entries of earlier runs out of the way.
    return chat(content=f"Billing or shipping? ref {uuid.uuid4().hex[:8]}", temperature=0, **extra)


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def setup(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    fake_dllm: FakeUpstream,
    fake_openai: FakeUpstream,
    fake_anthropic: FakeUpstream,
) -> Any:
    fake_dllm.set_reply(content="billing", prompt_tokens=12, completion_tokens=1)
    policy = tmp_path / "policy.yaml"
    policy.write_text(render_policy(fake_dllm, fake_openai, fake_anthropic) + CACHE)
    url = f"sqlite:///{tmp_path}/ledger.db"
    support, _ = mint(url, "support")
    sales, _ = mint(url, "sales")
    extra = {"redis_url": "redis://127.0.0.1:6379/13"} if request.param == "redis" else {}
    with app_client(policy, tmp_path, **extra) as client:
        yield client, fake_dllm, support, sales, url


def _post(client: Any, body: dict[str, Any], key: str) -> Any:
    return client.post("/v1/chat/completions", json=body, headers={**HINT, **bearer(key)})


def _flush(client: Any) -> None:
    services = client.app.state.services
    client.portal.call(services.gate.flush)


def test_identical_deterministic_step_is_served_from_cache(setup: Any) -> None:
    client, fake, support, _, url = setup
    body = _det()
    first = _post(client, body, support)
    assert first.status_code == 200 and "x-stepgate-cache" not in first.headers
    _flush(client)
    # `user` and `metadata` vary per end user but do not change the answer.
    second = _post(client, {**body, "user": "u-42", "metadata": {"ticket": "T-9"}}, support)
    assert second.status_code == 200, second.text
    assert second.headers["x-stepgate-cache"] == "hit"
    assert second.headers["x-stepgate-cost-usd"] == "0.0"
    assert second.json()["choices"][0]["message"]["content"] == "billing"
    assert len(fake.requests) == 1

    services = client.app.state.services
    client.portal.call(services.ledger.flush)
    engine = create_db_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(select(requests).order_by(requests.c.started_at)).mappings().all()
            hit_attempts = (
                conn.execute(select(attempts).where(attempts.c.request_id == rows[1]["request_id"]))
                .mappings()
                .all()
            )
    finally:
        engine.dispose()
    miss, hit = rows
    assert (miss["cache_hit"], hit["cache_hit"]) == (False, True)
    assert miss["cost_nanos"] > 0 and hit["cost_nanos"] == 0
    # The saving of a hit is what the cached answer would have cost at the baseline.
    assert hit["baseline_cost_nanos"] == miss["baseline_cost_nanos"] > 0
    assert len(hit_attempts) == 1 and hit_attempts[0]["prompt_tokens"] == 0


def test_cache_is_per_team_and_only_for_deterministic_steps(setup: Any) -> None:
    client, fake, support, sales, _ = setup
    body = _det()
    assert _post(client, body, support).status_code == 200
    _flush(client)
    other_team = _post(client, body, sales)
    assert "x-stepgate-cache" not in other_team.headers
    assert len(fake.requests) == 2

    warm = {**body, "temperature": 0.7}
    for _ in range(2):
        assert "x-stepgate-cache" not in _post(client, warm, support).headers
        _flush(client)
    no_temp = {k: v for k, v in body.items() if k != "temperature"}
    no_temp["messages"] = [{"role": "user", "content": "different prompt, default temperature"}]
    for _ in range(2):
        assert "x-stepgate-cache" not in _post(client, no_temp, support).headers
        _flush(client)
    streamed = client.post(
        "/v1/chat/completions", json={**body, "stream": True}, headers={**HINT, **bearer(support)}
    )
    assert streamed.status_code == 200 and "x-stepgate-cache" not in streamed.headers
    # A kind the policy does not list is not cached either.
    other_kind = _det()
    for _ in range(2):
        r = client.post(
            "/v1/chat/completions",
            json=other_kind,
            headers={"X-Step-Kind": "format", **bearer(support)},
        )
        assert r.status_code == 200 and "x-stepgate-cache" not in r.headers
        _flush(client)
    assert len(fake.requests) == 9


def test_a_step_with_parts_only_anthropic_takes_is_never_answered_from_the_cache() -> None:
    """Its translated form (the cache key) leaves those parts out: a cached answer to the same
    step without them (no thinking, other cache marks) must not be served for it."""
    from gateway.ingress.anthropic_parse import parse_messages
    from gateway.limits.cache import cache_key, eligible
    from gateway.policy.limits_models import CachePolicy

    policy = CachePolicy(enabled=True)
    profile = step_profile(kind="classify")
    body = {"model": "auto", "max_tokens": 20, "temperature": 0,
            "messages": [{"role": "user", "content": "billing or shipping?"}]}  # fmt: skip
    plain = parse_messages(body)
    thinking = parse_messages({**body, "thinking": {"type": "enabled", "budget_tokens": 1024}})
    assert cache_key("p", None, plain) == cache_key("p", None, thinking)  # the same key ...
    assert eligible(policy, plain, profile)
    assert not eligible(policy, thinking, profile)  # ... so the native one is never cached
