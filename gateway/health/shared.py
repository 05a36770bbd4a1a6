"""Circuit-breaker state shared by workers and replicas through Redis.

`SharedBreakers` owns one background task that publishes the transitions its `Breakers`
decided (open, re-open, half-open -> closed) and adopts those decided elsewhere, so replicas
agree within about `interval_s` plus a round trip. The hot path never waits on Redis: a local
transition is queued in a dict and an `asyncio.Event` wakes the task. Half-open is not
published: each replica reaches it from the same cooldown end and probes on its own, so a
backend sees up to `probes` probes per replica.

Redis layout: one hash, `{prefix}breakers`, field = backend name, value = JSON
`{"v": version, "o": origin, "s": "open"|"closed", "u": cooldown end (unix s) or null,
"at": unix s of the transition}`, expiring `RECORD_TTL_S` after the last write. `o` is a random
id per `SharedBreakers`. `v` is a Lamport clock in unix milliseconds: max(now, highest version
this process has seen or made for that backend + 1), so a transition made after adopting one
always outranks it, and concurrent ones are ordered by time. A Lua script writes a record only
if its version is higher than the stored one and otherwise returns the stored one, which the
loser then adopts: every replica converges on the newest record.

No ping-pong: `Breakers.adopt` does not reach the local listener, so an adopted state is never
queued; a record is adopted only when its version is above everything this process has seen or
made for that backend (its own records never are); and the script refuses stale writes.

Redis errors never reach callers. On one, the task calls `on_error`, logs a warning once per
outage, keeps the queued transitions and retries with exponential backoff up to
`max_backoff_s`; meanwhile each process's breakers go on working locally. When Redis answers
again the task re-writes the open records it knows (a restarted, empty Redis learns them back;
the script makes this a no-op otherwise), publishes what was queued and polls.

Polling (one HGETALL per `interval_s`) instead of pub/sub: nothing to resubscribe after an
outage, and a replica that starts late reads the current state on its first poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from gateway.health.breaker import Breakers, State, Transition

log = logging.getLogger("stepgate.health")

# Long enough to outlive any cooldown; it only bounds what a removed backend leaves behind.
RECORD_TTL_S = 86_400

# KEYS: the hash. ARGV: backend, version, record JSON, ttl seconds.
# Reply: nil when written, else the stored record (same or higher version) that won.
PUBLISH = """
local held = redis.call('HGET', KEYS[1], ARGV[1])
if held then
  local ok, rec = pcall(cjson.decode, held)
  local v = ok and type(rec) == 'table' and tonumber(rec['v'])
  if v and v >= tonumber(ARGV[2]) then
    return held
  end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[4]))
return false
"""

# Any Redis error, script errors included, means "no sync this round", never a crash.
_ERRORS = (RedisError, OSError, asyncio.TimeoutError)


@dataclass(frozen=True, slots=True)
class _Record:
    version: int
    origin: str
    state: State
    until: float | None
    at: float

    def encode(self) -> str:
        body = {"v": self.version, "o": self.origin, "s": self.state, "u": self.until}
        body["at"] = self.at
        return json.dumps(body, separators=(",", ":"))

    @classmethod
    def decode(cls, raw: bytes | str) -> _Record:
        """Raises ValueError for anything that is not a record this module writes."""
        try:
            body = json.loads(raw)
            state = body["s"]
            until = body["u"]
            record = cls(
                version=int(body["v"]),
                origin=str(body["o"]),
                state="open" if state == "open" else "closed",
                until=None if until is None else float(until),
                at=float(body["at"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not a breaker record: {raw!r}") from exc
        if state not in ("open", "closed"):
            raise ValueError(f"not a breaker record: {raw!r}")
        return record


class SharedBreakers:
    """Keeps `breakers` in step with other processes sharing `redis_url` and `prefix`."""

    def __init__(
        self,
        breakers: Breakers,
        redis_url: str,
        *,
        prefix: str = "stepgate:",
        interval_s: float = 0.25,
        max_backoff_s: float = 2.0,
        timeout_s: float = 1.0,
        on_error: Callable[[], None] | None = None,
    ) -> None:
        self._breakers = breakers
        self._key = f"{prefix}breakers"
        self._interval_s = interval_s
        self._max_backoff_s = max(max_backoff_s, interval_s)
        self._on_error = on_error
        self._origin = uuid.uuid4().hex[:12]
        # Our loop does its own backoff; redis-py's retries would only delay noticing an outage.
        self._redis: Redis = Redis.from_url(
            redis_url,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            retry=Retry(NoBackoff(), 0),
            health_check_interval=30,
        )
        self._publish = self._redis.register_script(PUBLISH)
        self._versions: dict[str, int] = {}  # per backend: highest version seen or made here
        self._pending: dict[str, _Record] = {}  # local transitions not yet written
        self._known: dict[str, _Record] = {}  # per backend: newest record written or adopted
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._down = False
        self._failed_steps = 0

    @property
    def key(self) -> str:
        """The Redis hash holding one record per backend."""
        return self._key

    @property
    def origin(self) -> str:
        """This instance's id, written as `o` in the records it publishes."""
        return self._origin

    @property
    def connected(self) -> bool:
        """False from a failed sync until the next one that succeeds."""
        return not self._down

    async def start(self) -> None:
        """Listen for local transitions, sync once, then start the background task."""
        if self._task is not None:
            return
        self._breakers.listen_local(self._on_local)
        await self._step()
        self._task = asyncio.create_task(self._run(), name="stepgate-breaker-sync")

    async def aclose(self) -> None:
        """Stop the task and close the Redis client; queued transitions are dropped."""
        self._breakers.listen_local(None)
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._redis.aclose()
        await self._redis.connection_pool.disconnect()

    def _on_local(self, t: Transition) -> None:
        # Hot path: dict writes and an Event, nothing that waits.
        if t.new == "half_open":
            return
        version = max(int(t.at_unix * 1000), self._versions.get(t.backend, 0) + 1)
        self._versions[t.backend] = version
        self._pending[t.backend] = _Record(version, self._origin, t.new, t.until_unix, t.at_unix)
        self._wake.set()

    async def _run(self) -> None:
        while True:
            if self._down:
                # Ignore wake-ups during an outage: transitions stay queued until Redis is back.
                backoff = self._interval_s * 2 ** min(self._failed_steps, 16)
                await asyncio.sleep(min(backoff, self._max_backoff_s))
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._interval_s)
            await self._step()

    async def _step(self) -> None:
        self._wake.clear()
        try:
            if self._down:
                await self._reassert()
            await self._flush()
            await self._poll()
        except _ERRORS as exc:
            self._failed_steps += 1
            if not self._down:
                self._down = True
                log.warning(
                    "circuit breaker sync: redis unreachable (%s); breakers work locally "
                    "until it is back",
                    exc,
                )
            if self._on_error is not None:
                self._on_error()
            return
        if self._down:
            log.info("circuit breaker sync: redis reachable again, state resynced")
        self._down = False
        self._failed_steps = 0

    async def _write(self, backend: str, record: _Record) -> Any:
        return await self._publish(
            keys=[self._key], args=[backend, record.version, record.encode(), RECORD_TTL_S]
        )

    async def _flush(self) -> None:
        for backend, record in list(self._pending.items()):
            held = await self._write(backend, record)
            if self._pending.get(backend) is record:
                del self._pending[backend]
            if held is None:
                known = self._known.get(backend)
                if known is None or known.version < record.version:
                    self._known[backend] = record
            else:
                self._consider(backend, held)

    async def _reassert(self) -> None:
        now = time.time()
        for backend, record in list(self._known.items()):
            if record.state == "open" and record.until is not None and record.until > now:
                held = await self._write(backend, record)
                if held is not None:
                    self._consider(backend, held)

    async def _poll(self) -> None:
        records = await self._redis.hgetall(self._key)
        for field, raw in records.items():
            name = field.decode("utf-8", "replace") if isinstance(field, bytes) else field
            self._consider(name, raw)

    def _consider(self, backend: str, raw: bytes | str) -> None:
        try:
            record = _Record.decode(raw)
        except ValueError:
            log.debug("circuit breaker sync: ignoring %r for %s", raw, backend)
            return
        if record.version <= self._versions.get(backend, 0):
            return  # seen already, our own, or older than a transition made here
        self._versions[backend] = record.version
        self._known[backend] = record
        # Anything still queued for this backend has a lower version: the newer record wins.
        self._pending.pop(backend, None)
        if record.origin == self._origin:
            return
        if record.state == "closed":
            self._breakers.adopt(backend, "closed", until_unix=None)
            return
        expired = record.until is not None and record.until <= time.time()
        if expired and self._breakers.state(backend) == "closed":
            return  # its cooldown is over: nothing to skip any more
        self._breakers.adopt(backend, "open", until_unix=record.until)
