"""Call a route's candidates in order: deadline, retries with jittered backoff, fallbacks.

Retries stay on the same backend while the error is retryable, attempts remain and the wait
(backoff, or the upstream's Retry-After when longer) fits both the policy cap and the deadline;
a timeout moves on to the next candidate at once unless `retry.on_timeout: retry`. Each
candidate but the last gets the request deadline less a slice kept for every later one
(`retry.min_fallback_s`, at most half the time left per candidate), so a hanging primary
cannot spend the fallbacks' time. A `ProviderRejected` error (the request itself is bad) ends
dispatch at once, except `ContextLengthExceeded`, which hands the step to the route's context
fallbacks (the rest of the ordinary candidates are skipped: the step is too long for them as
far as anyone knows); any other error moves on to the next candidate. Every call is appended to
the caller's `attempts` list.
For streams the candidates are tried until one yields its first chunk; after that the
backend is fixed and a failure is the caller's `StreamInterrupted`.

With circuit breakers (`gateway.health.Breakers`), a backend whose breaker is open is skipped
without a call (an attempt with outcome "skipped" and a `CircuitOpen` error, costing nothing);
every call's result is reported to its breaker: success, a failure that says the backend is
unhealthy (unreachable, 5xx, malformed, timed out, credentials refused), or no verdict (the
request was rejected, rate limited, or cancelled).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from connectors.base import Connector
from gateway.core.deadline import Deadline
from gateway.core.errors import (
    AllBackendsFailed,
    CircuitOpen,
    ContextLengthExceeded,
    ProviderAuthError,
    ProviderError,
    ProviderRejected,
    ProviderTimeout,
    ProviderUnavailable,
)
from gateway.core.records import AttemptRole, Outcome
from gateway.core.types import ChatRequest, Chunk, Completion, Usage
from gateway.health.breaker import Breakers
from gateway.policy.models import Retry

# Errors that say the backend itself is unhealthy: they count against its circuit breaker.
_UNHEALTHY = (ProviderUnavailable, ProviderTimeout, ProviderAuthError)


@dataclass(slots=True)
class Attempt:
    """One backend call as it happened (mutable only while the call is in flight)."""

    backend: str
    role: AttemptRole
    started_at: float  # unix seconds
    started: float  # monotonic
    latency_s: float = 0.0
    usage: Usage = field(default_factory=Usage)
    outcome: Outcome = "ok"
    error: ProviderError | None = None
    model: str = ""
    backoff_s: float = 0.0  # the wait after this call before the next one (not overhead)

    def finish(
        self,
        *,
        usage: Usage | None = None,
        error: ProviderError | None = None,
        outcome: Outcome | None = None,
    ) -> None:
        self.latency_s = time.monotonic() - self.started
        if usage is not None:
            self.usage = usage
        self.error = error
        self.outcome = outcome or ("error" if error is not None else "ok")


Sleep = Callable[[float], Awaitable[None]]
T = TypeVar("T")


class Dispatcher:
    def __init__(
        self,
        connectors: Mapping[str, Connector],
        retry: Retry,
        *,
        sleep: Sleep = asyncio.sleep,
        jitter: Callable[[], float] = random.random,
        breakers: Breakers | None = None,
    ) -> None:
        self.connectors = connectors
        self.retry = retry
        self.breakers = breakers
        self._sleep = sleep
        self._jitter = jitter

    def _plan(self, candidates: tuple[str, ...]) -> list[tuple[str, int]]:
        return [(c, n) for c in candidates for n in range(self.retry.max_attempts)]

    def _role(self, index: int, tries_on_backend: int) -> AttemptRole:
        if tries_on_backend > 0:
            return "retry"
        return "primary" if index == 0 else "fallback"

    def _wait_before_retry(
        self, error: ProviderError, tries: int, deadline: Deadline
    ) -> float | None:
        """Seconds to wait before retrying the same backend, or None to move on."""
        if not error.retryable or tries >= self.retry.max_attempts:
            return None
        if isinstance(error, ProviderTimeout) and self.retry.on_timeout == "next":
            return None
        base = self.retry.backoff_base_ms / 1000 * (2 ** (tries - 1))
        delay: float = min(base, self.retry.backoff_max_ms / 1000) * (0.5 + self._jitter() / 2)
        if error.retry_after_s is not None:
            if error.retry_after_s > self.retry.max_retry_after_s:
                return None
            delay = max(delay, error.retry_after_s)
        if delay >= deadline.remaining():
            return None
        return delay

    async def complete(
        self,
        request: ChatRequest,
        candidates: tuple[str, ...],
        deadline: Deadline,
        attempts: list[Attempt],
        *,
        role: AttemptRole | None = None,
        context: tuple[str, ...] = (),
    ) -> tuple[Connector, Completion]:
        async def call(connector: Connector, attempt: Attempt, own: Deadline) -> Completion:
            completion = await connector.complete(request, own)
            attempt.model = completion.model or attempt.model
            attempt.finish(usage=completion.usage)
            return completion

        return await self._each_candidate(candidates, deadline, attempts, role, call, context)

    async def open_stream(
        self,
        request: ChatRequest,
        candidates: tuple[str, ...],
        deadline: Deadline,
        attempts: list[Attempt],
        *,
        role: AttemptRole | None = None,
        context: tuple[str, ...] = (),
    ) -> tuple[Connector, Attempt, Chunk, AsyncIterator[Chunk]]:
        """Try candidates until one yields a first chunk; return it with the live iterator.

        The attempt stays open (the caller settles it when the stream ends)."""

        async def call(
            connector: Connector, attempt: Attempt, own: Deadline
        ) -> tuple[Attempt, Chunk, AsyncIterator[Chunk]]:
            # The stream runs to the request deadline once it has started; the candidate's
            # own slice bounds only the wait for its first chunk.
            stream = connector.stream(request, deadline)
            try:
                async with asyncio.timeout_at(_loop_time(own)):
                    first = await anext(aiter(stream))
            except TimeoutError:
                await _close(stream)
                raise ProviderTimeout(
                    f"{connector.name} sent no first chunk within its share of the deadline",
                    backend=connector.name,
                ) from None
            except StopAsyncIteration:
                await _close(stream)
                raise ProviderUnavailable(
                    f"{connector.name} sent an empty stream", backend=connector.name
                ) from None
            except BaseException:
                await _close(stream)
                raise
            return attempt, first, stream

        connector, (attempt, first, stream) = await self._each_candidate(
            candidates, deadline, attempts, role, call, context
        )
        return connector, attempt, first, stream

    async def _each_candidate(
        self,
        candidates: tuple[str, ...],
        deadline: Deadline,
        attempts: list[Attempt],
        role: AttemptRole | None,
        call: Callable[[Connector, Attempt, Deadline], Awaitable[T]],
        context: tuple[str, ...] = (),
    ) -> tuple[Connector, T]:
        """The one retry/fallback loop: candidates in order, retries per the policy."""
        errors: list[ProviderError] = []
        breakers = self.breakers
        order = list(candidates)
        index = -1
        while index + 1 < len(order):
            index += 1
            name = order[index]
            connector = self.connectors[name]
            tries = 0
            while True:
                if deadline.expired():
                    errors.append(ProviderTimeout("request deadline reached", backend=name))
                    raise AllBackendsFailed(errors)
                if not connector.ready:
                    # Still loading (litellm's import): a wait the gateway imposes, so it counts
                    # as gateway time (overhead), not as the upstream call's.
                    try:
                        async with asyncio.timeout(deadline.remaining()):
                            await connector.warm()
                    except TimeoutError:
                        errors.append(
                            ProviderTimeout(f"{name} was still loading", backend=name)
                        )
                        raise AllBackendsFailed(errors) from None
                attempt = self._start(name, role or self._role(index, tries), connector)
                attempts.append(attempt)
                if breakers is not None and not breakers.allow(name):
                    skipped = CircuitOpen(
                        f"{name} skipped: its circuit breaker is open", backend=name
                    )
                    attempt.finish(error=skipped, outcome="skipped")
                    errors.append(skipped)
                    break
                tries += 1
                own = self._share(deadline, later=len(order) - index - 1)
                try:
                    result = await call(connector, attempt, own)
                except ProviderError as exc:
                    exc.backend = exc.backend or name
                    attempt.finish(error=exc)
                    errors.append(exc)
                    if breakers is not None and isinstance(exc, _UNHEALTHY):
                        breakers.failure(name)
                    elif breakers is not None:
                        breakers.release(name)
                    if isinstance(exc, ContextLengthExceeded) and context:
                        tried = set(order[: index + 1])
                        order[index + 1 :] = [c for c in context if c not in tried]
                        context = ()
                        break
                    if isinstance(exc, ProviderRejected):
                        raise
                    wait = self._wait_before_retry(exc, tries, deadline)
                    if wait is None:
                        break
                    attempt.backoff_s = wait
                    await self._sleep(wait)
                    continue
                except BaseException as exc:
                    if isinstance(exc, asyncio.CancelledError):
                        attempt.finish(outcome="cancelled")
                    if breakers is not None:
                        breakers.release(name)
                    raise
                if breakers is not None:
                    breakers.success(name)
                return connector, result
        raise AllBackendsFailed(errors)

    def _share(self, deadline: Deadline, *, later: int) -> Deadline:
        """The deadline for one candidate with `later` candidates after it."""
        if later == 0 or self.retry.min_fallback_s == 0:
            return deadline
        left = deadline.remaining()
        keep = min(later * self.retry.min_fallback_s, left * later / (later + 1))
        return Deadline(deadline.at - keep)

    @staticmethod
    def _start(name: str, role: AttemptRole, connector: Connector) -> Attempt:
        return Attempt(
            backend=name,
            role=role,
            started_at=time.time(),
            started=time.monotonic(),
            model=connector.model,
        )


def _loop_time(deadline: Deadline) -> float:
    """`deadline` on the running loop's clock (asyncio.timeout_at takes loop time)."""
    loop = asyncio.get_running_loop()
    return loop.time() + deadline.remaining()


async def _close(stream: AsyncIterator[Chunk]) -> None:
    aclose = getattr(stream, "aclose", None)
    if aclose is not None:
        await aclose()
