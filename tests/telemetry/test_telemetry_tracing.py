"""Traces: real OTLP HTTP/protobuf exports received by a local HTTP server."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from gateway.settings import Settings
from gateway.telemetry.genai import TraceExtras
from gateway.telemetry.tracing import Tracer, traces_url
from tests.support.telemetry_builders import T0, escalated_request, profile


@dataclass
class Receiver:
    url: str
    posts: list[tuple[str, str, bytes]] = field(default_factory=list)

    def spans(self) -> list[dict[str, Any]]:
        out = []
        for _, _, body in self.posts:
            req = ExportTraceServiceRequest()
            req.ParseFromString(body)
            for rs in req.resource_spans:
                resource = {kv.key: _value(kv.value) for kv in rs.resource.attributes}
                for ss in rs.scope_spans:
                    for s in ss.spans:
                        out.append(
                            {
                                "name": s.name,
                                "kind": s.kind,
                                "trace_id": s.trace_id.hex(),
                                "span_id": s.span_id.hex(),
                                "parent": s.parent_span_id.hex(),
                                "start": s.start_time_unix_nano,
                                "end": s.end_time_unix_nano,
                                "status": s.status.code,
                                "attrs": {kv.key: _value(kv.value) for kv in s.attributes},
                                "resource": resource,
                            }
                        )
        return out


def _value(v: AnyValue) -> Any:
    which = v.WhichOneof("value")
    if which == "array_value":
        return tuple(_value(x) for x in v.array_value.values)
    return getattr(v, which) if which else None


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    posts: list[tuple[str, str, bytes]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            posts.append((self.path, self.headers.get("Content-Type", ""), body))
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Receiver(url=f"http://127.0.0.1:{server.server_address[1]}", posts=posts)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


def test_exports_the_span_tree_with_genai_attributes(receiver: Receiver) -> None:
    tracer = Tracer.from_settings(Settings(otlp_endpoint=receiver.url + "/"))
    assert tracer.enabled
    rec = escalated_request()
    c_start = int(T0 * 1e9) + 100_000
    tracer.record(
        rec,
        profile=profile(kind="extract"),
        classify_ns=(c_start, c_start + 200_000),
        extras=TraceExtras(request_model="auto", finish_reasons=("stop",), traceparent=TRACEPARENT),
    )
    tracer.shutdown()

    assert receiver.posts, "nothing was exported"
    path, content_type, _ = receiver.posts[0]
    assert path == "/v1/traces"
    assert content_type == "application/x-protobuf"
    spans = {(s["name"], s["attrs"].get("stepgate.attempt")): s for s in receiver.spans()}
    assert len(spans) == 6
    root = spans[("stepgate.request", None)]
    assert root["trace_id"] == TRACE_ID and root["parent"] == "00f067aa0ba902b7"
    assert root["kind"] == 2  # SERVER
    assert root["start"] == int(T0 * 1e9)
    assert root["end"] - root["start"] == 850_000_000
    assert root["resource"]["service.name"] == "stepgate"
    a = root["attrs"]
    assert a["gen_ai.operation.name"] == "chat"
    assert a["gen_ai.request.model"] == "auto"
    assert a["gen_ai.response.model"] == "anthropic/claude-sonnet-4-5"
    assert a["gen_ai.provider.name"] == "anthropic"
    assert a["gen_ai.usage.input_tokens"] == 130
    assert a["gen_ai.usage.output_tokens"] == 40
    assert a["gen_ai.response.finish_reasons"] == ("stop",)
    assert a["stepgate.route"] == "refunds"
    assert a["stepgate.step_kind"] == "extract"
    assert a["stepgate.escalated"] is True
    assert a["stepgate.cost_usd"] == pytest.approx(0.001002)

    classify = spans[("stepgate.classify", None)]
    assert classify["parent"] == root["span_id"]
    assert (classify["start"], classify["end"]) == (c_start, c_start + 200_000)
    assert classify["attrs"]["stepgate.evidence"] == "structure"
    assert "stepgate.signals" not in classify["attrs"]

    failed = spans[("chat diffusiongemma-2b", 0)]
    assert failed["kind"] == 3  # CLIENT
    assert failed["parent"] == root["span_id"]
    assert failed["status"] == 2  # ERROR
    assert failed["attrs"]["error.type"] == "provider_unavailable"
    retry = spans[("chat diffusiongemma-2b", 1)]
    assert retry["attrs"]["stepgate.attempt.role"] == "retry" and retry["status"] != 2

    escalation = spans[("stepgate.escalation", None)]
    assert escalation["parent"] == root["span_id"]
    assert escalation["attrs"]["stepgate.escalation.reason"] == "low_confidence"
    upgraded = spans[("chat anthropic/claude-sonnet-4-5", 2)]
    assert upgraded["parent"] == escalation["span_id"]
    assert upgraded["attrs"]["gen_ai.provider.name"] == "anthropic"
    assert upgraded["attrs"]["stepgate.escalated"] is True
    assert upgraded["start"] == int((T0 + 0.045) * 1e9)


def test_without_endpoint_the_tracer_is_a_noop(receiver: Receiver) -> None:
    tracer = Tracer.from_settings(Settings(otlp_endpoint=None))
    assert not tracer.enabled
    tracer.record(escalated_request(), profile=profile())
    assert tracer.force_flush()
    tracer.shutdown()
    assert receiver.posts == []


@pytest.mark.parametrize(
    ("endpoint", "url"),
    [
        ("http://collector:4318", "http://collector:4318/v1/traces"),
        ("http://collector:4318/", "http://collector:4318/v1/traces"),
        ("https://otel.example/v1/traces", "https://otel.example/v1/traces"),
    ],
)
def test_traces_url(endpoint: str, url: str) -> None:
    assert traces_url(endpoint) == url


def test_importing_tracing_does_not_load_the_sdk() -> None:
    import subprocess
    import sys
    from pathlib import Path

    code = (
        "import sys, gateway.telemetry.tracing, gateway.telemetry.metrics, gateway.telemetry.logs;"
        "assert 'opentelemetry.sdk.trace' not in sys.modules, 'SDK imported at startup'"
    )
    root = Path(__file__).resolve().parents[2]
    subprocess.run([sys.executable, "-c", code], cwd=root, check=True)


def test_sampling_drops_whole_traces_but_honours_a_sampled_caller() -> None:
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    tracer = Tracer.with_exporter(exporter, batch=False, sample_ratio=0.0)
    tracer.record(escalated_request(), profile=profile())
    assert exporter.get_finished_spans() == ()
    tracer.record(escalated_request(), extras=TraceExtras(traceparent=TRACEPARENT))
    assert len(exporter.get_finished_spans()) == 5
    tracer.shutdown()
