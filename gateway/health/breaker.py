"""Per-backend circuit breakers: skip a backend that keeps failing, probe it to bring it back.

`Breakers` is a registry with one breaker per backend name, created lazily on the first report.
It is called synchronously on every upstream call, so every method is O(1), never awaits and
does no I/O. The contract for a caller (dispatch):

    if breakers.allow(name):        # False: skip this backend (open, or no probe slot free)
        ...call it...
        breakers.success(name)      # or failure(name) when the error counts against the backend,
                                    # or release(name) when it ended with no verdict (cancelled,
                                    # or an error that says nothing about the backend's health)

Exactly one of success/failure/release follows every `allow()` that returned True.

States (`CircuitBreaker` in gateway.policy.models holds the numbers):

    closed ──failures in a row, or error rate over the window──▶ open
    open ──cooldown_s passed, at the next allow()──▶ half_open (up to `probes` calls at a time)
    half_open ──a probe succeeds──▶ closed        half_open ──a probe fails──▶ open (new cooldown)

The error-rate window is a ring of 10 to 60 equal buckets spanning `window_s` (1 s buckets for
the default 30 s), so the rate covers the last 90-100% of the window and costs O(1) amortised.
Reports are not tied to the `allow()` that admitted them: a report that lands while a breaker is
open, or half-open with no probe outstanding, belongs to a call admitted before the breaker
opened and is ignored, since its verdict is older than the one that opened the breaker.

Two kinds of listener see transitions:

- `on_transition(backend, old, new)` (constructor) sees every transition, those this process
  decided and those adopted from another replica; it is for metrics and logs.
- `listen_local(listener)` installs the one listener told, with a `Transition`, only about the
  transitions this process decided; `SharedBreakers` publishes those to Redis. `adopt()` never
  reaches it, so a state learned from another replica is never published again as new.

Both are called inline on the hot path and must be cheap and must not raise.

Thread safety: none. A `Breakers` belongs to one event loop (one per worker process); its
methods run to completion without awaiting, so tasks on that loop cannot interleave inside one.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from gateway.policy.models import CircuitBreaker

State = Literal["closed", "open", "half_open"]
TransitionHook = Callable[[str, State, State], None]


def is_up(state: str) -> bool:
    """Whether a backend in this breaker state counts as up (`/readyz`, `stepgate_backend_up`,
    the dashboard): closed only; half-open is still waiting for its probe to decide."""
    return state == "closed"


@dataclass(frozen=True, slots=True)
class Transition:
    """A transition this process decided, as given to the `listen_local` listener.

    `until_unix` is when an open breaker's cooldown ends (unix seconds), None otherwise."""

    backend: str
    old: State
    new: State
    at_unix: float
    until_unix: float | None


LocalListener = Callable[[Transition], None]


class _Window:
    """Calls and failures over the last `window_s` seconds, in a ring of equal time buckets."""

    __slots__ = ("_calls", "_fails", "_head", "_size", "_width", "calls", "failures")

    def __init__(self, window_s: float) -> None:
        self._size = min(60, max(10, math.ceil(window_s)))
        self._width = window_s / self._size
        self._calls = [0] * self._size
        self._fails = [0] * self._size
        self._head = -1  # index (in bucket widths since the clock's epoch) of the newest bucket
        self.calls = 0
        self.failures = 0

    def clear(self) -> None:
        self._calls = [0] * self._size
        self._fails = [0] * self._size
        self._head = -1
        self.calls = 0
        self.failures = 0

    def advance(self, now: float) -> int:
        """Drop the buckets that have left the window by `now`; the slot `now` falls in."""
        index = int(now // self._width)
        head = self._head
        if index > head:
            if head < 0 or index - head >= self._size:
                self.clear()
            else:
                for i in range(head + 1, index + 1):
                    slot = i % self._size
                    self.calls -= self._calls[slot]
                    self.failures -= self._fails[slot]
                    self._calls[slot] = 0
                    self._fails[slot] = 0
            self._head = index
        # A clock that steps back (not a monotonic one) adds to the newest bucket.
        return self._head % self._size

    def add(self, now: float, *, failed: bool) -> None:
        slot = self.advance(now)
        self._calls[slot] += 1
        self.calls += 1
        if failed:
            self._fails[slot] += 1
            self.failures += 1


class _Breaker:
    __slots__ = ("consecutive", "in_flight", "opened_at", "retry_at", "state", "window")

    def __init__(self, window_s: float) -> None:
        self.state: State = "closed"
        self.consecutive = 0
        self.window = _Window(window_s)
        self.opened_at: float | None = None  # clock() when it last opened
        self.retry_at: float | None = None  # clock() when an open breaker goes half-open
        self.in_flight = 0  # probes granted in half-open and not yet reported


class Breakers:
    """One circuit breaker per backend name; see the module docstring for the contract.

    `clock` is monotonic and drives cooldowns and the window; `wall` (unix seconds) is used only
    to express times in `snapshot()`, `Transition` and `adopt()`."""

    def __init__(
        self,
        config: CircuitBreaker,
        *,
        clock: Callable[[], float] = time.monotonic,
        on_transition: TransitionHook | None = None,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._clock = clock
        self._wall = wall
        self._on_transition = on_transition
        self._local: LocalListener | None = None
        self._breakers: dict[str, _Breaker] = {}
        self._config = config
        self._apply(config)

    def _apply(self, config: CircuitBreaker) -> None:
        # Copied out of the (frozen) model: these are read on every call.
        self._config = config
        self._enabled = config.enabled
        self._failures = config.failures
        self._error_rate = config.error_rate
        self._min_calls = config.min_calls
        self._cooldown_s = config.cooldown_s
        self._probes = config.probes
        self._window_s = config.window_s

    def configure(self, config: CircuitBreaker) -> None:
        """Apply a reloaded policy. States, cooldowns and consecutive counts are kept; a changed
        `window_s` restarts the windows. Disabling closes every breaker (on_transition is told,
        nothing is published: it is a policy change, not news about a backend) and forgets them."""
        old_window_s = self._window_s
        self._apply(config)
        if not config.enabled:
            for backend, b in list(self._breakers.items()):
                if b.state != "closed":
                    old = b.state
                    b.state = "closed"
                    if self._on_transition is not None:
                        self._on_transition(backend, old, "closed")
            self._breakers.clear()
        elif config.window_s != old_window_s:
            for b in self._breakers.values():
                b.window = _Window(config.window_s)

    def listen_local(self, listener: LocalListener | None) -> None:
        """Install (or with None remove) the one listener for transitions decided here."""
        self._local = listener

    def _get(self, backend: str) -> _Breaker:
        b = self._breakers.get(backend)
        if b is None:
            b = self._breakers[backend] = _Breaker(self._window_s)
        return b

    def allow(self, backend: str) -> bool:
        """True: call the backend, then report exactly once. False: skip it."""
        if not self._enabled:
            return True
        b = self._breakers.get(backend)
        if b is None or b.state == "closed":
            return True
        if b.state == "open":
            if b.retry_at is not None and self._clock() < b.retry_at:
                return False
            b.in_flight = 0
            self._move(backend, b, "half_open", local=True)
        if b.in_flight < self._probes:
            b.in_flight += 1
            return True
        return False

    def success(self, backend: str) -> None:
        """A call finished OK: resets the failure run; a probe's success closes the breaker."""
        if not self._enabled:
            return
        b = self._get(backend)
        if b.state == "closed":
            b.consecutive = 0
            b.window.add(self._clock(), failed=False)
        elif b.state == "half_open" and b.in_flight > 0:
            self._close(backend, b, local=True)

    def failure(self, backend: str) -> None:
        """A call failed in a way that counts against the backend (dispatch decides which)."""
        if not self._enabled:
            return
        b = self._get(backend)
        if b.state == "closed":
            now = self._clock()
            b.consecutive += 1
            w = b.window
            w.add(now, failed=True)
            if b.consecutive >= self._failures or (
                w.calls >= self._min_calls and w.failures >= self._error_rate * w.calls
            ):
                self._open(backend, b, now, retry_at=now + self._cooldown_s, local=True)
        elif b.state == "half_open" and b.in_flight > 0:
            now = self._clock()
            self._open(backend, b, now, retry_at=now + self._cooldown_s, local=True)

    def release(self, backend: str) -> None:
        """The call ended with no verdict: frees its probe slot, changes nothing else."""
        if not self._enabled:
            return
        b = self._breakers.get(backend)
        if b is not None and b.state == "half_open" and b.in_flight > 0:
            b.in_flight -= 1

    def state(self, backend: str) -> State:
        """The stored state; an open breaker past its cooldown turns half-open at `allow()`."""
        b = self._breakers.get(backend)
        return "closed" if b is None else b.state

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """Per backend, JSON-able (for /readyz): state, consecutive_failures, window_calls,
        window_failures, probes_in_flight, opened_at and retry_at (unix seconds or None;
        retry_at is set while open: when half-open probes may start)."""
        now = self._clock()
        offset = self._wall() - now
        out: dict[str, dict[str, Any]] = {}
        for backend, b in self._breakers.items():
            b.window.advance(now)
            out[backend] = {
                "state": b.state,
                "consecutive_failures": b.consecutive,
                "window_calls": b.window.calls,
                "window_failures": b.window.failures,
                "probes_in_flight": b.in_flight if b.state == "half_open" else 0,
                "opened_at": None if b.opened_at is None else b.opened_at + offset,
                "retry_at": (
                    b.retry_at + offset if b.state == "open" and b.retry_at is not None else None
                ),
            }
        return out

    def adopt(self, backend: str, state: State, *, until_unix: float | None) -> None:
        """Take a state decided by another replica. `until_unix` is when an open breaker's
        cooldown ends (None: a full local cooldown from now); it is ignored for other states.

        `on_transition` is called if the state changes (local metrics see it); the
        `listen_local` listener is not (this is not news to publish). Adopting "open" onto an
        open breaker only moves its cooldown end. Does nothing when disabled."""
        if not self._enabled:
            return
        if state == "closed":
            b = self._breakers.get(backend)
            if b is not None and b.state != "closed":
                self._close(backend, b, local=False)
            return
        b = self._get(backend)
        now = self._clock()
        if state == "open":
            if until_unix is None:
                retry_at = now + self._cooldown_s
            else:
                retry_at = now + (until_unix - self._wall())
            if b.state == "open":
                b.retry_at = retry_at
            else:
                self._open(backend, b, now, retry_at=retry_at, local=False)
        elif b.state != "half_open":
            b.in_flight = 0
            if b.opened_at is None:
                b.opened_at = now
            self._move(backend, b, "half_open", local=False)

    def _open(self, backend: str, b: _Breaker, now: float, *, retry_at: float, local: bool) -> None:
        b.opened_at = now
        b.retry_at = retry_at
        b.in_flight = 0
        self._move(backend, b, "open", local=local)

    def _close(self, backend: str, b: _Breaker, *, local: bool) -> None:
        b.consecutive = 0
        b.window.clear()
        b.opened_at = None
        b.retry_at = None
        b.in_flight = 0
        self._move(backend, b, "closed", local=local)

    def _move(self, backend: str, b: _Breaker, new: State, *, local: bool) -> None:
        old = b.state
        b.state = new
        if self._on_transition is not None:
            self._on_transition(backend, old, new)
        if local and self._local is not None:
            at = self._wall()
            until = None
            if new == "open" and b.retry_at is not None:
                until = at + (b.retry_at - self._clock())
            self._local(Transition(backend, old, new, at_unix=at, until_unix=until))
