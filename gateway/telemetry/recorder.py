"""The telemetry recorder: metrics at once; log lines and trace spans in batches, off the reply.

A request's log line and spans cost tens to hundreds of microseconds. Written right after each
reply, that work sits exactly where a caller's next request arrives (an agent calls step after
step), so it is collected and written every `FLUSH_S` (at the latest; at once past `MAX_PENDING`
requests) and on shutdown (`flush`): lines arrive up to 0.1 s after their request ended.
"""

from __future__ import annotations

import asyncio

from gateway.recording import Finished
from gateway.telemetry.genai import TraceExtras
from gateway.telemetry.logs import log_request
from gateway.telemetry.metrics import Metrics
from gateway.telemetry.tracing import Tracer

FLUSH_S = 0.1
MAX_PENDING = 512


class TelemetryRecorder:
    def __init__(self, *, metrics: Metrics, tracer: Tracer) -> None:
        self.metrics = metrics
        self.tracer = tracer
        self._pending: list[Finished] = []
        self._flush_at: asyncio.TimerHandle | None = None

    def record(self, finished: Finished) -> None:
        t0, t1 = finished.classify_ns
        self.metrics.observe_request(
            finished.record,
            overhead_ms=finished.overhead_ms,
            evidence=finished.profile.evidence,
            classify_s=(t1 - t0) / 1e9,
        )
        self._pending.append(finished)
        if len(self._pending) >= MAX_PENDING:
            self.flush()
        elif self._flush_at is None:
            self._flush_at = asyncio.get_running_loop().call_later(FLUSH_S, self.flush)

    def flush(self) -> None:
        """Write every pending log line and span now."""
        if self._flush_at is not None:
            self._flush_at.cancel()
            self._flush_at = None
        pending, self._pending = self._pending, []
        for finished in pending:
            self._slow_path(finished)

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
