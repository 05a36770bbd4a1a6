"""Dashboard sign-in sessions: an unguessable token in the cookie, its record on the server.

The cookie holds `secrets.token_urlsafe(32)` (256 random bits); the server keeps only the
token's SHA-256, with the fingerprint of the admin key it was issued under and an expiry.
A session ends when it expires, on sign-out (`revoke`), and when the admin key changes (its
fingerprint no longer matches). One process keeps sessions in a dict; with Redis configured
they live there under a TTL, so every replica honours (and revokes) the same sessions.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import time
from typing import TYPE_CHECKING, ClassVar, Protocol

from gateway.core.errors import GatewayError

if TYPE_CHECKING:
    from redis.asyncio import Redis

_KEY_PREFIX = "stepgate:session:"


class SessionStoreUnavailable(GatewayError):
    status: ClassVar[int] = 503
    error_class: ClassVar[str] = "gateway_session_store_unavailable"


def admin_fingerprint(admin_key: str) -> str:
    """What a session remembers of the admin key: enough to notice a new key, not the key."""
    return hashlib.sha256(b"stepgate-admin-session:" + admin_key.encode()).hexdigest()


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class SessionStore(Protocol):
    async def create(self, *, fingerprint: str) -> str:
        """A new session under `fingerprint`; returns its token (for the cookie only)."""
        ...

    async def valid(self, token: str, *, fingerprint: str) -> bool:
        """Whether `token` is a live session issued under `fingerprint`."""
        ...

    async def revoke(self, token: str) -> None: ...

    async def aclose(self) -> None: ...


class MemorySessions:
    """One process's sessions: {sha256(token): (fingerprint, expires at, monotonic)}."""

    def __init__(self, *, ttl_s: int) -> None:
        self._ttl_s = ttl_s
        self._sessions: dict[str, tuple[str, float]] = {}

    async def create(self, *, fingerprint: str) -> str:
        now = time.monotonic()
        self._sessions = {k: v for k, v in self._sessions.items() if v[1] > now}
        token = secrets.token_urlsafe(32)
        self._sessions[_digest(token)] = (fingerprint, now + self._ttl_s)
        return token

    async def valid(self, token: str, *, fingerprint: str) -> bool:
        found = self._sessions.get(_digest(token))
        if found is None or found[1] <= time.monotonic():
            return False
        return hmac.compare_digest(found[0], fingerprint)

    async def revoke(self, token: str) -> None:
        self._sessions.pop(_digest(token), None)

    async def aclose(self) -> None:
        self._sessions.clear()


class RedisSessions:
    """Sessions shared by replicas: `stepgate:session:<sha256(token)>` = fingerprint, with TTL."""

    def __init__(self, url: str, *, ttl_s: int, timeout_s: float = 1.0) -> None:
        # Imported here, as the limits store does: a gateway without Redis never loads it.
        from redis.asyncio import Redis
        from redis.exceptions import RedisError

        self._ttl_s = ttl_s
        self._redis: Redis = Redis.from_url(
            url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s
        )
        self._errors = (RedisError, OSError, asyncio.TimeoutError)

    async def create(self, *, fingerprint: str) -> str:
        token = secrets.token_urlsafe(32)
        try:
            await self._redis.set(_KEY_PREFIX + _digest(token), fingerprint, ex=self._ttl_s)
        except self._errors as exc:
            raise SessionStoreUnavailable("cannot store the sign-in session (Redis)") from exc
        return token

    async def valid(self, token: str, *, fingerprint: str) -> bool:
        try:
            found = await self._redis.get(_KEY_PREFIX + _digest(token))
        except self._errors as exc:
            raise SessionStoreUnavailable("cannot check the sign-in session (Redis)") from exc
        return isinstance(found, bytes) and hmac.compare_digest(found, fingerprint.encode())

    async def revoke(self, token: str) -> None:
        try:
            await self._redis.delete(_KEY_PREFIX + _digest(token))
        except self._errors as exc:
            raise SessionStoreUnavailable("cannot end the sign-in session (Redis)") from exc

    async def aclose(self) -> None:
        await self._redis.aclose()


def build_sessions(*, redis_url: str | None, ttl_s: int) -> SessionStore:
    """Redis-backed when the gateway has Redis (replicas share sessions), else in process."""
    if redis_url:
        return RedisSessions(redis_url, ttl_s=ttl_s)
    return MemorySessions(ttl_s=ttl_s)
