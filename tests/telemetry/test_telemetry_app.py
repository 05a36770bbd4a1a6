"""Telemetry through the running app: /metrics after real traffic, and OTLP spans exported."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from tests.support.app_client import running_app
from tests.support.fakes.upstream import FakeUpstream
from tests.telemetry.test_telemetry_tracing import Receiver, receiver  # noqa: F401 - fixture

BODY = {"model": "auto", "messages": [{"role": "user", "content": "billing or shipping?"}]}


def test_metrics_endpoint_counts_routed_requests(client: Any, fake_dllm: FakeUpstream) -> None:
    for _ in range(3):
        r = client.post("/v1/chat/completions", json=BODY, headers={"X-Step-Kind": "classify"})
        assert r.status_code == 200
    text = client.get("/metrics").text
    line = next(
        row
        for row in text.splitlines()
        if row.startswith("stepgate_requests_total{") and 'route="fast"' in row
    )
    assert 'backend="dllm"' in line and 'kind="classify"' in line
    assert float(line.rsplit(" ", 1)[1]) == 3.0
    assert "stepgate_cost_usd_total" in text
    assert 'stepgate_routing_decisions_total{evidence="hint",route="fast"}' in text


def test_app_exports_request_and_attempt_spans_over_otlp(
    receiver: Receiver,  # noqa: F811
    policy_file: Path,
    tmp_path: Path,
    fake_dllm: FakeUpstream,
) -> None:
    with running_app(policy_file, tmp_path, otlp_endpoint=receiver.url) as c:
        r = c.post("/v1/chat/completions", json=BODY, headers={"X-Step-Kind": "classify"})
        assert r.status_code == 200
    # The app's shutdown flushes the batch exporter.
    deadline = time.monotonic() + 5
    while not receiver.spans() and time.monotonic() < deadline:
        time.sleep(0.05)
    spans = receiver.spans()
    names = {s["name"] for s in spans}
    assert "stepgate.request" in names
    attempt = next(s for s in spans if s["name"].startswith("chat "))
    assert attempt["attrs"]["gen_ai.operation.name"] == "chat"
    assert attempt["attrs"]["gen_ai.request.model"] == "test-diffusion"
    request_span = next(s for s in spans if s["name"] == "stepgate.request")
    assert request_span["attrs"]["stepgate.route"] == "fast"
    assert request_span["attrs"]["stepgate.step_kind"] == "classify"
    assert "billing or shipping" not in str(spans)  # no prompt content by default
