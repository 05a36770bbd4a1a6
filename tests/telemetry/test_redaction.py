"""Redaction: credential shapes are masked, and a planted canary key and canary customer text
never reach logs, error bodies, exported spans or metrics."""

from __future__ import annotations

import io
import logging

import orjson
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pydantic import BaseModel, ValidationError

from gateway.core.errors import GatewayError
from gateway.core.redact import (
    MASK,
    OMITTED,
    looks_secret,
    redact,
    redact_value,
    safe_error_message,
)
from gateway.ingress.openai import render_error as render
from gateway.telemetry.genai import TraceExtras
from gateway.telemetry.logs import configure_logging, log_request
from gateway.telemetry.metrics import Metrics
from gateway.telemetry.tracing import Tracer
from tests.support.telemetry_builders import attempt, escalated_request, profile, request

CANARY_KEY = "sk-proj-CaNaRy7k3yZ9x8w7v6u5t4s3r2q1p0"
CANARY_TEXT = "my parcel ZEBRA-PLUM-4471 never arrived"


@pytest.mark.parametrize(
    "secret",
    [
        "sk-" + "abcdefghijklmnopqrstuvwxyz012345",  # split: a fake key, not a leaked one
        "sk-proj-AbC123dEf456GhI789jKl012",
        "sk-ant-api03-AbCdEfGhIjKlMnOpQrStUvWxYz0123",
        "AKIAIOSFODNN7EXAMPLE",
        "AIzaSyA1234567890abcdefghijklmnopqrstuv",
        "ghp_0123456789abcdefghijABCDEFGHIJ012345",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N",
    ],
)
def test_key_shapes_are_masked(secret: str) -> None:
    out = redact(f"failed with key {secret} at upstream")
    assert secret not in out and MASK in out
    assert looks_secret(secret)


@pytest.mark.parametrize(
    ("text", "hidden"),
    [
        ("Authorization: Bearer abc.DEF-123_ghi~jkl", "abc.DEF-123_ghi~jkl"),
        ("api_key=Zq8vR2mXn4TyW7pLk3Hs9dFg", "Zq8vR2mXn4TyW7pLk3Hs9dFg"),
        ('{"token": "Zq8vR2mXn4TyW7pLk3Hs9dFg"}', "Zq8vR2mXn4TyW7pLk3Hs9dFg"),
        ("aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "wJalrXUtnFEMI"),
    ],
)
def test_values_after_key_words_are_masked(text: str, hidden: str) -> None:
    assert hidden not in redact(text)


@pytest.mark.parametrize(
    "text",
    [
        "route refunds escalated: low_confidence",
        "max_tokens: 256, model diffusiongemma-2b",
        "token count=aaaaaaaaaaaaaaaaaaaaaaaa",  # long but not high-entropy
        "the skeleton key sk-1 is short",
    ],
)
def test_ordinary_text_is_left_alone(text: str) -> None:
    assert redact(text) == text


def test_structured_values_drop_content_and_mask_secret_keys() -> None:
    value = {
        "messages": [{"role": "user", "content": CANARY_TEXT}],
        "headers": {"Authorization": "Bearer whatever", "x-request-id": "req-1"},
        "note": f"key {CANARY_KEY}",
        "count": 3,
    }
    out = redact_value(None, value)
    assert out == {
        "messages": OMITTED,
        "headers": {"Authorization": MASK, "x-request-id": "req-1"},
        "note": "key sk-" + MASK,
        "count": 3,
    }


class _Body(BaseModel):
    max_tokens: int


def _validation_error() -> ValidationError:
    try:
        _Body.model_validate({"max_tokens": f"{CANARY_TEXT} {CANARY_KEY}"})
    except ValidationError as exc:
        return exc
    raise AssertionError("validation should have failed")


def _assert_clean(text: str) -> None:
    assert CANARY_KEY not in text
    assert "CaNaRy7k3y" not in text
    assert CANARY_TEXT not in text
    assert "ZEBRA-PLUM" not in text


def test_canaries_never_reach_error_bodies() -> None:
    exc = _validation_error()
    assert "ZEBRA-PLUM" in str(exc)  # pydantic echoes the input; the boundary must not
    _, body, _ = render(GatewayError(safe_error_message(exc)))
    _assert_clean(body.decode())
    assert b"max_tokens" in body


def test_canaries_never_reach_logs() -> None:
    buf = io.StringIO()
    handler = configure_logging("debug", stream=buf)
    log = logging.getLogger("stepgate.api")
    try:
        log.info(
            "upstream call with %s",
            f"Authorization: Bearer {CANARY_KEY}",
            extra={
                "fields": {
                    "messages": [{"role": "user", "content": CANARY_TEXT}],
                    "prompt": CANARY_TEXT,
                    "api_key": CANARY_KEY,
                    "detail": f"provider echoed {CANARY_KEY}",
                }
            },
        )
        try:
            raise _validation_error()
        except ValidationError:
            log.exception("bad request body")
        log_request(escalated_request(), overhead_ms=1.0)
    finally:
        logging.getLogger("stepgate").removeHandler(handler)
    text = buf.getvalue()
    assert len(text.splitlines()) == 3
    for line in text.splitlines():
        orjson.loads(line)
    _assert_clean(text)


def test_canaries_never_reach_exported_spans() -> None:
    exporter = InMemorySpanExporter()
    tracer = Tracer.with_exporter(exporter, batch=False)
    extras = TraceExtras(
        request_model="auto",
        input_messages=({"role": "user", "content": f"{CANARY_TEXT} {CANARY_KEY}"},),
        output_messages=({"role": "assistant", "content": CANARY_TEXT},),
    )
    rec = request(escalated=True, escalation_reason=f"upstream said {CANARY_KEY}")
    tracer.record(rec, profile=profile(signals=(CANARY_TEXT,)), extras=extras)
    spans = exporter.get_finished_spans()
    assert len(spans) == 3
    dumped = "\n".join(s.to_json() for s in spans)
    _assert_clean(dumped)
    # With the policy's opt-in, content is recorded but credentials are still masked.
    exporter.clear()
    tracer.record(rec, extras=extras, record_content=True)
    dumped = "\n".join(s.to_json() for s in exporter.get_finished_spans())
    assert "ZEBRA-PLUM" in dumped
    assert "CaNaRy7k3y" not in dumped
    tracer.shutdown()


def test_canaries_never_reach_metrics() -> None:
    m = Metrics()
    failed = attempt(outcome="error", error_class=CANARY_KEY, backend=CANARY_KEY)
    retry = attempt(attempt=1, role="retry")
    rec = request(
        failed,
        retry,
        route=CANARY_KEY,
        team=CANARY_KEY,
        escalated=True,
        escalation_reason=CANARY_TEXT,
        step_kind=CANARY_TEXT,
    )
    m.observe_request(rec, overhead_ms=1, evidence=CANARY_TEXT, classify_s=0)
    m.set_backend_health(CANARY_KEY, False)
    m.store_error(CANARY_KEY, CANARY_TEXT)
    body, _ = m.render()
    _assert_clean(body.decode())
    assert b'route="other"' in body
