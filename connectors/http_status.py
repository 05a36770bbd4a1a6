"""Map an upstream HTTP status (and its Retry-After) to our provider error tree."""

from __future__ import annotations

import email.utils
import time

from gateway.core.errors import (
    ProviderAuthError,
    ProviderError,
    ProviderRateLimited,
    ProviderRejected,
    ProviderTimeout,
    ProviderUnavailable,
)


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
) -> ProviderError:
    text = f"upstream {backend} returned {status}: {message}"
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
        return ProviderRejected(text, **kwargs)  # type: ignore[arg-type]
    return ProviderUnavailable(
        text,
        retry_after_s=retry_after_seconds(retry_after),
        **kwargs,  # type: ignore[arg-type]
    )
