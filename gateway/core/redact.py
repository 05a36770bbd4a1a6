"""Redaction: masks credential-shaped strings and drops message contents before anything is logged.

Used by the JSON log formatter, by span attribute mapping when content recording is on, at
the error boundary (`safe_error_message`) before an exception's text reaches a client or a log,
and on upstream text a connector relays (`connectors.http_status.relayable`). `mask_known` also
masks exact values the gateway holds (provider keys) whatever their shape. Pure functions over
compiled, immutable patterns; no state.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

MASK = "[REDACTED]"
OMITTED = "[omitted]"

# Keys whose values are customer content (OpenAI request/response fields and our own names):
# dropped wherever they appear in a structured log payload, whatever the value looks like.
CONTENT_KEYS = frozenset(
    {
        "messages",
        "message_content",
        "content",
        "prompt",
        "completion",
        "choices",
        "input",
        "output",
        "text",
        "tool_calls",
        "arguments",
        "body",
        "request_body",
        "response_body",
    }
)
# Keys whose values are credentials, whatever they look like.
SECRET_KEYS = frozenset(
    {
        "authorization",
        "api_key",
        "apikey",
        "x-api-key",
        "api-key",
        "password",
        "secret",
        "token",
        "access_token",
        "refresh_token",
        "admin_key",
        "cookie",
        "set-cookie",
    }
)

# Provider key shapes. Order matters: the Anthropic form is more specific than the OpenAI one.
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"sk-ant-[A-Za-z0-9_\-]{8,}"), "sk-ant-" + MASK),
    (re.compile(r"sk-[A-Za-z0-9_\-]{16,}"), "sk-" + MASK),
    (re.compile(r"\b(?i:bearer)\s+[A-Za-z0-9._~+/\-]{8,}=*"), "Bearer " + MASK),
    (re.compile(r"\b(?i:basic)\s+[A-Za-z0-9+/]{12,}=*"), "Basic " + MASK),
    (re.compile(r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA)[0-9A-Z]{16}\b"), MASK),
    (re.compile(r"\bAIza[0-9A-Za-z_\-]{35}\b"), MASK),
    (re.compile(r"\bgh[pousr]_[A-Za-z0-9]{36,}\b"), MASK),
    (re.compile(r"\bxox[abprs]-[A-Za-z0-9\-]{10,}"), MASK),
    (re.compile(r"\beyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}"), MASK),
)
# `api_key=...`, `"token": "..."`, `aws_secret_access_key = ...`: a key word, a separator, a token.
_KEYWORD_VALUE = re.compile(
    r"((?i:api[_\-]?key|apikey|token|secret|passw(?:or)?d|credential|auth(?:orization)?)"
    r"[A-Za-z0-9_\-]*[\"']?\s*[:=]\s*[\"']?)([A-Za-z0-9+/_\-.~]{20,})"
)
# pydantic ValidationError text echoes the offending input: `input_value='...'` (or a dict).
_PYDANTIC_INPUT = re.compile(
    r"input_value=(?:'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\""
    r"|\{.*?\}(?=, input_type)|\[.*?\](?=, input_type)|\S+)"
)
_ENTROPY_MIN_BITS = 3.0
# One scan that finds out whether any pattern can match: most strings are clean.
_ANY = re.compile("|".join([p.pattern for p, _ in _PATTERNS] + [_KEYWORD_VALUE.pattern]))


def shannon_bits(token: str) -> float:
    """Shannon entropy per character; random base62 tokens score ~5, English words ~3 or less."""
    if not token:
        return 0.0
    counts: dict[str, int] = {}
    for ch in token:
        counts[ch] = counts.get(ch, 0) + 1
    n = len(token)
    return -sum(c / n * math.log2(c / n) for c in counts.values())


def _mask_keyword_value(match: re.Match[str]) -> str:
    token = match.group(2)
    if shannon_bits(token) < _ENTROPY_MIN_BITS:
        return match.group(0)
    return match.group(1) + MASK


def redact(text: str) -> str:
    """Mask every credential-shaped substring. Cheap when nothing matches (one regex scan)."""
    if _ANY.search(text) is None:
        return text
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    text = _KEYWORD_VALUE.sub(_mask_keyword_value, text)
    return text


def mask_known(text: str, known: Iterable[str]) -> str:
    """Every occurrence of each exact value in `known` masked (empty values are ignored).

    For secrets the gateway holds itself (provider keys), which need not look like a credential:
    `hunter2-upstream` matches no pattern. Longest first, so a key containing another goes whole.
    """
    for value in sorted({k for k in known if k}, key=len, reverse=True):
        if value in text:
            text = text.replace(value, MASK)
    return text


def redact_strings(value: Any, known: Iterable[str] = ()) -> Any:
    """Every string inside a JSON-like value masked (`mask_known`, then `redact`); keys kept.

    For reports whose keys are our own names (backend names, fields) and whose strings may
    quote a secret, such as /readyz: unlike `redact_value`, no key's value is dropped.
    """
    known = tuple(known)
    if isinstance(value, str):
        return redact(mask_known(value, known))
    if isinstance(value, Mapping):
        return {k: redact_strings(v, known) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_strings(v, known) for v in value]
    return value


def looks_secret(value: str) -> bool:
    """True if `redact` would change `value`: used to keep secrets out of metric labels."""
    return redact(value) != value


def redact_value(key: str | None, value: Any) -> Any:
    """Redact a structured value: content keys dropped, secret keys masked, strings scanned."""
    if key is not None:
        lowered = key.lower()
        if lowered in CONTENT_KEYS:
            return OMITTED
        if lowered in SECRET_KEYS:
            return MASK
    if isinstance(value, str):
        return redact(value)
    if value is None or isinstance(value, int | float):
        return value
    if isinstance(value, Mapping):
        return {str(k): redact_value(str(k), v) for k, v in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, bytes | bytearray):
        return [redact_value(None, v) for v in value]
    if isinstance(value, bytes | bytearray):
        return OMITTED
    return value


def safe_error_message(exc: BaseException) -> str:
    """An exception's text, fit for a client error body or a log line.

    Masks credentials and strips the input echoes that validation errors carry (which are
    customer content). Use at the error boundary before rendering an unexpected error.
    """
    text = _PYDANTIC_INPUT.sub("input_value=" + OMITTED, str(exc))
    return redact(text)
