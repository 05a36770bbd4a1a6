"""Process settings from the environment (prefix STEPGATE_): where things are, not what to do."""

from __future__ import annotations

from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="STEPGATE_", extra="ignore", frozen=True)

    database_url: str = "sqlite:///stepgate.db"
    redis_url: str | None = None
    policy: Path = Path("policies/support.yaml")
    admin_key: SecretStr | None = None
    require_keys: bool = False
    # /readyz answers only with the admin key (401 without it); /healthz stays open.
    readyz_admin_only: bool = False
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    otlp_endpoint: str | None = None
    # Where ledger records wait while the database is unreachable.
    spool_dir: Path = Path("stepgate-spool")
    max_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    # Import litellm in the background right after start-up (true), or only when an AR backend
    # is first used (false: lowest memory while no AR backend is used; the first AR call waits).
    preload_ar: bool = True
    # Seconds between checks of the policy file for changes (0 disables the watcher).
    policy_poll_s: float = Field(default=2.0, ge=0)
    # How long a dashboard sign-in lasts (seconds); sign-out or a new admin key ends it sooner.
    session_ttl_s: int = Field(default=12 * 3600, ge=60, le=30 * 86400)
    # How long the answer to a request sent with an `Idempotency-Key` is kept for replay.
    idempotency_ttl_s: int = Field(default=24 * 3600, ge=60, le=7 * 86400)
    # Reverse proxies (IPs or CIDRs, comma-separated) whose `X-Forwarded-Proto` is believed.
    # Empty: no forwarded header is believed, whoever sends it.
    trusted_proxies: Annotated[tuple[IPv4Network | IPv6Network, ...], NoDecode] = ()
    # Connection hygiene (enforced by gateway/http_protocol.py). A request's head must arrive
    # within HEADER_TIMEOUT_S and all of it, body included, within BODY_TIMEOUT_S of its start
    # (the connection's arrival for its first request, its first byte for later ones).
    header_timeout_s: float = Field(default=10.0, gt=0, le=300)
    body_timeout_s: float = Field(default=30.0, gt=0, le=3600)
    # Seconds an idle keep-alive connection is kept open between requests.
    keepalive_s: int = Field(default=5, ge=1, le=300)
    # Open connections per worker process; lowered at start to leave fds for upstreams and the
    # database. Past it a new connection is closed on arrival.
    max_connections: int = Field(default=4096, ge=1, le=1_000_000)
    # Open connections per client IP per worker process (0: no per-client cap; behind a
    # reverse proxy every client has the proxy's address, so raise it or set 0 there).
    max_connections_per_client: int = Field(default=256, ge=0, le=1_000_000)
    # Seconds a SIGTERM (or Ctrl+C) lets in-flight requests and streams run on while no new
    # connection is accepted; what is still running then is cut with an answer (0: at once).
    # Under the orchestrator's kill timeout, with room for the cut and the flush: Kubernetes
    # sends SIGKILL 30 s after SIGTERM by default.
    drain_s: int = Field(default=25, ge=0, le=3600)

    @field_validator("admin_key")
    @classmethod
    def _strong_admin_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 16:
            raise ValueError(
                "STEPGATE_ADMIN_KEY must be at least 16 characters; generate one with "
                "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`"
            )
        return value

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _networks(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        networks = []
        for entry in (part.strip() for part in value.split(",")):
            if not entry:
                continue
            try:
                networks.append(ip_network(entry, strict=False))
            except ValueError as exc:
                raise ValueError(
                    f"STEPGATE_TRUSTED_PROXIES: {entry!r} is no IP address or CIDR; "
                    "give e.g. `10.0.0.5,10.1.0.0/16`"
                ) from exc
        return tuple(networks)

    @field_validator("log_level", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _body_after_head(self) -> Settings:
        if self.body_timeout_s < self.header_timeout_s:
            raise ValueError(
                f"STEPGATE_BODY_TIMEOUT_S ({self.body_timeout_s}) is shorter than "
                f"STEPGATE_HEADER_TIMEOUT_S ({self.header_timeout_s}); the body deadline counts "
                "from the same start as the head's, so give it at least as long"
            )
        return self


def describe_invalid(exc: ValidationError) -> str:
    """Each problem as `STEPGATE_<NAME>: message`, never with the value that was given (it may
    be a secret: an admin key, a database password in a URL)."""
    lines = []
    for error in exc.errors():
        name = "_".join(str(part) for part in error["loc"]).upper()
        where = f"STEPGATE_{name}" if name else "settings"
        message = str(error["msg"]).removeprefix("Value error, ")
        lines.append(message if message.startswith("STEPGATE_") else f"{where}: {message}")
    return "; ".join(lines)
