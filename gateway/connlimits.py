"""Connection hygiene for the serving process: read timeouts, connection caps, the fd budget.

`ConnectionLimits` is built once by `stepgate serve` from the settings and the policy, frozen,
and handed to the HTTP protocol (gateway/http_protocol.py), which enforces it. This module also
raises RLIMIT_NOFILE at start so the caps below, not the kernel's fd limit, decide when a new
connection is refused: an fd exhausted by idle clients breaks accept() for everyone and leaves
nothing for upstream or database connections.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gateway.policy.models import Policy

log = logging.getLogger("stepgate.connections")

# File descriptors that are not inbound connections: the database and Redis pools, the OTLP
# exporter, log files, the spool, the policy file, prometheus multiprocess files.
_FIXED_RESERVE = 256
# The policy may grow backends on reload, so never reserve less than this for upstreams.
_MIN_UPSTREAM_RESERVE = 768
# A litellm backend's pool size (connectors/litellm_ar/native.py MAX_CONNECTIONS; gateway code
# names no concrete connector, so the number is repeated here).
_LITELLM_POOL = 256


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    """What the HTTP protocol enforces per connection; 0 per client means no per-client cap."""

    header_timeout_s: float
    body_timeout_s: float
    max_connections: int
    max_connections_per_client: int


@dataclass(frozen=True, slots=True)
class FdBudget:
    soft_before: int
    soft: int
    hard: int


def raise_nofile_limit() -> FdBudget | None:
    """Raise this process's RLIMIT_NOFILE soft limit to its hard limit; None where unsupported.

    Worker processes inherit the raised limit. A hard limit of RLIM_INFINITY is capped at
    2**20 (Linux refuses a soft limit above fs.nr_open, which defaults to that).
    """
    try:
        import resource
    except ImportError:  # not a POSIX system: nothing to raise
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else 1 << 20
    if soft == resource.RLIM_INFINITY or soft >= target:
        return FdBudget(soft_before=soft, soft=soft, hard=hard)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError) as exc:
        log.warning("cannot raise RLIMIT_NOFILE from %d to %d: %s", soft, target, exc)
        return FdBudget(soft_before=soft, soft=soft, hard=hard)
    return FdBudget(soft_before=soft, soft=target, hard=hard)


def upstream_reserve(policy: Policy) -> int:
    """File descriptors to keep free for everything but inbound connections.

    Each backend's pool may hold its whole size in upstream connections at once.
    """
    pools = sum(
        # a family's own pool size, or the HTTP pool litellm keeps per provider
        int(getattr(backend, "max_connections", _LITELLM_POOL))
        for backend in policy.backends.values()
    )
    return _FIXED_RESERVE + max(_MIN_UPSTREAM_RESERVE, pools)


def inbound_cap(*, requested: int, fd_limit: int | None, reserve: int) -> int:
    """The global connection cap: `requested`, lowered so that `reserve` fds stay free.

    With a small fd limit, inbound connections still get at least half of it.
    """
    if fd_limit is None:
        return requested
    return max(1, min(requested, max(fd_limit // 2, fd_limit - reserve)))


class ConnectionGuard:
    """Per-process connection accounting shared by every connection the process serves.

    Connections are counted per client address (the peer IP); `admit` refuses one past the
    per-client cap. The caller checks the global cap, which uvicorn's connection set counts.
    Refusals are logged at most once per `_LOG_EVERY_S`, with how many there were, so that
    a flood of refused connections does not also flood the log.
    """

    __slots__ = ("_counts", "_last_log", "_per_client", "_refused", "limits")
    _LOG_EVERY_S = 10.0

    def __init__(self, limits: ConnectionLimits) -> None:
        self.limits = limits
        self._per_client = limits.max_connections_per_client
        self._counts: dict[str, int] = {}
        self._refused = 0
        self._last_log = 0.0

    def admit(self, host: str) -> bool:
        if self._per_client == 0:
            return True
        n = self._counts.get(host, 0)
        if n >= self._per_client:
            return False
        self._counts[host] = n + 1
        return True

    def release(self, host: str) -> None:
        if self._per_client == 0:
            return
        n = self._counts.get(host, 0) - 1
        if n > 0:
            self._counts[host] = n
        else:
            self._counts.pop(host, None)

    def refused(self, host: str, why: str) -> None:
        self._refused += 1
        now = time.monotonic()
        if now - self._last_log >= self._LOG_EVERY_S:
            log.warning(
                "refused %d connection(s) since the last report; latest from %s: %s",
                self._refused,
                host or "?",
                why,
            )
            self._refused = 0
            self._last_log = now
