"""Context-window fallbacks (issue 15, item 4).

`context_length_exceeded` is its own error class: not retried on the same backend, not sent to
the ordinary fallbacks, but to the route's `context_fallbacks`; and the classifier's token
estimate passes over a backend whose `context_window` is too small before any call.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from connectors.http_status import error_for_status
from gateway.core.errors import ContextLengthExceeded, ProviderRejected
from tests.support.app_client import running_app
from tests.support.fakes.upstream import FakeUpstream, persistent, status
from tests.support.ledger_view import request_rows

POLICY = """
version: 1
backends:
  small:
    type: dllm
    engine: vllm
    base_url: {small}
    model: test-small
    context_window: {window}
    timeouts: {{connect_s: 1, request_s: 5}}
    pricing: {{input_per_mtok_usd: "0.05", output_per_mtok_usd: "0.20"}}
  same-size:
    type: dllm
    engine: vllm
    base_url: {small}
    model: test-small-2
    timeouts: {{connect_s: 1, request_s: 5}}
    pricing: {{input_per_mtok_usd: "0.05", output_per_mtok_usd: "0.20"}}
  large:
    type: dllm
    engine: openai
    base_url: {large}
    model: test-large
    context_window: 1000000
    timeouts: {{connect_s: 1, request_s: 5}}
    pricing: {{input_per_mtok_usd: "0.40", output_per_mtok_usd: "1.60"}}
baseline: large
retry: {{max_attempts: 3, backoff_base_ms: 1, backoff_max_ms: 2}}
routes:
  - name: fast
    target: small
    fallbacks: [same-size]
    context_fallbacks: [large]
default_route: fast
"""
VLLM_TOO_LONG = {
    "object": "error",
    "message": "This model's maximum context length is 8192 tokens. However, you requested "
    "9000 tokens (8000 in the messages, 1000 in the completion). Please reduce the length.",
    "type": "BadRequestError",
    "param": None,
    "code": 400,
}
BODY = {"model": "auto", "messages": [{"role": "user", "content": "Summarise this thread."}]}


def _policy(tmp_path: Path, small: FakeUpstream, large: FakeUpstream, window: int) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY.format(small=small.openai_base, large=large.openai_base, window=window))
    return path


@pytest.mark.parametrize(
    ("status_code", "body", "code"),
    [
        (400, "This model's maximum context length is 8192 tokens.", None),
        (400, "prompt is too long: 250000 tokens > 200000 maximum", None),
        (400, "Please reduce the length of the messages.", "context_length_exceeded"),
        (413, "request too large", None),
    ],
)
def test_provider_words_for_too_long_map_to_their_own_class(
    status_code: int, body: str, code: str | None
) -> None:
    error = error_for_status(status_code, body, backend="b", code=code)
    assert isinstance(error, ContextLengthExceeded)
    assert error.error_class == "provider_context_length"


def test_other_rejections_stay_rejections() -> None:
    error = error_for_status(400, "temperature must be at most 2", backend="b")
    assert isinstance(error, ProviderRejected) and not isinstance(error, ContextLengthExceeded)


@pytest.mark.parametrize("stream", [False, True])
def test_a_too_long_step_goes_to_the_context_fallback(
    tmp_path: Path, fake_dllm: FakeUpstream, fake_openai: FakeUpstream, stream: bool
) -> None:
    fake_dllm.script([persistent(status(400, body=VLLM_TOO_LONG))])
    fake_openai.set_reply("A long thread, summarised.")
    with running_app(_policy(tmp_path, fake_dllm, fake_openai, 100000), tmp_path) as client:
        r = client.post("/v1/chat/completions", json={**BODY, "stream": stream})
        assert r.status_code == 200, r.text
        assert r.headers["x-stepgate-backend"] == "large"
        _, attempts = request_rows(client, r.headers["x-request-id"])
    # Not retried on `small`, and `same-size` (an ordinary fallback) is not tried either.
    assert [(a["backend"], a["error_class"]) for a in attempts] == [
        ("small", "provider_context_length"),
        ("large", None),
    ]
    assert len(fake_dllm.requests) == 1


def test_without_context_fallbacks_the_caller_gets_a_clear_400(
    tmp_path: Path, fake_dllm: FakeUpstream, fake_openai: FakeUpstream
) -> None:
    fake_dllm.script([persistent(status(400, body=VLLM_TOO_LONG))])
    policy = _policy(tmp_path, fake_dllm, fake_openai, 100000)
    policy.write_text(policy.read_text().replace("    context_fallbacks: [large]\n", ""))
    with running_app(policy, tmp_path) as client:
        r = client.post("/v1/chat/completions", json=BODY)
    assert r.status_code == 400
    assert "maximum context length" in r.json()["error"]["message"]
    assert len(fake_dllm.requests) == 1


def test_the_estimate_preselects_a_larger_context_backend(
    tmp_path: Path, fake_dllm: FakeUpstream, fake_openai: FakeUpstream
) -> None:
    # `small` takes 200 tokens; a ~1,500-token step goes to `same-size` (no window known)
    # without calling `small` at all.
    long_body = {
        "model": "auto",
        "messages": [{"role": "user", "content": "Summarise: " + "the parcel was late " * 300}],
    }
    fake_dllm.set_reply("summary")
    with running_app(_policy(tmp_path, fake_dllm, fake_openai, 200), tmp_path) as client:
        r = client.post("/v1/chat/completions", json=long_body)
        assert r.status_code == 200, r.text
        assert r.headers["x-stepgate-backend"] == "same-size"
        _, attempts = request_rows(client, r.headers["x-request-id"])
        assert [a["backend"] for a in attempts] == ["same-size"]
        short = client.post("/v1/chat/completions", json=BODY)
        assert short.headers["x-stepgate-backend"] == "small"


def test_policy_check_names_an_unknown_context_fallback(tmp_path: Path) -> None:
    from gateway.policy.loader import PolicyLoadError, parse_policy

    text = POLICY.format(small="http://127.0.0.1:1/v1", large="http://127.0.0.1:2/v1", window=10)
    with pytest.raises(PolicyLoadError) as info:
        parse_policy(text.replace("[large]", "[lareg]"), path="p.yaml", env={})
    assert "context_fallbacks[0]" in str(info.value) and "'large'" in str(info.value)


def test_a_content_filter_rejection_is_not_a_context_problem(
    tmp_path: Path, fake_dllm: FakeUpstream, fake_openai: FakeUpstream
) -> None:
    # failoverbench S13: one attempt, the caller gets the rejection, no fallback of either kind.
    body = {
        "error": {
            "message": "Your request was rejected as a result of our safety system.",
            "type": "invalid_request_error",
            "code": "content_policy_violation",
        }
    }
    fake_dllm.script([persistent(status(400, body=body))])
    with running_app(_policy(tmp_path, fake_dllm, fake_openai, 100000), tmp_path) as client:
        r = client.post("/v1/chat/completions", json=BODY)
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "content_policy_violation"
    assert "safety system" in r.json()["error"]["message"]
    assert len(fake_dllm.requests) == 1 and not fake_openai.requests
