"""The ledger schema: one row per request, one per backend attempt, and pre-summed rollups.

Money is integer nano-dollars (`BigInteger`); a NULL cost means the price was unknown.
`rollups` holds one row per (grain, bucket_start, route, backend, team, kind) and is updated in
the same transaction as the raw rows it summarises, so reports never scan `requests`.
Request-level figures (requests, errors, latency) count under the request's final backend;
attempt-level figures (tokens, cost) under the backend that served the attempt.
`escalation_rollups` counts the requests whose cheap answer failed its check, per
(grain, bucket_start, route, team, kind, reason), maintained the same way.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Table,
)

from gateway.db.base import Base
from gateway.ledger import histogram

ID_LEN = 64
CLIENT_ID_LEN = 128
NAME_LEN = 128
SHORT_LEN = 32
REASON_LEN = 256

requests = Table(
    "requests",
    Base.metadata,
    Column("request_id", String(ID_LEN), primary_key=True),  # the gateway's own id
    Column("client_request_id", String(CLIENT_ID_LEN)),  # the caller's, if it sent one
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("api_key_id", String(ID_LEN)),
    Column("team", String(NAME_LEN)),
    Column("route", String(NAME_LEN), nullable=False),
    Column("step_kind", String(SHORT_LEN), nullable=False),
    Column("difficulty", Float, nullable=False),
    Column("final_backend", String(NAME_LEN)),
    Column("status", Integer, nullable=False),
    Column("error_class", String(NAME_LEN)),
    Column("latency_ms", Float, nullable=False),
    Column("ttft_ms", Float),
    Column("escalated", Boolean, nullable=False),
    Column("confidence", Float),
    Column("disposition", String(SHORT_LEN), nullable=False),
    Column("escalation_reason", String(REASON_LEN)),
    Column("stream", Boolean, nullable=False),
    Column("cache_hit", Boolean, nullable=False),
    Column("attempt_count", Integer, nullable=False),
    Column("prompt_tokens", BigInteger, nullable=False),
    Column("completion_tokens", BigInteger, nullable=False),
    Column("cached_tokens", BigInteger, nullable=False),
    Column("cost_nanos", BigInteger),
    Column("baseline_cost_nanos", BigInteger),
    Index("ix_requests_started_at", "started_at"),
    Index("ix_requests_team_started_at", "team", "started_at"),
    Index("ix_requests_client_request_id", "client_request_id"),
)

attempts = Table(
    "attempts",
    Base.metadata,
    Column(
        "request_id",
        String(ID_LEN),
        ForeignKey("requests.request_id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("attempt", Integer, nullable=False),
    Column("role", String(SHORT_LEN), nullable=False),
    Column("backend", String(NAME_LEN), nullable=False),
    Column("backend_type", String(SHORT_LEN), nullable=False),
    Column("model", String(REASON_LEN), nullable=False),
    Column("outcome", String(SHORT_LEN), nullable=False),
    Column("error_class", String(NAME_LEN)),
    Column("prompt_tokens", BigInteger, nullable=False),
    Column("completion_tokens", BigInteger, nullable=False),
    Column("cached_tokens", BigInteger, nullable=False),
    Column("cost_nanos", BigInteger),
    Column("baseline_cost_nanos", BigInteger),
    Column("latency_ms", Float, nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    PrimaryKeyConstraint("request_id", "attempt"),
)

GRAINS: dict[str, int] = {"minute": 60, "hour": 3600, "day": 86400}
DIMENSIONS: tuple[str, ...] = ("route", "backend", "team", "kind")
KEY_COLUMNS: tuple[str, ...] = ("grain", "bucket_start", *DIMENSIONS)
# Summed columns besides the histogram. savings_nanos only covers attempts whose cost and
# baseline are both known, so an unknown price never inflates savings.
SUM_COLUMNS: tuple[str, ...] = (
    "requests",
    "errors",
    "escalations",
    "drafts",
    "attempts",
    "attempt_errors",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "cost_nanos",
    "baseline_cost_nanos",
    "savings_nanos",
    "unknown_cost_attempts",
    "unknown_baseline_attempts",
)
VALUE_COLUMNS: tuple[str, ...] = (*SUM_COLUMNS, "latency_ms_sum", *histogram.COLUMNS)

rollups = Table(
    "rollups",
    Base.metadata,
    Column("grain", String(8), nullable=False),  # minute | hour | day
    Column("bucket_start", BigInteger, nullable=False),  # unix seconds, UTC, grain-aligned
    # Dimensions are never NULL ("" for no team / no final backend) so ON CONFLICT can match.
    *(Column(name, String(NAME_LEN), nullable=False) for name in DIMENSIONS),
    *(Column(name, BigInteger, nullable=False, server_default="0") for name in SUM_COLUMNS),
    Column("latency_ms_sum", Float, nullable=False, server_default="0"),
    *(Column(name, BigInteger, nullable=False, server_default="0") for name in histogram.COLUMNS),
    PrimaryKeyConstraint(*KEY_COLUMNS),
)

ESCALATION_KEY_COLUMNS: tuple[str, ...] = (
    "grain",
    "bucket_start",
    "route",
    "team",
    "kind",
    "reason",
)
# requests: checked answers that were not accepted (escalated + drafts, barring an escalation
# that failed after the check); cost_nanos: what those requests cost in all (known prices);
# escalation_cost_nanos: the part spent on the escalation attempts, i.e. what the check cost.
ESCALATION_SUM_COLUMNS: tuple[str, ...] = (
    "requests",
    "escalated",
    "drafts",
    "cost_nanos",
    "escalation_cost_nanos",
    "unknown_cost_attempts",
)

escalation_rollups = Table(
    "escalation_rollups",
    Base.metadata,
    Column("grain", String(8), nullable=False),
    Column("bucket_start", BigInteger, nullable=False),
    *(Column(name, String(NAME_LEN), nullable=False) for name in ("route", "team", "kind")),
    Column("reason", String(NAME_LEN), nullable=False),  # a verdict slug, or "unspecified"
    *(
        Column(name, BigInteger, nullable=False, server_default="0")
        for name in ESCALATION_SUM_COLUMNS
    ),
    PrimaryKeyConstraint(*ESCALATION_KEY_COLUMNS),
)
