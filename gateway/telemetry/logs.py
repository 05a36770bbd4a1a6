"""Structured JSON logs for the `stepgate` logger hierarchy, redacted at the formatter.

One JSON object per line. Structured fields go in `extra={"fields": {...}}`; the formatter drops
content keys (messages, prompt, completion, ...), masks credential keys and credential-shaped
strings anywhere (message, fields, exception text). `log_request` writes the one line per request.
"""

from __future__ import annotations

import logging
import sys
import time
import traceback
from typing import IO, Any, Final

import orjson

from gateway.core.money import format_usd
from gateway.core.records import RequestRecord
from gateway.core.redact import redact, redact_value, safe_error_message

ROOT_LOGGER: Final = "stepgate"
REQUEST_LOGGER: Final = "stepgate.request"
_LEVELS: Final = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


class JsonFormatter(logging.Formatter):
    """`{"ts", "level", "logger", "msg", ...fields, "exc"?}`, every string passed through redact."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": _iso(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": redact(record.getMessage()),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            for key, value in fields.items():
                if key not in payload:
                    payload[str(key)] = redact_value(str(key), value)
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            payload["exc_type"] = type(exc).__name__
            payload["exc"] = safe_error_message(exc)
            payload["traceback"] = _frames(exc)
        return orjson.dumps(payload, default=str).decode()


def _frames(exc: BaseException) -> list[str]:
    """Code locations of the exception and its causes, without their messages.

    A formatted traceback repeats every chained exception's text, which may quote customer
    content; the (redacted) text of the outermost one is in `exc` already.
    """
    out: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        out.append(type(current).__name__)
        out.extend(
            f"  {frame.filename}:{frame.lineno} in {frame.name}"
            for frame in traceback.extract_tb(current.__traceback__)
        )
        current = current.__cause__ or current.__context__
    return out


def _iso(created: float) -> str:
    seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created))
    return f"{seconds}.{int(created % 1 * 1000):03d}Z"


def configure_logging(level: str, *, stream: IO[str] | None = None) -> logging.Handler:
    """Install the JSON handler on the `stepgate` logger (idempotent; replaces an earlier one).

    Call once at startup (lifespan or CLI) with `settings.log_level`. The hierarchy does not
    propagate to the root logger, so third-party handlers never see our records unredacted.
    Returns the handler (tests read from `stream`).
    """
    logger = logging.getLogger(ROOT_LOGGER)
    for old in [h for h in logger.handlers if getattr(h, "_stepgate", False)]:
        logger.removeHandler(old)
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler._stepgate = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.setLevel(_LEVELS.get(level.lower(), logging.INFO))
    logger.propagate = False
    return handler


def request_fields(record: RequestRecord, *, overhead_ms: float | None = None) -> dict[str, Any]:
    """The per-request log fields; ids, names and numbers only, never message contents."""
    fields: dict[str, Any] = {
        "request_id": record.request_id,
        "route": record.route,
        "backend": record.final_backend,
        "kind": record.step_kind,
        "status": record.status,
        "latency_ms": round(record.latency_ms, 3),
        "cost_usd": format_usd(record.cost_nanos),
        "escalated": record.escalated,
        "attempts": len(record.attempts),
        "stream": record.stream,
    }
    if overhead_ms is not None:
        fields["overhead_ms"] = round(overhead_ms, 3)
    if record.ttft_ms is not None:
        fields["ttft_ms"] = round(record.ttft_ms, 3)
    if record.error_class:
        fields["error_class"] = record.error_class
    if record.escalation_reason:
        fields["escalation_reason"] = record.escalation_reason
    if record.disposition != "final":
        fields["disposition"] = record.disposition
    if record.team:
        fields["team"] = record.team
    if record.client_request_id:
        fields["client_request_id"] = record.client_request_id
    if record.api_key_id:
        fields["api_key_id"] = record.api_key_id
    if record.cache_hit:
        fields["cache_hit"] = True
    return fields


def log_request(
    record: RequestRecord,
    *,
    overhead_ms: float | None = None,
    logger: logging.Logger | None = None,
) -> None:
    """One line per finished request on `stepgate.request`: info, warning for 5xx."""
    log = logger or logging.getLogger(REQUEST_LOGGER)
    level = logging.WARNING if record.status >= 500 else logging.INFO
    if log.isEnabledFor(level):
        log.log(level, "request", extra={"fields": request_fields(record, overhead_ms=overhead_ms)})
