"""Idempotent retries: a request sent again with its `Idempotency-Key` gets the first answer.

A key is scoped to the caller's API key (anonymous callers share one scope, as they share
everything else when keys are optional), so one tenant's key never reaches another's answer.
The first request with a key claims it, with a fingerprint of its body:

- while that request runs, the same key gets 409 `idempotency_in_progress` (Retry-After: 1);
- once it answered successfully, the same key with the same body gets the stored answer
  again (the same bytes and ids, `x-stepgate-idempotent-replay: true`): no upstream call, no
  second ledger row, no second charge;
- the same key with a different body gets 422 `idempotency_key_reused`;
- a request that failed releases its key, so the retry runs afresh (and is recorded: the
  ledger keeps one row per request the gateway ran, never fewer).

Entries live in the limit store (Redis when scaled out, so every replica agrees). A claim
whose request never finished (a crash) lapses after PENDING_TTL_S. Answers larger than
MAX_STORED_BYTES are not kept: the key is released and a retry runs again. While the store is
unreachable requests run without idempotency, as if the header were absent.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from gateway.core.errors import BadRequest, Conflict, Unprocessable
from gateway.limits.keys import Principal
from gateway.limits.store import LimitStore, StoreRejected, StoreUnavailable

log = logging.getLogger("stepgate.limits")

HEADER = "idempotency-key"
REPLAY_HEADER = "x-stepgate-idempotent-replay"
MAX_KEY_LEN = 255
MAX_STORED_BYTES = 1 << 20
# A claim lapses after this long even if its request never finished (a crash): then a retry
# runs again rather than waiting forever. Far above any normal request's duration.
PENDING_TTL_S = 600


@dataclass(frozen=True, slots=True)
class Stored:
    """A finished answer, as it went to the client."""

    status: int
    headers: dict[str, str]
    body: bytes
    media_type: str


def _valid_key(raw: str) -> bool:
    return 0 < len(raw) <= MAX_KEY_LEN and raw.isascii() and raw.isprintable()


class Claim:
    """One request's hold on its key: `keep` its answer or `release` the key, once."""

    def __init__(self, owner: Idempotency, key: str, fingerprint: str) -> None:
        self._owner = owner
        self._key = key
        self._fingerprint = fingerprint
        self._done = False

    def keep(self, stored: Stored) -> None:
        if self._done:
            return
        self._done = True
        if len(stored.body) > MAX_STORED_BYTES:
            self._owner.later(self._owner.store.forget(self._key))
            return
        entry = orjson.dumps(
            {
                "fp": self._fingerprint,
                "status": stored.status,
                "headers": stored.headers,
                "body": stored.body.decode(),
                "media_type": stored.media_type,
            }
        )
        self._owner.later(self._owner.store.cache_put(self._key, entry, self._owner.ttl_s))

    def release(self) -> None:
        if not self._done:
            self._done = True
            self._owner.later(self._owner.store.forget(self._key))

    async def recorded(
        self, frames: AsyncIterator[bytes], *, headers: Mapping[str, str], done: bytes
    ) -> AsyncIterator[bytes]:
        """Relay a stream's frames; keep them when the stream ended with `done`, else release
        (an in-band error, a cut upstream or a caller that went away)."""
        sent: list[bytes] = []
        size = 0
        try:
            async for frame in frames:
                if size <= MAX_STORED_BYTES:
                    sent.append(frame)
                    size += len(frame)
                yield frame
        finally:
            if sent and sent[-1] == done and size <= MAX_STORED_BYTES:
                self.keep(Stored(200, dict(headers), b"".join(sent), "text/event-stream"))
            else:
                self.release()


class Idempotency:
    def __init__(self, store: LimitStore, *, prefix: str, ttl_s: int) -> None:
        self.store = store
        self.ttl_s = ttl_s
        self._prefix = prefix
        self._tasks: set[asyncio.Task[None]] = set()

    async def begin(
        self, principal: Principal | None, headers: Mapping[str, str], body: bytes
    ) -> Claim | Stored | None:
        """None without the header (or while the store is down); a Claim for the first
        request with this key; the Stored answer for a retry of a finished one."""
        raw = headers.get(HEADER)
        if raw is None:
            return None
        if not _valid_key(raw):
            raise BadRequest(
                f"Idempotency-Key must be 1 to {MAX_KEY_LEN} printable ASCII characters; "
                "send a fresh UUID per logical request",
                code="invalid_idempotency_key",
                param="Idempotency-Key",
            )
        scope = principal.key_id if principal is not None else "-"
        key = self._prefix + "idem:" + hashlib.sha256(f"{scope}\0{raw}".encode()).hexdigest()
        fingerprint = hashlib.sha256(body).hexdigest()
        try:
            held = await self.store.claim(key, orjson.dumps({"fp": fingerprint}), PENDING_TTL_S)
        except (StoreUnavailable, StoreRejected) as exc:
            log.warning("idempotency store unavailable; serving without it: %s", exc)
            return None
        if held is None:
            return Claim(self, key, fingerprint)
        entry: dict[str, Any] = orjson.loads(held)
        if entry.get("fp") != fingerprint:
            raise Unprocessable(
                "this Idempotency-Key was already used for a different request body; "
                "use a new key for a new request",
                code="idempotency_key_reused",
                param="Idempotency-Key",
            )
        if "body" not in entry:
            raise Conflict(
                "a request with this Idempotency-Key is still running; retry in a moment",
                code="idempotency_in_progress",
                param="Idempotency-Key",
            )
        return Stored(
            status=int(entry["status"]),
            headers={**entry["headers"], REPLAY_HEADER: "true"},
            body=str(entry["body"]).encode(),
            media_type=str(entry["media_type"]),
        )

    def later(self, work: Any) -> None:
        """Run a store write off the response path (it must not delay or fail the answer)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # a relay finalised after the loop stopped: the claim lapses
            work.close()
            return
        task = loop.create_task(self._quietly(work))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _quietly(self, work: Any) -> None:
        try:
            await work
        except (StoreUnavailable, StoreRejected) as exc:
            log.warning("idempotency store write failed: %s", exc)

    async def flush(self) -> None:
        """Wait for the queued store writes (tests, and shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
