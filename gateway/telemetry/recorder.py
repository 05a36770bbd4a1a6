"""The telemetry recorder: metrics at once, the log line and trace spans just after the reply."""

from __future__ import annotations

import asyncio

from gateway.pipeline import Finished
from gateway.telemetry.genai import TraceExtras
from gateway.telemetry.logs import log_request
from gateway.telemetry.metrics import Metrics
from gateway.telemetry.tracing import Tracer


class TelemetryRecorder:
    def __init__(self, *, metrics: Metrics, tracer: Tracer) -> None:
        self.metrics = metrics
        self.tracer = tracer

    def record(self, finished: Finished) -> None:
        t0, t1 = finished.classify_ns
        self.metrics.observe_request(
            finished.record,
            overhead_ms=finished.overhead_ms,
            evidence=finished.profile.evidence,
            classify_s=(t1 - t0) / 1e9,
        )
        # Logging and span export cost tens to hundreds of microseconds: run them on the next
        # loop turn, after the handler has handed its response over.
        asyncio.get_running_loop().call_soon(self._slow_path, finished)

    def _slow_path(self, finished: Finished) -> None:
        log_request(finished.record, overhead_ms=finished.overhead_ms)
        if self.tracer.enabled:
            self.tracer.record(
                finished.record,
                profile=finished.profile,
                classify_ns=finished.classify_ns,
                extras=TraceExtras(
                    request_model=finished.request_model,
                    finish_reasons=(finished.finish_reason,) if finished.finish_reason else (),
                    traceparent=finished.traceparent,
                ),
            )
