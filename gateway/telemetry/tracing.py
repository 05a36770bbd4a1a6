"""OpenTelemetry traces for finished requests, exported with OTLP HTTP/protobuf; a no-op when off.

The request path records after the fact: `Tracer.record` builds the whole span tree of one request
from its `RequestRecord` with explicit start/end times, so nothing on the hot path holds a span
open. Tree (times from the record; attempt times from `AttemptRecord.started_at`/`latency_ms`):

    stepgate.request  (SERVER)          one per request
    ├── stepgate.classify               when a profile is given
    ├── chat {model}  (CLIENT)          one per primary / retry / fallback attempt
    └── stepgate.escalation             one per escalation attempt
        └── chat {model}  (CLIENT)

The OTel SDK is imported only when tracing is on; when off, `record` returns at its first line.
"""

from __future__ import annotations

from importlib import metadata
from typing import TYPE_CHECKING, Final

from gateway.core.profile import StepProfile
from gateway.core.records import AttemptRecord, RequestRecord
from gateway.telemetry import genai
from gateway.telemetry.genai import Attributes, TraceExtras

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.trace import Span
    from opentelemetry.trace import Tracer as OtelTracer

    from gateway.settings import Settings

TRACES_PATH: Final = "/v1/traces"
_INSTRUMENTATION: Final = "gateway.telemetry"


def traces_url(endpoint: str) -> str:
    """`STEPGATE_OTLP_ENDPOINT` is a base URL (like OTEL_EXPORTER_OTLP_ENDPOINT); spans go to
    `<base>/v1/traces`. A URL that already ends in /v1/traces is used as it is."""
    base = endpoint.rstrip("/")
    return base if base.endswith(TRACES_PATH) else base + TRACES_PATH


def _ns(unix_s: float) -> int:
    return int(unix_s * 1e9)


class Tracer:
    """Owns one TracerProvider (or none). Build in the lifespan; `shutdown()` at exit flushes.

    `record_content`: the policy's opt-in to put prompts and completions on spans; default off.
    """

    def __init__(
        self,
        *,
        provider: TracerProvider | None = None,
        record_content: bool = False,
    ) -> None:
        self._provider = provider
        self._tracer: OtelTracer | None = (
            provider.get_tracer(_INSTRUMENTATION) if provider is not None else None
        )
        self.record_content = record_content

    @classmethod
    def disabled(cls) -> Tracer:
        return cls()

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        record_content: bool = False,
        service_name: str = "stepgate",
        sample_ratio: float = 1.0,
    ) -> Tracer:
        """OTLP HTTP/protobuf to `settings.otlp_endpoint` when set; otherwise a no-op tracer.

        `sample_ratio` < 1 keeps that share of new traces (a caller's sampled `traceparent`
        is always honoured); unsampled requests cost about a microsecond."""
        if not settings.otlp_endpoint:
            return cls.disabled()
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter(endpoint=traces_url(settings.otlp_endpoint), timeout=5)
        return cls.with_exporter(
            exporter,
            record_content=record_content,
            service_name=service_name,
            sample_ratio=sample_ratio,
        )

    @classmethod
    def with_exporter(
        cls,
        exporter: SpanExporter,
        *,
        record_content: bool = False,
        service_name: str = "stepgate",
        batch: bool = True,
        sample_ratio: float = 1.0,
    ) -> Tracer:
        """Any SDK exporter; `batch=False` exports synchronously (tests, debugging)."""
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
        from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

        resource = Resource.create({"service.name": service_name, "service.version": _version()})
        provider = TracerProvider(
            resource=resource, sampler=ParentBased(TraceIdRatioBased(sample_ratio))
        )
        processor = BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter)
        provider.add_span_processor(processor)
        return cls(provider=provider, record_content=record_content)

    @property
    def enabled(self) -> bool:
        return self._tracer is not None

    def record(
        self,
        record: RequestRecord,
        *,
        profile: StepProfile | None = None,
        classify_ns: tuple[int, int] | None = None,
        extras: TraceExtras | None = None,
        record_content: bool | None = None,
    ) -> None:
        """Emit the span tree of one finished request (see module docstring).

        `classify_ns`: (start, end) of classification from `time.time_ns()`. `extras`: what the
        record lacks (the client's model name, finish reasons, the caller's `traceparent`, and
        messages used only when content recording is on). `record_content` overrides the
        constructor's flag for this request (a policy reload may change it).
        """
        tracer = self._tracer
        if tracer is None:
            return
        from opentelemetry import trace
        from opentelemetry.trace import SpanKind

        content = self.record_content if record_content is None else record_content
        start = _ns(record.started_at)
        end = start + int(record.latency_ms * 1e6)
        root = tracer.start_span(
            genai.REQUEST_SPAN,
            context=_parent(extras.traceparent if extras else None),
            kind=SpanKind.SERVER,
            start_time=start,
        )
        if not root.is_recording():  # not sampled: children would be dropped too
            root.end(end_time=end)
            return
        root.set_attributes(genai.request_attributes(record, extras, record_content=content))
        if record.status >= 500:
            _set_error(root, record.error_class)
        ctx = trace.set_span_in_context(root)
        if profile is not None:
            c_start, c_end = classify_ns if classify_ns is not None else (start, start)
            span = tracer.start_span(
                genai.CLASSIFY_SPAN,
                context=ctx,
                attributes=genai.profile_attributes(profile, record_content=content),
                start_time=c_start,
            )
            span.end(end_time=c_end)
        previous: AttemptRecord | None = None
        for attempt in record.attempts:
            a_start = _ns(attempt.started_at)
            a_end = a_start + int(attempt.latency_ms * 1e6)
            parent = ctx
            escalation: Span | None = None
            if attempt.role == "escalation":
                escalation = tracer.start_span(
                    genai.ESCALATION_SPAN,
                    context=ctx,
                    attributes=genai.escalation_attributes(record, attempt, previous),
                    start_time=a_start,
                )
                parent = trace.set_span_in_context(escalation)
            self._attempt_span(tracer, attempt, record, parent, a_start, a_end)
            if escalation is not None:
                escalation.end(end_time=a_end)
            previous = attempt
        root.end(end_time=end)

    @staticmethod
    def _attempt_span(
        tracer: OtelTracer,
        attempt: AttemptRecord,
        record: RequestRecord,
        parent: Context,
        start: int,
        end: int,
    ) -> None:
        from opentelemetry.trace import SpanKind

        attrs: Attributes = genai.attempt_attributes(attempt, record)
        span = tracer.start_span(
            genai.attempt_span_name(attempt),
            context=parent,
            kind=SpanKind.CLIENT,
            attributes=attrs,
            start_time=start,
        )
        if attempt.outcome == "error":
            _set_error(span, attempt.error_class)
        span.end(end_time=end)

    def force_flush(self, timeout_ms: int = 5000) -> bool:
        return self._provider.force_flush(timeout_ms) if self._provider is not None else True

    def shutdown(self) -> None:
        """Flush pending spans and stop the exporter thread. Blocking: run it off the event loop
        (`await asyncio.to_thread(tracer.shutdown)`)."""
        if self._provider is not None:
            self._provider.shutdown()
            self._provider = None
            self._tracer = None


def _parent(traceparent: str | None) -> Context | None:
    if not traceparent:
        return None
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    return TraceContextTextMapPropagator().extract({"traceparent": traceparent})


def _set_error(span: Span, error_class: str | None) -> None:
    from opentelemetry.trace import Status, StatusCode

    span.set_status(Status(StatusCode.ERROR, error_class or "error"))


def _version() -> str:
    try:
        return metadata.version("stepgate")
    except metadata.PackageNotFoundError:
        return "unknown"
