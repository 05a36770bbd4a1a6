"""Policy sections for limits, budgets and the response cache (`limits:` and `cache:`).

Team limits are written here; key limits are stored with the key (`stepgate keys create`).
`on_store_error` says what a limit does while the shared store (Redis) is unreachable:
`open` admits the request unchecked, `closed` refuses it with 429 and a short Retry-After.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from gateway.core.profile import StepKind

StoreErrorMode = Literal["open", "closed"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class OnStoreError(_Strict):
    rate: StoreErrorMode = "open"
    budget: StoreErrorMode = "closed"


class TeamLimits(_Strict):
    rpm: int | None = Field(default=None, ge=1)
    tpm: int | None = Field(default=None, ge=1)
    daily_budget_usd: Decimal | None = Field(default=None, gt=0)
    monthly_budget_usd: Decimal | None = Field(default=None, gt=0)
    # Overrides `limits.on_store_error` for this team's limits (rate and budget alike).
    on_store_error: StoreErrorMode | None = None


class LimitsPolicy(_Strict):
    on_store_error: OnStoreError = OnStoreError()
    teams: dict[str, TeamLimits] = Field(default_factory=dict)


DEFAULT_CACHE_KINDS: tuple[StepKind, ...] = ("classify", "extract", "format", "lookup")


class CachePolicy(_Strict):
    """Exact-match answers for deterministic steps (temperature 0, non-streaming)."""

    enabled: bool = False
    kinds: list[StepKind] = Field(default_factory=lambda: list(DEFAULT_CACHE_KINDS), min_length=1)
    ttl_s: int = Field(default=300, ge=1, le=7 * 86400)
    # Entries kept by the in-process cache (the Redis cache is bounded by Redis' own policy).
    max_entries: int = Field(default=10_000, ge=1)
    on_store_error: StoreErrorMode = "open"
