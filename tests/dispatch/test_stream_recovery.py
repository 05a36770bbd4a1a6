"""Stream recovery after the first byte (issue 15, item 3): `stream_recovery: continue`
splices a continuation from the next candidate into the same client stream; `restart` holds
back the first tokens so an early failure is retried unseen.

The fakes record the content tokens each stream actually wrote (`RecordedRequest.sent`), so
the seam is checked against what was sent, not against what the test hoped for.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.support.app_client import running_app
from tests.support.fakes.upstream import (
    FakeUpstream,
    cut_stream,
    malformed_chunk,
    ok,
    stall,
    status,
)
from tests.support.ledger_view import request_rows

POLICY = """
version: 1
backends:
  primary:
    type: dllm
    engine: vllm
    base_url: {primary}
    model: test-primary
    logprobs: false
    timeouts: {{connect_s: 1, request_s: 10, stall_s: 1}}
    pricing: {{input_per_mtok_usd: "0.05", output_per_mtok_usd: "0.20"}}
  backup:
    type: dllm
    engine: {engine}
    base_url: {backup}
    model: test-backup
    logprobs: false
    timeouts: {{connect_s: 1, request_s: 10}}
    pricing: {{input_per_mtok_usd: "0.40", output_per_mtok_usd: "1.60"}}
baseline: backup
retry: {{max_attempts: 1}}
routes:
  - name: only
    target: primary
    fallbacks: [backup]
    stream_recovery: {recovery}
    stream_buffer_tokens: 8
default_route: only
"""
BODY = {
    "model": "auto",
    "stream": True,
    "stream_options": {"include_usage": True},
    "messages": [{"role": "user", "content": "Where is my parcel?"}],
}
ANSWER = (
    "Your parcel left our warehouse in Leeds on Monday morning and is now with the courier, "
    "who expects to deliver it by Friday afternoon; you will get a text an hour before."
)
TOKENS = [(" " if i else "") + w for i, w in enumerate(ANSWER.split(" "))]


def _app(tmp_path: Path, primary: FakeUpstream, backup: FakeUpstream, **fields: str) -> Any:
    values = {"engine": "openai", "recovery": "continue", **fields}
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY.format(primary=primary.openai_base, backup=backup.openai_base, **values))
    return running_app(path, tmp_path)


def _events(text: str) -> list[Any]:
    out = []
    for line in text.split("\n"):
        if line.startswith("data: "):
            payload = line[6:]
            out.append(payload if payload == "[DONE]" else orjson.loads(payload))
    return out


def _content(events: list[Any]) -> str:
    return "".join(
        e["choices"][0]["delta"].get("content") or ""
        for e in events
        if isinstance(e, dict) and e.get("choices")
    )


def _split_at_cut(cut: int) -> tuple[str, str]:
    """Text the primary sends before a cut after `cut` events (the role chunk is event 1)."""
    sent = "".join(TOKENS[: cut - 1])
    return sent, ANSWER[len(sent) :]


@pytest.mark.parametrize("cut", [2, 5, 9, random.Random(15).randint(3, len(TOKENS) - 2)])
def test_a_cut_stream_is_continued_by_instruction_without_a_repeat(
    tmp_path: Path, fake_dllm: FakeUpstream, fake_openai: FakeUpstream, cut: int
) -> None:
    sent, rest = _split_at_cut(cut)
    # A model asked to continue often repeats the last words first: the seam must cut them.
    repeat = sent[-20:] if len(sent) >= 20 else ""
    fake_dllm.script([cut_stream(cut, ok(tokens=TOKENS))])
    fake_openai.script([ok(repeat + rest)])
    with _app(tmp_path, fake_dllm, fake_openai) as client:
        r = client.post("/v1/chat/completions", json=BODY)
        assert r.status_code == 200
        events = _events(r.text)
        _, attempts = request_rows(client, r.headers["x-request-id"])
    primary_sent = "".join(fake_dllm.last_request.sent)
    backup_sent = "".join(fake_openai.last_request.sent)
    assert primary_sent == sent
    assert backup_sent == repeat + rest
    assert _content(events) == ANSWER  # one whole answer: nothing doubled, nothing missing
    assert events[-1] == "[DONE]"
    assert not any(isinstance(e, dict) and "error" in e for e in events)
    ids = {e["id"] for e in events if isinstance(e, dict) and e.get("choices")}
    assert len(ids) == 1  # one stream as far as the client can tell
    roles = [e for e in events if isinstance(e, dict) and e.get("choices")]
    assert sum(1 for e in roles if e["choices"][0]["delta"].get("role")) == 1
    # The continuation was asked by instruction, with the text already sent.
    messages = fake_openai.last_request.body["messages"]
    assert messages[-2] == {"role": "assistant", "content": sent}
    assert messages[-1]["role"] == "user" and "Continue" in messages[-1]["content"]
    # Both attempts billed from real token counts, and the splice is marked.
    assert [(a["backend"], a["role"], a["outcome"]) for a in attempts] == [
        ("primary", "primary", "error"),
        ("backup", "continuation", "ok"),
    ]
    assert attempts[0]["completion_tokens"] == len(fake_dllm.last_request.sent)
    assert attempts[1]["completion_tokens"] == fake_openai.usage_totals()["completion_tokens"]


def test_a_prefill_backend_continues_the_final_message(
    tmp_path: Path, fake_dllm: FakeUpstream, fake_openai: FakeUpstream
) -> None:
    sent, rest = _split_at_cut(7)
    fake_dllm.script([cut_stream(7, ok(tokens=TOKENS))])
    fake_openai.script([ok(rest)])
    with _app(tmp_path, fake_dllm, fake_openai, engine="vllm") as client:
        r = client.post("/v1/chat/completions", json=BODY)
    assert _content(_events(r.text)) == ANSWER
    body = fake_openai.last_request.body
    assert body["messages"][-1] == {"role": "assistant", "content": sent}
    assert body["continue_final_message"] is True and body["add_generation_prompt"] is False


@pytest.mark.parametrize("fault", ["stall", "malformed"])
def test_a_stall_or_a_malformed_chunk_is_continued_too(
    tmp_path: Path, fake_dllm: FakeUpstream, fake_openai: FakeUpstream, fault: str
) -> None:
    sent, rest = _split_at_cut(6)
    behaviour = (
        stall(6, 20, ok(tokens=TOKENS))
        if fault == "stall"
        else malformed_chunk(6, ok(tokens=TOKENS))
    )
    fake_dllm.script([behaviour])
    fake_openai.script([ok(rest)])
    with _app(tmp_path, fake_dllm, fake_openai) as client:
        r = client.post("/v1/chat/completions", json=BODY)
    events = _events(r.text)
    if fault == "stall":
        # The stalled primary got as far as the stall (the rest came after the gateway left).
        assert "".join(fake_dllm.last_request.sent).startswith(sent)
    # The malformed chunk arrives after `sent`; everything the fake wrote later is ignored.
    assert fake_openai.last_request.body["messages"][-2]["content"] == sent
    assert _content(events) == ANSWER
    assert events[-1] == "[DONE]"


def test_a_refused_continuation_ends_with_a_clean_error(
    tmp_path: Path, fake_dllm: FakeUpstream, fake_openai: FakeUpstream
) -> None:
    sent, _ = _split_at_cut(6)
    fake_dllm.script([cut_stream(6, ok(tokens=TOKENS))])
    fake_openai.script([status(400)])  # e.g. a provider that refuses a final assistant turn
    with _app(tmp_path, fake_dllm, fake_openai) as client:
        r = client.post("/v1/chat/completions", json=BODY)
        events = _events(r.text)
        req, attempts = request_rows(client, r.headers["x-request-id"])
    assert _content(events) == sent  # what was sent, once, and nothing after it
    assert "error" in events[-1] and "[DONE]" not in events
    assert req["status"] == 502
    assert [a["role"] for a in attempts] == ["primary", "continuation"]


def test_tool_call_streams_are_not_continued(
    tmp_path: Path, fake_dllm: FakeUpstream, fake_openai: FakeUpstream
) -> None:
    call = {"name": "lookup_order", "arguments": {"order_id": "A-7731", "fields": ["eta"]}}
    fake_dllm.script([cut_stream(4, ok("", tool_calls=[call]))])
    with _app(tmp_path, fake_dllm, fake_openai) as client:
        r = client.post("/v1/chat/completions", json=BODY)
    assert "error" in _events(r.text)[-1]
    assert len(fake_openai.requests) == 0


def test_without_recovery_the_stream_ends_in_band_as_before(
    tmp_path: Path, fake_dllm: FakeUpstream, fake_openai: FakeUpstream
) -> None:
    fake_dllm.script([cut_stream(6, ok(tokens=TOKENS))])
    with _app(tmp_path, fake_dllm, fake_openai, recovery="none") as client:
        r = client.post("/v1/chat/completions", json=BODY)
    assert "error" in _events(r.text)[-1]
    assert len(fake_openai.requests) == 0


def test_restart_retries_an_early_failure_unseen(
    tmp_path: Path, fake_dllm: FakeUpstream, fake_openai: FakeUpstream
) -> None:
    # The primary fails after 4 tokens, inside the 8-token buffer: the caller sees only the
    # backup's whole answer, none of the primary's words.
    fake_dllm.script([cut_stream(5, ok(tokens=[" nope"] * 12))])
    fake_openai.script([ok(tokens=TOKENS)])
    with _app(tmp_path, fake_dllm, fake_openai, recovery="restart") as client:
        r = client.post("/v1/chat/completions", json=BODY)
        events = _events(r.text)
        _, attempts = request_rows(client, r.headers["x-request-id"])
    assert len(fake_dllm.last_request.sent) == 4
    assert _content(events) == ANSWER and events[-1] == "[DONE]"
    assert [(a["backend"], a["outcome"]) for a in attempts] == [
        ("primary", "error"),
        ("backup", "ok"),
    ]
    assert attempts[0]["completion_tokens"] == 4


def test_restart_past_the_buffer_is_an_in_band_error(
    tmp_path: Path, fake_dllm: FakeUpstream, fake_openai: FakeUpstream
) -> None:
    fake_dllm.script([cut_stream(14, ok(tokens=TOKENS))])  # 13 tokens: past the 8 held back
    with _app(tmp_path, fake_dllm, fake_openai, recovery="restart") as client:
        r = client.post("/v1/chat/completions", json=BODY)
    events = _events(r.text)
    assert "error" in events[-1]
    assert _content(events) == "".join(TOKENS[:13])
