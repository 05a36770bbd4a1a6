"""Structured JSON logs: one parseable line per request, redaction at the formatter."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import orjson
import pytest

from gateway.telemetry.logs import configure_logging, log_request
from tests.support.telemetry_builders import attempt, escalated_request, request


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    buf = io.StringIO()
    handler = configure_logging("info", stream=buf)
    try:
        yield buf
    finally:
        logging.getLogger("stepgate").removeHandler(handler)


def lines(buf: io.StringIO) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in buf.getvalue().splitlines()]


def test_one_json_line_per_request(stream: io.StringIO) -> None:
    log_request(escalated_request(), overhead_ms=0.91234)
    (line,) = lines(stream)
    assert line["logger"] == "stepgate.request"
    assert line["level"] == "info"
    assert line["request_id"] == "req-1"
    assert line["route"] == "refunds"
    assert line["backend"] == "ar-main"
    assert line["kind"] == "extract"
    assert line["status"] == 200
    assert line["latency_ms"] == 850.0
    assert line["cost_usd"] == "0.001002"
    assert line["overhead_ms"] == 0.912
    assert line["escalated"] is True
    assert line["attempts"] == 3


def test_server_errors_log_at_warning_and_unknown_cost_is_explicit(stream: io.StringIO) -> None:
    rec = request(attempt(cost_nanos=None), status=502, error_class="provider_unavailable")
    log_request(rec)
    (line,) = lines(stream)
    assert line["level"] == "warning"
    assert line["cost_usd"] == "unknown"
    assert line["error_class"] == "provider_unavailable"


def test_level_filters_and_reconfigure_replaces_handler() -> None:
    buf = io.StringIO()
    configure_logging("info", stream=io.StringIO())
    handler = configure_logging("warning", stream=buf)
    try:
        assert (
            sum(getattr(h, "_stepgate", False) for h in logging.getLogger("stepgate").handlers) == 1
        )
        log_request(request())
        logging.getLogger("stepgate.ledger").warning("spool growing", extra={"fields": {"n": 3}})
        (line,) = lines(buf)
        assert line["msg"] == "spool growing" and line["n"] == 3
    finally:
        logging.getLogger("stepgate").removeHandler(handler)


def test_exceptions_are_logged_without_their_causes_text(stream: io.StringIO) -> None:
    try:
        try:
            raise ValueError("customer wrote: my card is 4111 1111 1111 1111")
        except ValueError as exc:
            raise RuntimeError("upstream said Bearer abcdefghijklmnop1234") from exc
    except RuntimeError:
        logging.getLogger("stepgate.api").exception("request failed")
    (line,) = lines(stream)
    text = stream.getvalue()
    assert "4111" not in text
    assert "abcdefghijklmnop1234" not in text
    assert line["exc_type"] == "RuntimeError"
    assert line["exc"] == "upstream said Bearer [REDACTED]"
    assert isinstance(line["traceback"], list) and "ValueError" in line["traceback"]


def test_request_lines_are_written_in_batches_and_on_flush(stream: io.StringIO) -> None:
    """The recorder keeps log lines off the moment right after a reply: they are written by a
    timer (or `flush`, which shutdown calls), each request exactly once."""
    import asyncio

    from gateway.recording import Finished
    from gateway.telemetry.metrics import Metrics
    from gateway.telemetry.recorder import FLUSH_S, TelemetryRecorder
    from gateway.telemetry.tracing import Tracer
    from tests.support.telemetry_builders import profile

    def finished(rid: str) -> Finished:
        return Finished(
            record=request(request_id=rid),
            profile=profile(),
            overhead_ms=0.5,
            classify_ns=(0, 1000),
            request_model="auto",
            finish_reason="stop",
            traceparent=None,
        )

    async def scenario() -> None:
        recorder = TelemetryRecorder(metrics=Metrics(), tracer=Tracer.disabled())
        recorder.record(finished("a"))
        recorder.record(finished("b"))
        assert lines(stream) == []  # nothing written at reply time
        await asyncio.sleep(FLUSH_S * 3)
        assert [line["request_id"] for line in lines(stream)] == ["a", "b"]
        recorder.record(finished("c"))
        recorder.flush()  # shutdown does this
        recorder.flush()
        assert [line["request_id"] for line in lines(stream)] == ["a", "b", "c"]

    asyncio.run(scenario())
