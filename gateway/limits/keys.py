"""Virtual API keys: minting, storage (hash only) and the hot-path check with a short cache.

A key reads `sg-<key_id>-<secret>`: `key_id` (12 hex chars) is public and indexes the row;
`secret` (43 alphanumerics, 256 bits, no `-`/`_` so a double click selects the whole key) is
only ever stored as its sha256 and compared in constant time. Verified keys are cached in
memory for `ttl_s` (default 5 s): a revoked key stops working on every replica within that
TTL, without a database read per request.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import secrets
import string
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, insert, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from gateway.core.errors import RateLimited
from gateway.limits.tables import api_keys, teams

PREFIX = "sg-"
_KEY = re.compile(r"^sg-([0-9a-f]{12})-([A-Za-z0-9]{43})$")
_ALPHABET = string.ascii_letters + string.digits


@dataclass(frozen=True, slots=True)
class KeyLimits:
    rpm: int | None = None
    tpm: int | None = None
    daily_budget_nanos: int | None = None
    monthly_budget_nanos: int | None = None


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: a verified key and its team (with the key's own limits)."""

    key_id: str
    team: str
    limits: KeyLimits = KeyLimits()


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """A stored key as `keys list` shows it (never the secret)."""

    key_id: str
    team: str
    name: str | None
    created_at: datetime
    revoked_at: datetime | None
    limits: KeyLimits


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def parse_key(presented: str) -> tuple[str, str] | None:
    """(key_id, secret) of a well-formed key, else None."""
    match = _KEY.match(presented)
    return (match.group(1), match.group(2)) if match else None


def presented_key(headers: Mapping[str, str]) -> str | None:
    """The bearer token or `x-api-key` header (names lower-case or case-insensitive mapping)."""
    auth = headers.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip() or None
    return headers.get("x-api-key") or None


# -- storage (sync; call from a worker thread on the request path) ---------------------------


def create_key(
    engine: Engine, *, team: str, name: str | None = None, limits: KeyLimits = KeyLimits()
) -> tuple[str, KeyInfo]:
    """Mint a key for `team` (created if new); returns the plaintext (shown once) and the row."""
    key_id = secrets.token_hex(6)
    secret = "".join(secrets.choice(_ALPHABET) for _ in range(43))
    now = datetime.now(UTC)
    with engine.begin() as conn:
        exists = conn.execute(select(teams.c.name).where(teams.c.name == team)).first()
        if exists is None:
            try:
                with conn.begin_nested():
                    conn.execute(insert(teams).values(name=team, created_at=now))
            except IntegrityError:
                pass  # created concurrently
        conn.execute(
            insert(api_keys).values(
                key_id=key_id,
                team=team,
                name=name,
                secret_sha256=_digest(secret),
                created_at=now,
                revoked_at=None,
                rpm=limits.rpm,
                tpm=limits.tpm,
                daily_budget_nanos=limits.daily_budget_nanos,
                monthly_budget_nanos=limits.monthly_budget_nanos,
            )
        )
    info = KeyInfo(key_id, team, name, now, None, limits)
    return f"{PREFIX}{key_id}-{secret}", info


def list_keys(engine: Engine, *, team: str | None = None) -> list[KeyInfo]:
    stmt = select(api_keys).order_by(api_keys.c.team, api_keys.c.created_at)
    if team is not None:
        stmt = stmt.where(api_keys.c.team == team)
    with engine.connect() as conn:
        return [_info(row) for row in conn.execute(stmt).mappings()]


def revoke_key(engine: Engine, key_id: str) -> bool:
    """Mark the key revoked; False when no such (unrevoked) key exists."""
    with engine.begin() as conn:
        result = conn.execute(
            update(api_keys)
            .where(api_keys.c.key_id == key_id, api_keys.c.revoked_at.is_(None))
            .values(revoked_at=datetime.now(UTC))
        )
    return bool(result.rowcount)


def _info(row: Any) -> KeyInfo:
    return KeyInfo(
        key_id=str(row["key_id"]),
        team=str(row["team"]),
        name=row["name"],
        created_at=row["created_at"],
        revoked_at=row["revoked_at"],
        limits=KeyLimits(
            rpm=row["rpm"],
            tpm=row["tpm"],
            daily_budget_nanos=row["daily_budget_nanos"],
            monthly_budget_nanos=row["monthly_budget_nanos"],
        ),
    )


def verify(engine: Engine, presented: str) -> Principal | None:
    """The principal for a presented key, or None if unknown, revoked or the secret is wrong."""
    parsed = parse_key(presented)
    if parsed is None:
        return None
    key_id, secret = parsed
    with engine.connect() as conn:
        row = conn.execute(select(api_keys).where(api_keys.c.key_id == key_id)).mappings().first()
    if row is None or row["revoked_at"] is not None:
        return None
    if not hmac.compare_digest(_digest(secret), str(row["secret_sha256"])):
        return None
    info = _info(row)
    return Principal(key_id=info.key_id, team=info.team, limits=info.limits)


# -- the hot path -----------------------------------------------------------------------------


class KeyCache:
    """Verifies presented keys against the database, caching answers for a short TTL.

    Positive answers are cached for `ttl_s`, negative ones for `negative_ttl_s` (so a flood of
    bad keys cannot hammer the database). Entries are keyed by the key's sha256, never the
    plaintext, and the cache is bounded (least recently used entries go first).
    """

    def __init__(
        self,
        engine: Engine,
        *,
        ttl_s: float = 5.0,
        negative_ttl_s: float = 1.0,
        max_entries: int = 10_000,
    ) -> None:
        self._engine = engine
        self._ttl_s = ttl_s
        self._negative_ttl_s = negative_ttl_s
        self._max = max_entries
        self._entries: OrderedDict[bytes, tuple[float, Principal | None]] = OrderedDict()
        self._inflight: dict[bytes, asyncio.Future[Principal | None]] = {}

    async def verify(self, presented: str) -> Principal | None:
        digest = hashlib.sha256(presented.encode()).digest()
        hit = self._entries.get(digest)
        now = time.monotonic()
        if hit is not None and hit[0] > now:
            return hit[1]
        if parse_key(presented) is None:
            return None
        pending = self._inflight.get(digest)
        if pending is not None:  # one database read per key, however many requests wait
            return await asyncio.shield(pending)
        future: asyncio.Future[Principal | None] = asyncio.get_running_loop().create_future()
        self._inflight[digest] = future
        try:
            try:
                principal = await asyncio.to_thread(verify, self._engine, presented)
            except SQLAlchemyError as exc:
                if hit is not None:  # the database is down: a recently verified key keeps working
                    future.set_result(hit[1])
                    return hit[1]
                err = RateLimited(
                    "cannot verify the API key right now (key store unreachable); retry shortly",
                    retry_after_s=1.0,
                    code="key_store_unavailable",
                )
                future.set_exception(err)
                future.exception()  # retrieved: waiters re-raise it
                raise err from exc
            ttl = self._ttl_s if principal is not None else self._negative_ttl_s
            self._entries[digest] = (time.monotonic() + ttl, principal)
            self._entries.move_to_end(digest)
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)
            future.set_result(principal)
            return principal
        finally:
            del self._inflight[digest]
