"""Checked routes: the cheap dLLM answer is judged, then accepted, escalated or flagged."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.support.app_client import running_app
from tests.support.fakes.upstream import FakeUpstream
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
  dllm-nolp:
    type: dllm
    engine: mercury
    base_url: {dllm}
    model: mercury-coder
    timeouts: {{connect_s: 1, request_s: 5}}
    pricing: {{input_per_mtok_usd: "0.25", output_per_mtok_usd: "1.00"}}
  ar-openai:
    type: litellm
    model: openai/gpt-4.1-mini
    api_key_env: TEST_OPENAI_KEY
    base_url: {openai}
    timeouts: {{connect_s: 1, request_s: 15}}
baseline: ar-openai
retry: {{max_attempts: 1}}
routes:
  - name: checked
    match: {{kind: [classify, extract, lookup]}}
    target: dllm
    escalation: {{min_confidence: 0.7, on_low: escalate, to: ar-openai}}
  - name: flagged
    match: {{kind: [summarize]}}
    target: dllm
    escalation: {{min_confidence: 0.7, on_low: flag}}
  - name: nolp
    match: {{kind: [format]}}
    target: dllm-nolp
    escalation: {{min_confidence: 0.7, on_low: escalate, to: ar-openai}}
  - name: deep
    target: ar-openai
default_route: deep
"""

SCHEMA = {
    "type": "object",
    "properties": {"order_id": {"type": "string"}, "amount": {"type": "number"}},
    "required": ["order_id", "amount"],
    "additionalProperties": False,
}


@pytest.fixture
def client(tmp_path: Path, fake_dllm: FakeUpstream, fake_openai: FakeUpstream) -> Iterator[Any]:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY.format(dllm=fake_dllm.openai_base, openai=fake_openai.openai_base))
    with running_app(policy, tmp_path) as c:
        yield c


def extract_request(**extra: Any) -> dict[str, Any]:
    return {
        "model": "auto",
        "messages": [
            {"role": "system", "content": "Extract the order id and refund amount as JSON."},
            {
                "role": "user",
                "content": "Hi, order A-7731 arrived broken, please refund 12.50 EUR.",
            },
        ],
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "refund", "schema": SCHEMA, "strict": True},
        },
        **extra,
    }


def classify_request(**extra: Any) -> dict[str, Any]:
    return {
        "model": "auto",
        "messages": [
            {
                "role": "user",
                "content": "Classify the ticket. Answer with one of: billing, shipping, refund.\n"
                "Ticket: my parcel has not arrived yet",
            }
        ],
        **extra,
    }


def post(client: Any, body: dict[str, Any], kind: str) -> Any:
    return client.post("/v1/chat/completions", json=body, headers={"X-Step-Kind": kind})


def answer_of(r: Any, stream: bool) -> str:
    if not stream:
        return str(r.json()["choices"][0]["message"]["content"])
    events = [e[6:] for e in r.text.split("\n") if e.startswith("data: ")]
    assert events[-1] == "[DONE]"
    return "".join(
        orjson.loads(e)["choices"][0]["delta"].get("content") or ""
        for e in events[:-1]
        if orjson.loads(e)["choices"]
    )


JSON_TOKENS = ['{"', "order_id", '":', ' "', "A-7731", '",', ' "', "amount", '":', " 12.50", "}"]


@pytest.mark.parametrize("stream", [False, True])
def test_confident_valid_json_is_accepted(
    client: Any, fake_dllm: FakeUpstream, fake_openai: FakeUpstream, stream: bool
) -> None:
    fake_dllm.set_reply(tokens=JSON_TOKENS, logprobs=-0.01, content="".join(JSON_TOKENS))
    r = post(client, extract_request(stream=stream), "extract")
    assert r.status_code == 200, r.text
    assert r.headers["x-stepgate-escalated"] == "false"
    assert r.headers["x-stepgate-disposition"] == "final"
    assert float(r.headers["x-stepgate-confidence"]) >= 0.7
    assert orjson.loads(answer_of(r, stream)) == {"order_id": "A-7731", "amount": 12.5}
    assert not fake_openai.requests
    req, atts = request_rows(client, r.headers["x-request-id"])
    assert req["escalated"] is False and req["disposition"] == "final"
    assert [a["role"] for a in atts] == ["primary"]


@pytest.mark.parametrize("stream", [False, True])
def test_invalid_json_is_escalated_and_both_attempts_costed(
    client: Any, fake_dllm: FakeUpstream, fake_openai: FakeUpstream, stream: bool
) -> None:
    fake_dllm.set_reply(content='{"order_id": "A-7731", "amount": ', prompt_tokens=30)
    fake_openai.set_reply(content='{"order_id": "A-7731", "amount": 12.5}', prompt_tokens=30)
    r = post(client, extract_request(stream=stream), "extract")
    assert r.status_code == 200, r.text
    assert r.headers["x-stepgate-escalated"] == "true"
    assert r.headers["x-stepgate-backend"] == "ar-openai"
    assert float(r.headers["x-stepgate-confidence"]) < 0.7
    assert orjson.loads(answer_of(r, stream)) == {"order_id": "A-7731", "amount": 12.5}
    req, atts = request_rows(client, r.headers["x-request-id"])
    assert req["escalated"] is True
    assert req["escalation_reason"] == "invalid_json"
    assert req["final_backend"] == "ar-openai"
    assert [(a["role"], a["backend"]) for a in atts] == [
        ("primary", "dllm"),
        ("escalation", "ar-openai"),
    ]
    assert all(a["cost_nanos"] and a["cost_nanos"] > 0 for a in atts)
    assert req["cost_nanos"] == sum(a["cost_nanos"] for a in atts)
    # The baseline is one AR call for this step, counted once (on the answer that was used).
    assert atts[0]["baseline_cost_nanos"] == 0
    assert atts[1]["baseline_cost_nanos"] == atts[1]["cost_nanos"]


@pytest.mark.parametrize("stream", [False, True])
def test_label_outside_allowed_set_is_escalated(
    client: Any, fake_dllm: FakeUpstream, fake_openai: FakeUpstream, stream: bool
) -> None:
    fake_dllm.set_reply(content="logistics", logprobs=-0.01)
    fake_openai.set_reply(content="shipping")
    r = post(client, classify_request(stream=stream), "classify")
    assert r.status_code == 200, r.text
    assert r.headers["x-stepgate-escalated"] == "true"
    assert answer_of(r, stream) == "shipping"
    req, _ = request_rows(client, r.headers["x-request-id"])
    assert req["escalation_reason"] == "label_not_allowed"


def test_allowed_label_with_high_confidence_is_accepted(
    client: Any, fake_dllm: FakeUpstream, fake_openai: FakeUpstream
) -> None:
    fake_dllm.set_reply(content="shipping", logprobs=-0.02)
    r = post(client, classify_request(), "classify")
    assert r.headers["x-stepgate-escalated"] == "false"
    assert answer_of(r, False) == "shipping"
    assert not fake_openai.requests


@pytest.mark.parametrize("stream", [False, True])
def test_low_probability_value_token_escalates(
    client: Any, fake_dllm: FakeUpstream, fake_openai: FakeUpstream, stream: bool
) -> None:
    # Valid JSON whose order id token is a guess (p ~ 0.05); keys and punctuation are sure.
    logprobs = [-0.001] * len(JSON_TOKENS)
    logprobs[JSON_TOKENS.index("A-7731")] = -3.0
    fake_dllm.set_reply(tokens=JSON_TOKENS, logprobs=logprobs, content="".join(JSON_TOKENS))
    fake_openai.set_reply(content='{"order_id": "A-7731", "amount": 12.5}')
    r = post(client, extract_request(stream=stream), "extract")
    assert r.headers["x-stepgate-escalated"] == "true"
    req, _ = request_rows(client, r.headers["x-request-id"])
    assert req["escalation_reason"] == "low_token_confidence"


@pytest.mark.parametrize("stream", [False, True])
def test_low_confidence_on_flag_route_returns_draft(
    client: Any, fake_dllm: FakeUpstream, fake_openai: FakeUpstream, stream: bool
) -> None:
    fake_dllm.set_reply(content="Customer wants a refund maybe", logprobs=-2.5)
    body = {"model": "auto", "messages": [{"role": "user", "content": "Summarize: ..."}]}
    r = post(client, {**body, "stream": stream}, "summarize")
    assert r.status_code == 200, r.text
    assert r.headers["x-stepgate-route"] == "flagged"
    assert r.headers["x-stepgate-disposition"] == "draft"
    assert r.headers["x-stepgate-escalated"] == "false"
    assert answer_of(r, stream) == "Customer wants a refund maybe"
    assert not fake_openai.requests
    req, _ = request_rows(client, r.headers["x-request-id"])
    assert req["disposition"] == "draft"
    assert req["escalation_reason"] == "low_token_confidence"


@pytest.mark.parametrize("stream", [False, True])
def test_truncated_answer_is_escalated(
    client: Any, fake_dllm: FakeUpstream, fake_openai: FakeUpstream, stream: bool
) -> None:
    fake_dllm.set_reply(content="shipping", finish_reason="length")
    fake_openai.set_reply(content="shipping")
    r = post(client, classify_request(stream=stream, max_tokens=1), "classify")
    assert r.headers["x-stepgate-escalated"] == "true"
    req, _ = request_rows(client, r.headers["x-request-id"])
    assert req["escalation_reason"] == "truncated"


@pytest.mark.parametrize("stream", [False, True])
def test_backend_without_logprobs_relies_on_validators(
    client: Any, fake_dllm: FakeUpstream, fake_openai: FakeUpstream, stream: bool
) -> None:
    fake_dllm.set_reply(content='{"order_id": "A-7731", "amount": 12.5}')
    body = extract_request(stream=stream)
    r = post(client, body, "format")
    assert r.headers["x-stepgate-route"] == "nolp"
    assert "logprobs" not in fake_dllm.requests[-1].body  # mercury: none asked for
    assert r.headers["x-stepgate-escalated"] == "false"  # validators pass
    confidence = float(r.headers["x-stepgate-confidence"])
    assert 0.7 <= confidence < 1.0
    # ...and a schema violation still escalates without any token statistics.
    fake_dllm.set_reply(content='{"order_id": "A-7731"}')
    fake_openai.set_reply(content='{"order_id": "A-7731", "amount": 12.5}')
    r = post(client, extract_request(stream=stream), "format")
    assert r.headers["x-stepgate-escalated"] == "true"
    req, _ = request_rows(client, r.headers["x-request-id"])
    assert req["escalation_reason"] == "schema_mismatch"


def test_unchecked_route_has_no_confidence_header(client: Any, fake_openai: FakeUpstream) -> None:
    r = post(client, classify_request(), "reason")
    assert r.headers["x-stepgate-route"] == "deep"
    assert "x-stepgate-confidence" not in r.headers


def test_escalation_target_down_returns_cheap_answer_as_draft(
    client: Any, fake_dllm: FakeUpstream, fake_openai: FakeUpstream
) -> None:
    from tests.support.fakes.upstream import persistent, status

    fake_dllm.set_reply(content="logistics")
    fake_openai.script([persistent(status(503))])
    r = post(client, classify_request(), "classify")
    assert r.status_code == 200
    assert r.headers["x-stepgate-disposition"] == "draft"
    assert r.headers["x-stepgate-escalated"] == "false"
    assert answer_of(r, False) == "logistics"
