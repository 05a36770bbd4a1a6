"""Process settings from the environment (prefix STEPGATE_): where things are, not what to do."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="STEPGATE_", extra="ignore", frozen=True)

    database_url: str = "sqlite:///stepgate.db"
    redis_url: str | None = None
    policy: Path = Path("policies/support.yaml")
    admin_key: SecretStr | None = None
    require_keys: bool = False
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

    @field_validator("admin_key")
    @classmethod
    def _strong_admin_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 16:
            raise ValueError(
                "STEPGATE_ADMIN_KEY must be at least 16 characters; generate one with "
                "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`"
            )
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value
