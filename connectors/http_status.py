"""Map an upstream HTTP status (and its Retry-After) to our provider error tree, and make the
text an upstream sent fit to relay to a client (`relayable`).

Whatever an upstream says in an error (a body, a stream error event, an SDK's exception text)
may quote the credentials it was sent: a provider's `Incorrect API key provided: <key>` came
back inside the gateway's 502. Every connector passes such text through `relayable` before it
goes into an error, with the credentials it sent (`credentials`), so the exact key is masked
even where it looks like no credential at all, then every credential-shaped string, and the
text is capped.
"""

from __future__ import annotations

import email.utils
import re
import time
from collections.abc import Iterable, Iterator, Mapping

from gateway.core.errors import (
    ContextLengthExceeded,
    ProviderAuthError,
    ProviderError,
    ProviderRateLimited,
    ProviderRejected,
    ProviderTimeout,
    ProviderUnavailable,
)
from gateway.core.redact import SECRET_KEYS, mask_known, redact

# Upstream text in an error a client reads is cut to this many characters.
MAX_UPSTREAM_TEXT = 500
# Longer text is first cut here (and the token that straddles the cut dropped, since a key cut
# in two matches neither its exact value nor its shape), so masking never scans megabytes.
_SCAN_LIMIT = 16 * MAX_UPSTREAM_TEXT
# An upstream error `code` is relayed as ours only if it reads like an identifier.
_CODE = re.compile(r"[A-Za-z0-9_.\-]{1,64}")
_SCHEMES = ("bearer ", "basic ", "token ")


def credentials(headers: Mapping[str, str] | None) -> Iterator[str]:
    """The credential values in headers a connector sends (Authorization, x-api-key, ...):
    each whole value and, after an auth scheme (`Bearer `), the key itself."""
    for name, value in (headers or {}).items():
        if name.lower() not in SECRET_KEYS or not value:
            continue
        yield value
        if value[:7].lower().startswith(_SCHEMES):
            yield value.split(None, 1)[-1]


def relayable(text: str, *, secrets: Iterable[str] = ()) -> str:
    """Upstream text made fit for a client error: each exact value in `secrets` (the keys the
    connector sent) masked, then every credential-shaped string, then cut to
    `MAX_UPSTREAM_TEXT` characters."""
    if len(text) > _SCAN_LIMIT:
        text = _without_cut_token(text[:_SCAN_LIMIT])
    text = redact(mask_known(text, secrets))
    if len(text) > MAX_UPSTREAM_TEXT:
        text = text[:MAX_UPSTREAM_TEXT] + "... (truncated)"
    return text


def _without_cut_token(text: str) -> str:
    end = len(text)
    while end and not text[end - 1].isspace():
        end -= 1
    return text[:end]


def retry_after_seconds(value: str | None) -> float | None:
    """Retry-After as delta-seconds or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def error_for_status(
    status: int,
    message: str,
    *,
    backend: str,
    retry_after: str | None = None,
    code: str | None = None,
    secrets: Iterable[str] = (),
) -> ProviderError:
    """Our error for an upstream's status; `message` and `code` are the upstream's words,
    relayed only as `relayable` leaves them (`secrets`: the credentials the connector sent)."""
    secrets = tuple(secrets)
    text = f"upstream {backend} returned {status}: {relayable(message, secrets=secrets)}"
    code = _relayable_code(code, secrets)
    kwargs = {"backend": backend, "upstream_status": status, "code": code}
    if status == 429:
        return ProviderRateLimited(
            text,
            retry_after_s=retry_after_seconds(retry_after),
            **kwargs,  # type: ignore[arg-type]
        )
    if status in (401, 403):
        return ProviderAuthError(text, **kwargs)  # type: ignore[arg-type]
    if status in (408, 504):
        return ProviderTimeout(text, **kwargs)  # type: ignore[arg-type]
    if 400 <= status < 500:
        if status == 413 or is_context_length(code, message):
            return ContextLengthExceeded(text, **kwargs)  # type: ignore[arg-type]
        return ProviderRejected(text, **kwargs)  # type: ignore[arg-type]
    return ProviderUnavailable(
        text,
        retry_after_s=retry_after_seconds(retry_after),
        **kwargs,  # type: ignore[arg-type]
    )


# How providers say "too long": OpenAI's code, and the words of OpenAI, vLLM, SGLang, Anthropic,
# Gemini, Mistral and Ollama messages.
_CONTEXT_CODES = frozenset({"context_length_exceeded", "string_above_max_length"})
_CONTEXT_WORDS = re.compile(
    r"context.length|context.window|maximum context|prompt is too long|too many tokens|"
    r"input is too long|exceeds? the (?:model'?s )?(?:maximum|max|context)|"
    r"maximum (?:input|prompt) (?:length|tokens)",
    re.IGNORECASE,
)


def is_context_length(code: str | None, message: str) -> bool:
    """True when an upstream's 4xx says the request is longer than its context window."""
    return (code or "").lower() in _CONTEXT_CODES or bool(_CONTEXT_WORDS.search(message))


def _relayable_code(code: str | None, secrets: tuple[str, ...]) -> str | None:
    """The upstream's error code if it is a short identifier holding no secret; else None
    (the error then carries our own code)."""
    if code is None or not _CODE.fullmatch(code) or relayable(code, secrets=secrets) != code:
        return None
    return code
