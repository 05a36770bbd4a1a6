"""The keys schema: teams and virtual API keys.

A key is `sg-<key_id>-<secret>`; only `sha256(secret)` is stored. `key_id` is public (it shows
in `keys list`, the ledger and logs) and is how a presented key is looked up.
Budgets are integer nano-dollars; NULL means no limit of that kind on the key.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, DateTime, ForeignKey, Index, Integer, String, Table

from gateway.db.base import Base

KEY_ID_LEN = 32
TEAM_LEN = 128

teams = Table(
    "teams",
    Base.metadata,
    Column("name", String(TEAM_LEN), primary_key=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

api_keys = Table(
    "api_keys",
    Base.metadata,
    Column("key_id", String(KEY_ID_LEN), primary_key=True),
    Column("team", String(TEAM_LEN), ForeignKey("teams.name"), nullable=False),
    Column("name", String(TEAM_LEN)),
    Column("secret_sha256", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("revoked_at", DateTime(timezone=True)),
    Column("rpm", Integer),
    Column("tpm", Integer),
    Column("daily_budget_nanos", BigInteger),
    Column("monthly_budget_nanos", BigInteger),
    Index("ix_api_keys_team", "team"),
)
