"""Checks where they belong (issue 15, item 5).

Token confidence judges answers of the fast (dLLM) tier only; structural validators judge every
answer on a checked route. So during a dLLM outage the AR fallback's answer is served final,
not flagged draft for lacking logprobs, and a pinned alias on the dLLM runs the checks of the
route on that backend (or the policy says `checks: none`).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.policy.loader import PolicyLoadError, parse_policy
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
  ar-main:
    type: litellm
    model: openai/gpt-4.1-mini
    api_key_env: TEST_OPENAI_KEY
    base_url: {ar}
    timeouts: {{connect_s: 1, request_s: 5}}
baseline: ar-main
retry: {{max_attempts: 1}}
aliases:
  dllm: dllm
  raw-dllm: {{backend: dllm, checks: none}}
routes:
  - name: fast
    match: {{kind: [classify, extract, lookup]}}
    target: dllm
    fallbacks: [ar-main]
    escalation: {{min_confidence: 0.7, on_low: escalate, to: ar-main}}
  - name: deep
    target: ar-main
default_route: deep
"""

LOOKUP = {
    "model": "auto",
    "messages": [
        {"role": "system", "content": "Answer from the snippet. Snippet: Returns take 14 days."},
        {"role": "user", "content": "How long do I have to return my shoes?"},
    ],
}
CLASSIFY = {
    "model": "auto",
    "messages": [
        {
            "role": "user",
            "content": "Classify the ticket. Answer with one of: billing, shipping, refund.\n"
            "Ticket: my parcel has not arrived yet",
        }
    ],
}


@pytest.fixture
def client(tmp_path: Path, fake_dllm: FakeUpstream, fake_openai: FakeUpstream) -> Iterator[Any]:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY.format(dllm=fake_dllm.openai_base, ar=fake_openai.openai_base))
    with running_app(policy, tmp_path) as c:
        yield c


def _post(client: Any, body: dict[str, Any], **headers: str) -> Any:
    return client.post(
        "/v1/chat/completions", json=body, headers={"X-Step-Kind": "classify", **headers}
    )


@pytest.mark.parametrize("stream", [False, True])
def test_the_ar_fallback_during_a_dllm_outage_is_final_not_draft(
    client: Any, fake_dllm: FakeUpstream, fake_openai: FakeUpstream, stream: bool
) -> None:
    # A lookup answer has no structural validator to pass, so only token confidence could
    # score it, and the AR answer has no logprobs: before, it scored the unchecked prior, was
    # "escalated" to itself and came back as a draft.
    fake_dllm.script([persistent(status(503))])
    fake_openai.set_reply("You have 14 days.")
    r = client.post(
        "/v1/chat/completions",
        json={**LOOKUP, "stream": stream},
        headers={"X-Step-Kind": "lookup"},
    )
    assert r.status_code == 200, r.text
    assert r.headers["x-stepgate-backend"] == "ar-main"
    assert r.headers.get("x-stepgate-disposition", "final") != "draft"
    assert r.headers["x-stepgate-escalated"] == "false"
    req, attempts = request_rows(client, r.headers["x-request-id"])
    assert req["disposition"] == "final"
    assert [a["backend"] for a in attempts] == ["dllm", "ar-main"]  # no extra escalation hop


def test_a_failed_validator_still_holds_back_an_ar_answer(
    client: Any, fake_dllm: FakeUpstream, fake_openai: FakeUpstream
) -> None:
    # Structural validators apply to any answer: an AR fallback answering outside the labels
    # is the escalation target already, so it comes back as a draft.
    fake_dllm.script([persistent(status(503))])
    fake_openai.set_reply("I think it might be about the weather")
    r = _post(client, CLASSIFY)
    assert r.status_code == 200, r.text
    assert r.headers["x-stepgate-backend"] == "ar-main"
    assert r.headers["x-stepgate-disposition"] == "draft"


def test_an_alias_on_the_dllm_runs_the_routes_checks(
    client: Any, fake_dllm: FakeUpstream, fake_openai: FakeUpstream
) -> None:
    fake_dllm.set_reply("refund", logprobs=-3.0)  # an unsure label: p = 0.05
    fake_openai.set_reply("shipping")
    r = _post(client, {**CLASSIFY, "model": "dllm"})
    assert r.status_code == 200, r.text
    assert r.headers["x-stepgate-escalated"] == "true"
    assert r.headers["x-stepgate-backend"] == "ar-main"
    assert r.json()["choices"][0]["message"]["content"] == "shipping"


def test_an_alias_with_checks_none_serves_unchecked(
    client: Any, fake_dllm: FakeUpstream, fake_openai: FakeUpstream
) -> None:
    fake_dllm.set_reply("refund", logprobs=-3.0)
    r = _post(client, {**CLASSIFY, "model": "raw-dllm"})
    assert r.status_code == 200, r.text
    assert r.headers["x-stepgate-backend"] == "dllm"
    assert r.headers["x-stepgate-escalated"] == "false"
    assert len(fake_openai.requests) == 0


def test_a_dllm_alias_without_checks_to_borrow_is_refused() -> None:
    text = POLICY.format(dllm="http://127.0.0.1:1/v1", ar="http://127.0.0.1:2/v1").replace(
        "    escalation: {min_confidence: 0.7, on_low: escalate, to: ar-main}\n", ""
    )
    with pytest.raises(PolicyLoadError) as info:
        parse_policy(text, path="policy.yaml", env={})
    message = str(info.value)
    assert "alias 'dllm'" in message and "checks: none" in message
    assert "raw-dllm" not in message  # the explicit `checks: none` alias is fine
