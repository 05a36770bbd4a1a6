"""Billing end to end: what the ledger stores equals what the fake upstreams say they served.

For success, retry (500 then ok), fallback (persistent 503 on the dLLM -> AR), escalation
(invalid JSON -> AR), streaming and a client that disconnects mid-stream, on SQLite and on
PostgreSQL: per request, the attempts' prompt/completion tokens add up to the usage the fakes
reported for the calls that succeeded; every upstream call is one attempt row; each cost is the
exact nano-dollar product of those tokens and the test policy's prices (computed here, with
`Fraction`, not with the gateway's Pricebook); the cost the client is told equals the ledger's;
and the rollups add up to the raw rows, nothing counted twice.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import httpx
import orjson
import psycopg
import pytest
import sqlalchemy as sa

from gateway.db.engine import create_db_engine
from gateway.ledger.tables import attempts, requests
from tests.support.e2e_server import serve
from tests.support.fakes.upstream import FakeUpstream, ok, persistent, status
from tests.support.ledger import (
    PG_ADMIN,
    assert_rollups_match_raw,
    duplicate_rows,
    postgres_up,
)
from tests.support.ledger_view import request_rows

# litellm's lazily imported provider types warn in the plural form, which the pyproject filter
# ("Item .* is using") does not match; under "error" the warning would fail the AR call.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Items .* are using the `ReadOnly` qualifier:UserWarning"
)

# $ per million tokens. The dLLM's input price is 12.5 nano-dollars a token, so an odd prompt
# lands on half a nano-dollar and exercises the half-even rounding.
PRICES: dict[str, tuple[str, str]] = {
    "dllm": ("0.0125", "0.20"),
    "ar-openai": ("0.40", "1.60"),
    "ar-anthropic": ("0.80", "4.00"),
}
BASELINE = "ar-openai"
ADMIN_KEY = "billing-test-admin-key-0123456789"

POLICY = """
version: 1
backends:
  dllm:
    type: dllm
    engine: vllm
    base_url: {dllm}
    model: test-diffusion
    timeouts: {{connect_s: 1, request_s: 5, first_token_s: 5}}
    pricing: {{input_per_mtok_usd: "{p[dllm][0]}", output_per_mtok_usd: "{p[dllm][1]}"}}
  ar-openai:
    type: litellm
    model: openai/gpt-4.1-mini
    api_key_env: TEST_OPENAI_KEY
    base_url: {openai}
    timeouts: {{connect_s: 1, request_s: 15}}
    pricing: {{input_per_mtok_usd: "{p[ar-openai][0]}", output_per_mtok_usd: "{p[ar-openai][1]}"}}
  ar-anthropic:
    type: litellm
    model: anthropic/claude-haiku-4-5
    api_key_env: TEST_ANTHROPIC_KEY
    base_url: {anthropic}
    timeouts: {{connect_s: 1, request_s: 15}}
    pricing:
      input_per_mtok_usd: "{p[ar-anthropic][0]}"
      output_per_mtok_usd: "{p[ar-anthropic][1]}"
baseline: ar-openai
retry: {{max_attempts: 2, backoff_base_ms: 5, backoff_max_ms: 20, max_retry_after_s: 1}}
request_timeout_s: 20
routes:
  - name: checked
    match: {{kind: [extract]}}
    target: dllm
    escalation: {{min_confidence: 0.7, on_low: escalate, to: ar-openai}}
  - name: fast
    match: {{kind: [classify, lookup, format]}}
    target: dllm
    fallbacks: [ar-openai]
  - name: deep
    target: ar-openai
    fallbacks: [ar-anthropic]
default_route: deep
"""

SCHEMA = {
    "type": "object",
    "properties": {"order_id": {"type": "string"}, "amount": {"type": "number"}},
    "required": ["order_id", "amount"],
    "additionalProperties": False,
}
CLASSIFY_PROMPT = (
    "Classify the ticket. Answer with one of: billing, shipping, refund.\n"
    "Ticket: my parcel has not arrived yet and the tracking page shows nothing"
)


@pytest.fixture(scope="module", autouse=True)
def _litellm_imported() -> None:
    """Import litellm once up front: on a loaded CI box its first import (seconds) would
    otherwise eat the first AR call's deadline, and these tests are about money, not start-up."""
    from connectors.litellm_ar.connector import _import_litellm

    _import_litellm()


# -- databases -------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def billing_postgres() -> Iterator[str]:
    """One uniquely named PostgreSQL database for this test session, dropped at the end."""
    if not postgres_up():
        pytest.fail("PostgreSQL is not running on 127.0.0.1:5432")
    name = f"stepgate_billing_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ledger.db'}"
    return str(request.getfixturevalue("billing_postgres"))


@pytest.fixture
def policy_path(
    tmp_path: Path, fake_dllm: FakeUpstream, fake_openai: FakeUpstream, fake_anthropic: FakeUpstream
) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(
        POLICY.format(
            dllm=fake_dllm.openai_base,
            openai=fake_openai.openai_base,
            anthropic=fake_anthropic.url,
            p=PRICES,
        )
    )
    return path


@pytest.fixture
def client(policy_path: Path, database_url: str, tmp_path: Path) -> Iterator[Any]:
    from tests.support.app_client import running_app

    with running_app(policy_path, tmp_path, database_url=database_url, admin_key=ADMIN_KEY) as c:
        yield c
    engine = create_db_engine(database_url)
    try:
        assert duplicate_rows(engine) == 0
        assert_rollups_match_raw(engine)
    finally:
        engine.dispose()


# -- expected figures, computed independently of gateway/ledger/pricing.py --------------------


def expected_cost(backend: str, prompt: int, completion: int) -> int:
    """Nano-dollars: $/Mtok x 1e9 / 1e6 = 1000 x $/Mtok per token, summed exactly, then rounded
    half-even once (Python's `round` of a Fraction)."""
    inp, out = (Fraction(p) for p in PRICES[backend])
    return round(inp * 1000 * prompt + out * 1000 * completion)


def header_nanos(text: str) -> int:
    return int(Decimal(text) * 1_000_000_000)


def check_costs(req: dict[str, Any], atts: list[dict[str, Any]]) -> None:
    """Every attempt's cost from its tokens, the request total, the baseline on the answer."""
    for a in atts:
        assert a["cached_tokens"] == 0
        assert a["cost_nanos"] == expected_cost(
            a["backend"], a["prompt_tokens"], a["completion_tokens"]
        ), a
    assert req["cost_nanos"] == sum(a["cost_nanos"] for a in atts)
    assert req["prompt_tokens"] == sum(a["prompt_tokens"] for a in atts)
    assert req["completion_tokens"] == sum(a["completion_tokens"] for a in atts)
    assert req["attempt_count"] == len(atts)
    answered = [a for a in atts if a["outcome"] != "error" and a["role"] != "sample"]
    if answered:
        last = answered[-1]
        assert req["baseline_cost_nanos"] == expected_cost(
            BASELINE, last["prompt_tokens"], last["completion_tokens"]
        )


def billed(atts: list[dict[str, Any]], backend: str) -> tuple[int, int]:
    """(prompt, completion) tokens the ledger billed for successful calls to `backend`."""
    ok_rows = [a for a in atts if a["backend"] == backend and a["outcome"] == "ok"]
    return sum(a["prompt_tokens"] for a in ok_rows), sum(a["completion_tokens"] for a in ok_rows)


def reported(fake: FakeUpstream) -> tuple[int, int]:
    totals = fake.usage_totals()
    return totals["prompt_tokens"], totals["completion_tokens"]


def classify_body(**extra: Any) -> dict[str, Any]:
    return {"model": "auto", "messages": [{"role": "user", "content": CLASSIFY_PROMPT}], **extra}


def extract_body(**extra: Any) -> dict[str, Any]:
    return {
        "model": "auto",
        "messages": [
            {"role": "system", "content": "Extract the order id and refund amount as JSON."},
            {"role": "user", "content": "Order A-7731 arrived broken, please refund 12.50 EUR."},
        ],
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "refund", "schema": SCHEMA, "strict": True},
        },
        **extra,
    }


def post(client: Any, body: dict[str, Any], kind: str) -> Any:
    r = client.post("/v1/chat/completions", json=body, headers={"X-Step-Kind": kind})
    assert r.status_code == 200, r.text
    return r


def stream_events(text: str) -> list[dict[str, Any]]:
    data = [line[6:] for line in text.split("\n") if line.startswith("data: ")]
    assert data[-1] == "[DONE]"
    return [orjson.loads(d) for d in data[:-1]]


def upstream_calls(*fakes: FakeUpstream) -> int:
    return sum(
        1 for f in fakes for r in f.requests if r.path.endswith(("/chat/completions", "/messages"))
    )


def checked_escalations(client: Any) -> dict[str, Any]:
    """The spend API's escalation figures for route `checked` over the last hour."""
    resp = client.get(
        "/v1/spend/escalations",
        params={"range": "1h", "route": "checked"},
        headers={"authorization": f"Bearer {ADMIN_KEY}"},
    )
    assert resp.status_code == 200, resp.text
    routes = resp.json()["routes"]
    if not routes:
        return {"requests": 0, "escalations": 0, "reasons": {}}
    (route,) = routes
    names = ("requests", "escalated", "cost_nanos", "escalation_cost_nanos")
    return {
        "requests": route["requests"],
        "escalations": route["escalations"],
        "reasons": {x["reason"]: tuple(x[n] for n in names) for x in route["reasons"]},
    }


# -- non-streaming ---------------------------------------------------------------------------


def test_success_is_billed_exactly(
    client: Any, fake_dllm: FakeUpstream, fake_openai: FakeUpstream
) -> None:
    fake_dllm.set_reply(content="shipping")
    r = post(client, classify_body(), "classify")
    req, atts = request_rows(client, r.headers["x-request-id"])
    assert [(a["role"], a["backend"], a["outcome"]) for a in atts] == [("primary", "dllm", "ok")]
    assert billed(atts, "dllm") == reported(fake_dllm)
    assert reported(fake_dllm)[0] % 2 == 1  # an odd prompt: half a nano-dollar to round
    check_costs(req, atts)
    assert header_nanos(r.headers["x-stepgate-cost-usd"]) == req["cost_nanos"]
    assert r.json()["usage"]["prompt_tokens"] == reported(fake_dllm)[0]
    assert upstream_calls(fake_dllm, fake_openai) == len(atts)


def test_retry_bills_the_failed_call_nothing_and_the_answer_once(
    client: Any, fake_dllm: FakeUpstream, fake_openai: FakeUpstream
) -> None:
    fake_dllm.script([status(500), ok(content="billing")])
    r = post(client, classify_body(), "classify")
    req, atts = request_rows(client, r.headers["x-request-id"])
    assert [(a["role"], a["outcome"]) for a in atts] == [("primary", "error"), ("retry", "ok")]
    assert (atts[0]["prompt_tokens"], atts[0]["completion_tokens"], atts[0]["cost_nanos"]) == (
        0,
        0,
        0,
    )
    assert billed(atts, "dllm") == reported(fake_dllm)
    check_costs(req, atts)
    assert header_nanos(r.headers["x-stepgate-cost-usd"]) == req["cost_nanos"] > 0
    assert upstream_calls(fake_dllm, fake_openai) == len(atts) == 2


def test_fallback_bills_the_ar_backend_that_answered(
    client: Any, fake_dllm: FakeUpstream, fake_openai: FakeUpstream
) -> None:
    fake_dllm.script([persistent(status(503))])
    fake_openai.set_reply(content="refund", prompt_tokens=41, completion_tokens=3)
    r = post(client, classify_body(), "classify")
    assert r.headers["x-stepgate-backend"] == "ar-openai"
    req, atts = request_rows(client, r.headers["x-request-id"])
    assert atts[-1]["role"] == "fallback" and atts[-1]["backend"] == "ar-openai"
    assert all(a["outcome"] == "error" and a["cost_nanos"] == 0 for a in atts[:-1])
    assert billed(atts, "dllm") == reported(fake_dllm) == (0, 0)
    assert billed(atts, "ar-openai") == reported(fake_openai) == (41, 3)
    check_costs(req, atts)
    assert req["cost_nanos"] == expected_cost("ar-openai", 41, 3)
    assert header_nanos(r.headers["x-stepgate-cost-usd"]) == req["cost_nanos"]
    assert upstream_calls(fake_dllm, fake_openai) == len(atts)


def test_escalation_bills_both_the_cheap_and_the_strong_answer(
    client: Any, fake_dllm: FakeUpstream, fake_openai: FakeUpstream
) -> None:
    before = checked_escalations(client)
    fake_dllm.set_reply(content='{"order_id": "A-7731", "amount": ')  # invalid JSON
    fake_openai.set_reply(content='{"order_id": "A-7731", "amount": 12.5}')
    r = post(client, extract_body(), "extract")
    assert r.headers["x-stepgate-escalated"] == "true"
    req, atts = request_rows(client, r.headers["x-request-id"])
    assert [(a["role"], a["backend"]) for a in atts] == [
        ("primary", "dllm"),
        ("escalation", "ar-openai"),
    ]
    assert req["escalation_reason"] == "invalid_json"
    assert billed(atts, "dllm") == reported(fake_dllm)
    assert billed(atts, "ar-openai") == reported(fake_openai)
    check_costs(req, atts)
    assert req["cost_nanos"] == expected_cost("dllm", *reported(fake_dllm)) + expected_cost(
        "ar-openai", *reported(fake_openai)
    )
    assert header_nanos(r.headers["x-stepgate-cost-usd"]) == req["cost_nanos"]
    assert upstream_calls(fake_dllm, fake_openai) == len(atts) == 2
    # The reason and what the escalation cost reach the spend API (read from the rollups);
    # compared with a snapshot taken before, as the PostgreSQL ledger is shared by the session.
    after = checked_escalations(client)
    assert after["escalations"] - before["escalations"] == 1
    assert after["requests"] - before["requests"] == 1
    assert after["reasons"].keys() == {"invalid_json"} | before["reasons"].keys()
    n, escalated, cost, extra = (
        a - b
        for a, b in zip(
            after["reasons"]["invalid_json"],
            before["reasons"].get("invalid_json", (0, 0, 0, 0)),
            strict=True,
        )
    )
    assert (n, escalated, cost, extra) == (1, 1, req["cost_nanos"], atts[1]["cost_nanos"])


# -- streaming -------------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "backend"), [("classify", "dllm"), ("reason", "ar-openai")])
def test_stream_is_billed_from_the_upstream_usage(
    client: Any,
    fake_dllm: FakeUpstream,
    fake_openai: FakeUpstream,
    kind: str,
    backend: str,
) -> None:
    fake = fake_dllm if backend == "dllm" else fake_openai
    fake.set_reply(content="The parcel left the depot this morning and arrives tomorrow.")
    body = classify_body(stream=True, stream_options={"include_usage": True})
    r = post(client, body, kind)
    assert r.headers["x-stepgate-backend"] == backend
    events = stream_events(r.text)
    usage_event = events[-1]
    req, atts = request_rows(client, r.headers["x-request-id"])
    assert [(a["backend"], a["outcome"]) for a in atts] == [(backend, "ok")]
    assert billed(atts, backend) == reported(fake)
    check_costs(req, atts)
    # A stream's cost travels in its last chunk (the header cannot know it yet).
    assert r.headers["x-stepgate-cost-usd"] == "deferred"
    assert header_nanos(usage_event["x_stepgate"]["cost_usd"]) == req["cost_nanos"]
    assert usage_event["usage"]["completion_tokens"] == reported(fake)[1]


def test_escalated_stream_bills_both_attempts(
    client: Any, fake_dllm: FakeUpstream, fake_openai: FakeUpstream
) -> None:
    fake_dllm.set_reply(content='{"order_id": A-7731}')  # invalid JSON
    fake_openai.set_reply(content='{"order_id": "A-7731", "amount": 12.5}')
    r = post(client, extract_body(stream=True, stream_options={"include_usage": True}), "extract")
    events = stream_events(r.text)
    req, atts = request_rows(client, r.headers["x-request-id"])
    assert [a["role"] for a in atts] == ["primary", "escalation"]
    assert billed(atts, "dllm") == reported(fake_dllm)
    assert billed(atts, "ar-openai") == reported(fake_openai)
    check_costs(req, atts)
    assert header_nanos(events[-1]["x_stepgate"]["cost_usd"]) == req["cost_nanos"]


# -- a client that goes away mid-stream (real server, real sockets) --------------------------


def _stored(database_url: str, request_id: str, timeout_s: float = 15.0) -> tuple[Any, list[Any]]:
    """Poll the server's ledger until the request is stored (its writer batches)."""
    engine = create_db_engine(database_url)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            with engine.connect() as conn:
                req = conn.execute(
                    sa.select(requests).where(requests.c.request_id == request_id)
                ).one_or_none()
                if req is not None:
                    atts = conn.execute(
                        sa.select(attempts)
                        .where(attempts.c.request_id == request_id)
                        .order_by(attempts.c.attempt)
                    ).all()
                    return dict(req._mapping), [dict(a._mapping) for a in atts]
            if time.monotonic() > deadline:
                pytest.fail(f"request {request_id} never reached the ledger")
            time.sleep(0.1)
    finally:
        engine.dispose()


@pytest.mark.e2e
def test_client_disconnect_mid_stream_is_billed_for_what_was_generated(
    policy_path: Path, database_url: str, tmp_path: Path, fake_dllm: FakeUpstream
) -> None:
    words = 200
    fake_dllm.set_reply(content=" ".join(f"w{i}" for i in range(words)))
    fake_dllm.chunk_delay_s = 0.05  # 10 s for the whole answer: we leave long before
    body = classify_body(stream=True, stream_options={"include_usage": True})
    received = 0
    with serve(policy_path, tmp_path, env={"STEPGATE_DATABASE_URL": database_url}) as base:
        with (
            httpx.Client(base_url=base, timeout=10) as http,
            http.stream(
                "POST", "/v1/chat/completions", json=body, headers={"X-Step-Kind": "classify"}
            ) as r,
        ):
            assert r.status_code == 200
            rid = r.headers["x-request-id"]
            for line in r.iter_lines():
                if line.startswith("data: ") and '"content":"w' in line.replace(" ", ""):
                    received += 1
                    if received == 5:
                        break
        # Leaving the block closed the connection mid-stream.
        req, atts = _stored(database_url, rid)
        engine = create_db_engine(database_url)
        try:
            assert duplicate_rows(engine) == 0
            assert_rollups_match_raw(engine)
        finally:
            engine.dispose()
    assert req["status"] == 499 and req["error_class"] == "caller_disconnected"
    assert [(a["backend"], a["outcome"]) for a in atts] == [("dllm", "cancelled")]
    generated = atts[0]["completion_tokens"]
    # Billed for what was generated: at least what reached us, never more than the fake sent
    # (one event per chunk_delay_s while the attempt lasted, plus the first) or the answer holds.
    sent_at_most = int(atts[0]["latency_ms"] / 1000 / fake_dllm.chunk_delay_s) + 2
    assert received <= generated <= min(sent_at_most, words - 1)
    assert atts[0]["prompt_tokens"] > 0
    check_costs(req, atts)
    assert req["cost_nanos"] > 0
