"""A caller's JSON schema cannot make the gateway fetch a URL or stall the event loop.

`stepgate serve` runs as a process with a checked route; while an attack request is in flight
another thread probes `/healthz`. Findings reproduced: a remote `$ref` (fetched with urlopen on
the loop: every tenant froze for minutes) and a ReDoS `pattern` (`^(a+)+$` against 27 echoed
characters stalled every client for seconds).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.security.support import ledger_rows
from tests.support.e2e_server import serve
from tests.support.fakes.upstream import FakeUpstream

pytestmark = pytest.mark.e2e

POLICY = """
version: 1
backends:
  dllm:
    type: dllm
    engine: vllm
    base_url: {dllm}
    model: test-diffusion
    timeouts: {{connect_s: 1, request_s: 20}}
    pricing: {{input_per_mtok_usd: "0.05", output_per_mtok_usd: "0.20"}}
  ar-openai:
    type: litellm
    model: openai/gpt-4.1-mini
    api_key_env: TEST_OPENAI_KEY
    base_url: {openai}
    timeouts: {{connect_s: 1, request_s: 20}}
baseline: ar-openai
retry: {{max_attempts: 1}}
routes:
  - name: checked
    match: {{kind: [extract, format]}}
    target: dllm
    escalation: {{min_confidence: 0.7, on_low: flag}}
  - name: deep
    target: ar-openai
default_route: deep
"""
HINT = {"X-Step-Kind": "extract"}
EVIL = "a" * 27 + "!"


@pytest.fixture(scope="module")
def sink() -> Iterator[FakeUpstream]:
    with FakeUpstream(dialect="openai") as fake:
        yield fake


@pytest.fixture
def gateway(
    tmp_path: Path, fake_dllm: FakeUpstream, fake_openai: FakeUpstream
) -> Iterator[tuple[str, Path]]:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY.format(dllm=fake_dllm.openai_base, openai=fake_openai.openai_base))
    env = {"STEPGATE_PRELOAD_AR": "false", "TEST_OPENAI_KEY": "k"}
    with serve(policy, tmp_path, env=env) as base:
        yield base, tmp_path


class HealthProbe:
    """Probes /healthz every 20 ms from its own thread; keeps the slowest answer's latency."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.worst_s = 0.0
        self.count = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(timeout=30) as http:
            while not self._stop.is_set():
                t0 = time.monotonic()
                http.get(f"{self.base}/healthz").raise_for_status()
                self.worst_s = max(self.worst_s, time.monotonic() - t0)
                self.count += 1
                self._stop.wait(0.02)

    def __enter__(self) -> HealthProbe:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=60)


def schema_body(schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "model": "auto",
        "messages": [{"role": "user", "content": f"Extract the value from: {EVIL}"}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "v", "schema": schema}},
    }


@pytest.mark.parametrize(
    "where",
    ["response_format", "tool_parameters", "nested_relative", "dynamic_ref"],
)
def test_remote_ref_is_a_400_and_nothing_is_fetched(
    gateway: tuple[str, Path], sink: FakeUpstream, fake_dllm: FakeUpstream, where: str
) -> None:
    base, _ = gateway
    remote = f"{sink.url}/s.json"
    if where == "tool_parameters":
        body: dict[str, Any] = {
            "model": "auto",
            "messages": [{"role": "user", "content": "Look order 12 up"}],
            "tools": [
                {"type": "function", "function": {"name": "f", "parameters": {"$ref": remote}}}
            ],
        }
    elif where == "nested_relative":
        body = schema_body(
            {
                "$id": f"{sink.url}/root.json",
                "type": "object",
                "properties": {"v": {"$ref": "other.json"}},
            }
        )
    elif where == "dynamic_ref":
        body = schema_body({"$dynamicRef": remote})
    else:
        body = schema_body({"$ref": remote})
    r = httpx.post(f"{base}/v1/chat/completions", json=body, headers=HINT, timeout=30)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == "remote_ref"
    assert "$defs" in r.json()["error"]["message"]  # says how to fix it
    assert sink.requests == []
    assert fake_dllm.requests == []


def test_local_ref_still_validates(gateway: tuple[str, Path], fake_dllm: FakeUpstream) -> None:
    base, _ = gateway
    fake_dllm.set_reply(content='{"v": 12}', logprobs=-0.01)
    schema = {
        "$defs": {"id": {"type": "string"}},
        "type": "object",
        "properties": {"v": {"$ref": "#/$defs/id"}},
    }
    r = httpx.post(f"{base}/v1/chat/completions", json=schema_body(schema), headers=HINT)
    assert r.status_code == 200, r.text
    # 12 is not a string: the local reference was resolved and the answer checked against it.
    assert r.headers["x-stepgate-disposition"] == "draft"


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
@pytest.mark.parametrize(
    ("pattern", "value", "reason"),
    [
        # The reported attack: catastrophic in `re`; the regex engine answers it at once.
        ("^(a+)+$", EVIL, "schema_mismatch"),
        # Exponential in both engines: cut at the match time cap and reported unchecked.
        ("^(a|aa)+$", "a" * 40 + "!", "unchecked"),
    ],
    ids=["nested-plus", "alternation"],
)
def test_redos_pattern_neither_stalls_nor_loses_the_attempt(
    gateway: tuple[str, Path],
    fake_dllm: FakeUpstream,
    stream: bool,
    pattern: str,
    value: str,
    reason: str,
) -> None:
    base, workdir = gateway
    fake_dllm.set_reply(content=orjson.dumps({"v": value}).decode(), logprobs=-0.01)
    schema = {
        "type": "object",
        "properties": {"v": {"type": "string", "pattern": pattern}},
        "patternProperties": {"^(b|bb)+$": {"type": "string"}},
        "additionalProperties": False,
    }
    body = {**schema_body(schema), "stream": stream}
    with HealthProbe(base) as probe:
        t0 = time.monotonic()
        r = httpx.post(f"{base}/v1/chat/completions", json=body, headers=HINT, timeout=60)
        took = time.monotonic() - t0
    assert r.status_code == 200, r.text
    # Not accepted: the value fails the pattern, or the schema could not be evaluated.
    assert r.headers["x-stepgate-disposition"] == "draft"
    assert took < 5, took  # it was 8+ s of a frozen loop per attack before
    assert probe.count >= 1 and probe.worst_s < 0.1, (probe.count, probe.worst_s)
    rows = ledger_rows(f"sqlite:///{workdir}/ledger.db", 1)
    assert rows[0]["escalation_reason"] == reason
    assert rows[0]["final_backend"] == "dllm"
