"""litellm exceptions -> our provider error tree (by class, never by guessing a status).

An exception's text is the upstream's words as litellm relays them (often the whole error
body), so it goes into our error only through `connectors.http_status.relayable`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from connectors.http_status import error_for_status, relayable, retry_after_seconds
from gateway.core.errors import (
    ContextLengthExceeded,
    ProviderAuthError,
    ProviderError,
    ProviderRateLimited,
    ProviderRejected,
    ProviderTimeout,
    ProviderUnavailable,
)

_BY_NAME: dict[str, type[ProviderError]] = {
    "RateLimitError": ProviderRateLimited,
    "ContextWindowExceededError": ContextLengthExceeded,
    "ContentPolicyViolationError": ProviderRejected,
    "BadRequestError": ProviderRejected,
    "UnprocessableEntityError": ProviderRejected,
    "UnsupportedParamsError": ProviderRejected,
    "NotFoundError": ProviderRejected,
    "AuthenticationError": ProviderAuthError,
    "PermissionDeniedError": ProviderAuthError,
    "Timeout": ProviderTimeout,
    "APIConnectionError": ProviderUnavailable,
    "ServiceUnavailableError": ProviderUnavailable,
    "InternalServerError": ProviderUnavailable,
    "BadGatewayError": ProviderUnavailable,
    "APIError": ProviderUnavailable,
    "MidStreamFallbackError": ProviderUnavailable,
}


def map_exception(
    exc: BaseException, *, backend: str, secrets: Iterable[str] = ()
) -> ProviderError:
    """The most specific of our errors for a litellm (or openai/httpx) exception.

    `secrets`: the credentials the call was made with, masked wherever the text quotes them.
    """
    status = getattr(exc, "status_code", None)
    retry_after = _retry_after(exc)
    secrets = tuple(secrets)
    raw = str(getattr(exc, "message", None) or exc).split("\nTraceback", 1)[0]
    message = relayable(raw, secrets=secrets)
    for cls in type(exc).__mro__:
        mapped = _BY_NAME.get(cls.__name__)
        if mapped is not None:
            return mapped(
                f"upstream {backend}: {message}",
                backend=backend,
                upstream_status=status if isinstance(status, int) else None,
                retry_after_s=retry_after_seconds(retry_after),
            )
    if isinstance(status, int) and status >= 400:
        return error_for_status(
            status, raw, backend=backend, retry_after=retry_after, secrets=secrets
        )
    return ProviderUnavailable(
        f"upstream {backend}: {type(exc).__name__}: {message}", backend=backend
    )


def _retry_after(exc: BaseException) -> str | None:
    for attr in ("response", "litellm_response_headers"):
        holder: Any = getattr(exc, attr, None)
        headers = getattr(holder, "headers", holder)
        if headers is not None and hasattr(headers, "get"):
            value = headers.get("retry-after")
            if value:
                return str(value)
    return None
