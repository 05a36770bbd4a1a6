"""The typed error tree. An error carries its status, type, error class, message and headers;
each ingress dialect renders it in its API's shape (`gateway.ingress.*.render_error`).

    StepgateError
    ├── CallerError                 the request is wrong; fix the request
    │   ├── BadRequest              400 invalid_request_error
    │   ├── Unauthorized            401 authentication_error
    │   ├── Forbidden               403 permission_error
    │   ├── NotFound / UnknownModel 404
    │   ├── MethodNotAllowed        405
    │   ├── Conflict                409 (an Idempotency-Key whose first request still runs)
    │   ├── Unprocessable           422 (an Idempotency-Key reused for a different request)
    │   ├── BudgetExhausted         402 insufficient_quota
    │   ├── PayloadTooLarge         413
    │   ├── ClientDisconnected      499 (the caller left mid-body; nobody reads the reply)
    │   └── RateLimited             429 (+ Retry-After)
    ├── PolicyError                 the policy file is wrong (load time, or no route for a step)
    ├── ProviderError               an upstream backend failed
    │   ├── ProviderRejected        400-class: content filter, bad params (no retry)
    │   │   └── ContextLengthExceeded   the step is too long for it: `context_fallbacks` take over
    │   ├── ProviderAuthError       the gateway's credentials were refused (no retry) -> 502
    │   ├── ProviderRateLimited     429 upstream (retry, honour Retry-After)
    │   ├── ProviderUnavailable     5xx, connection reset, malformed reply (retry) -> 502/503
    │   │   └── CircuitOpen         skipped: the backend's circuit breaker is open -> 503
    │   ├── ProviderTimeout         deadline or read timeout (retry while time is left) -> 504
    │   └── StreamInterrupted       the stream broke after bytes reached the client (no retry)
    └── GatewayError                our own bug; rendered as 500 without internals

Every class carries an `error_class` from a closed vocabulary (`caller_*`, `policy_*`,
`provider_*`, `gateway_*`) used for metrics and the ledger.
"""

from __future__ import annotations

import math
from typing import ClassVar


class StepgateError(Exception):
    status: ClassVar[int] = 500
    type: ClassVar[str] = "server_error"
    error_class: ClassVar[str] = "gateway_internal"

    def __init__(self, message: str, *, code: str | None = None, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.param = param

    def headers(self) -> dict[str, str]:
        return {}


class CallerError(StepgateError):
    status = 400
    type = "invalid_request_error"
    error_class = "caller_bad_request"


class BadRequest(CallerError):
    pass


class Unauthorized(CallerError):
    status = 401
    type = "authentication_error"
    error_class = "caller_unauthorized"


class Forbidden(CallerError):
    status = 403
    type = "permission_error"
    error_class = "caller_forbidden"


class NotFound(CallerError):
    status = 404
    error_class = "caller_not_found"


class MethodNotAllowed(CallerError):
    status = 405
    error_class = "caller_method_not_allowed"


class Conflict(CallerError):
    status = 409
    error_class = "caller_conflict"

    def headers(self) -> dict[str, str]:
        return {"Retry-After": "1"}


class Unprocessable(CallerError):
    status = 422
    error_class = "caller_unprocessable"


class UnknownModel(NotFound):
    error_class = "caller_unknown_model"


class BudgetExhausted(CallerError):
    status = 402
    type = "insufficient_quota"
    error_class = "caller_budget_exhausted"


class PayloadTooLarge(CallerError):
    status = 413
    error_class = "caller_payload_too_large"


class RateLimited(CallerError):
    status = 429
    type = "rate_limit_error"
    error_class = "caller_rate_limited"

    def __init__(self, message: str, *, retry_after_s: float, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.retry_after_s = retry_after_s

    def headers(self) -> dict[str, str]:
        return retry_after_header(self.retry_after_s)


class ClientDisconnected(CallerError):
    """The caller went away before its request body arrived (nginx's 499)."""

    status = 499
    error_class = "caller_disconnected"


class PolicyError(StepgateError):
    status = 500
    type = "server_error"
    error_class = "policy_invalid"


class NoRoute(PolicyError):
    status = 404
    type = "invalid_request_error"
    error_class = "policy_no_route"


class ProviderError(StepgateError):
    """An upstream failure. `retryable` decides retries and fallbacks in dispatch."""

    status = 502
    type = "upstream_error"
    error_class = "provider_error"
    retryable: ClassVar[bool] = True

    def __init__(
        self,
        message: str,
        *,
        backend: str = "",
        upstream_status: int | None = None,
        retry_after_s: float | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message, code=code)
        self.backend = backend
        self.upstream_status = upstream_status
        self.retry_after_s = retry_after_s


class ProviderRejected(ProviderError):
    """The upstream refused this request as invalid: resending it elsewhere would not help."""

    status = 400
    type = "invalid_request_error"
    error_class = "provider_rejected"
    retryable = False


class ContextLengthExceeded(ProviderRejected):
    """The step does not fit the backend's context window: not retried there; a route's
    `context_fallbacks` (larger-context backends) take over."""

    error_class = "provider_context_length"


class ProviderAuthError(ProviderError):
    error_class = "provider_auth"
    retryable = False


class ProviderRateLimited(ProviderError):
    status = 429
    type = "rate_limit_error"
    error_class = "provider_rate_limited"

    def headers(self) -> dict[str, str]:
        if self.retry_after_s is None:
            return {}
        return retry_after_header(self.retry_after_s)


class ProviderUnavailable(ProviderError):
    status = 502
    error_class = "provider_unavailable"


class CircuitOpen(ProviderUnavailable):
    """The backend's circuit breaker is open: it was skipped without a call."""

    status = 503
    error_class = "provider_circuit_open"


class ProviderTimeout(ProviderError):
    status = 504
    type = "timeout_error"
    error_class = "provider_timeout"


class StreamInterrupted(ProviderError):
    status = 502
    error_class = "provider_stream_interrupted"
    retryable = False


class AllBackendsFailed(ProviderError):
    """Every candidate failed; carries the per-backend errors and renders the most telling one."""

    error_class = "provider_all_failed"

    def __init__(self, errors: list[ProviderError]) -> None:
        last = errors[-1]
        detail = "; ".join(f"{e.backend or '?'}: {e.message}" for e in errors)
        super().__init__(
            f"no backend could answer ({detail})",
            backend=last.backend,
            upstream_status=last.upstream_status,
            retry_after_s=last.retry_after_s,
            code=last.code,
        )
        self.errors = errors
        self.status = _status_for(errors)  # type: ignore[misc]
        self.error_class = last.error_class  # type: ignore[misc]

    def headers(self) -> dict[str, str]:
        if self.status == 429 and self.retry_after_s is not None:
            return retry_after_header(self.retry_after_s)
        return {}


def _status_for(errors: list[ProviderError]) -> int:
    if all(isinstance(e, ProviderRateLimited) for e in errors):
        return 429
    if all(isinstance(e, ProviderTimeout) for e in errors):
        return 504
    if any(isinstance(e, ProviderRejected) for e in errors):
        return 400
    if any(isinstance(e, ProviderUnavailable) and e.upstream_status == 503 for e in errors):
        return 503
    if any(isinstance(e, CircuitOpen) for e in errors):
        return 503
    return 502


class GatewayError(StepgateError):
    status = 500
    error_class = "gateway_internal"


def retry_after_header(seconds: float) -> dict[str, str]:
    """`Retry-After` in whole seconds, rounded up, at least 1."""
    return {"Retry-After": str(max(1, math.ceil(seconds)))}
