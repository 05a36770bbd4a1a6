"""Ledger tables: requests, attempts (one row per backend call), rollups and escalation_rollups.

Money columns are BigInteger nano-dollars; NULL cost = unknown price. The rollup histogram
columns follow gateway/ledger/histogram.BOUNDS_MS. escalation_rollups counts checked answers
that were not accepted, per route, team, kind and reason.

Revision ID: 0001_ledger_tables
Revises:
Create Date: 2026-11-26 20:14:02.078324
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0001_ledger_tables'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('requests',
    sa.Column('request_id', sa.String(length=64), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('api_key_id', sa.String(length=64), nullable=True),
    sa.Column('team', sa.String(length=128), nullable=True),
    sa.Column('route', sa.String(length=128), nullable=False),
    sa.Column('step_kind', sa.String(length=32), nullable=False),
    sa.Column('difficulty', sa.Float(), nullable=False),
    sa.Column('final_backend', sa.String(length=128), nullable=True),
    sa.Column('status', sa.Integer(), nullable=False),
    sa.Column('error_class', sa.String(length=128), nullable=True),
    sa.Column('latency_ms', sa.Float(), nullable=False),
    sa.Column('ttft_ms', sa.Float(), nullable=True),
    sa.Column('escalated', sa.Boolean(), nullable=False),
    sa.Column('confidence', sa.Float(), nullable=True),
    sa.Column('disposition', sa.String(length=32), nullable=False),
    sa.Column('escalation_reason', sa.String(length=256), nullable=True),
    sa.Column('stream', sa.Boolean(), nullable=False),
    sa.Column('cache_hit', sa.Boolean(), nullable=False),
    sa.Column('attempt_count', sa.Integer(), nullable=False),
    sa.Column('prompt_tokens', sa.BigInteger(), nullable=False),
    sa.Column('completion_tokens', sa.BigInteger(), nullable=False),
    sa.Column('cached_tokens', sa.BigInteger(), nullable=False),
    sa.Column('cost_nanos', sa.BigInteger(), nullable=True),
    sa.Column('baseline_cost_nanos', sa.BigInteger(), nullable=True),
    sa.PrimaryKeyConstraint('request_id', name=op.f('pk_requests'))
    )
    op.create_index('ix_requests_started_at', 'requests', ['started_at'], unique=False)
    op.create_index('ix_requests_team_started_at', 'requests', ['team', 'started_at'], unique=False)
    op.create_table('rollups',
    sa.Column('grain', sa.String(length=8), nullable=False),
    sa.Column('bucket_start', sa.BigInteger(), nullable=False),
    sa.Column('route', sa.String(length=128), nullable=False),
    sa.Column('backend', sa.String(length=128), nullable=False),
    sa.Column('team', sa.String(length=128), nullable=False),
    sa.Column('kind', sa.String(length=128), nullable=False),
    sa.Column('requests', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('errors', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('escalations', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('drafts', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('attempts', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('attempt_errors', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('prompt_tokens', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('completion_tokens', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('cached_tokens', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('cost_nanos', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('baseline_cost_nanos', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('savings_nanos', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('unknown_cost_attempts', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('unknown_baseline_attempts', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('latency_ms_sum', sa.Float(), server_default='0', nullable=False),
    sa.Column('lat_le_1', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('lat_le_2', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('lat_le_3', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('lat_le_5', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('lat_le_7', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('lat_le_10', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('lat_le_15', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('lat_le_20', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('lat_le_30', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('lat_le_50', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('lat_le_70', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('lat_le_100', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('lat_le_150', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('lat_le_200', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('lat_le_300', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('lat_le_500', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('lat_le_700', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('lat_le_1000', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('lat_le_1500', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('lat_le_2000', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('lat_le_3000', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('lat_le_5000', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('lat_le_7000', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('lat_le_10000', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('lat_le_15000', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('lat_le_20000', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('lat_le_30000', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('lat_le_60000', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('lat_le_120000', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('lat_gt_120000', sa.BigInteger(), server_default='0', nullable=False),
    sa.PrimaryKeyConstraint('grain', 'bucket_start', 'route', 'backend', 'team', 'kind', name=op.f('pk_rollups'))
    )
    op.create_table('escalation_rollups',
    sa.Column('grain', sa.String(length=8), nullable=False),
    sa.Column('bucket_start', sa.BigInteger(), nullable=False),
    sa.Column('route', sa.String(length=128), nullable=False),
    sa.Column('team', sa.String(length=128), nullable=False),
    sa.Column('kind', sa.String(length=128), nullable=False),
    sa.Column('reason', sa.String(length=128), nullable=False),
    sa.Column('requests', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('escalated', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('drafts', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('cost_nanos', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('escalation_cost_nanos', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('unknown_cost_attempts', sa.BigInteger(), server_default='0', nullable=False),
    sa.PrimaryKeyConstraint('grain', 'bucket_start', 'route', 'team', 'kind', 'reason', name=op.f('pk_escalation_rollups'))
    )
    op.create_table('attempts',
    sa.Column('request_id', sa.String(length=64), nullable=False),
    sa.Column('attempt', sa.Integer(), nullable=False),
    sa.Column('role', sa.String(length=32), nullable=False),
    sa.Column('backend', sa.String(length=128), nullable=False),
    sa.Column('backend_type', sa.String(length=32), nullable=False),
    sa.Column('model', sa.String(length=256), nullable=False),
    sa.Column('outcome', sa.String(length=32), nullable=False),
    sa.Column('error_class', sa.String(length=128), nullable=True),
    sa.Column('prompt_tokens', sa.BigInteger(), nullable=False),
    sa.Column('completion_tokens', sa.BigInteger(), nullable=False),
    sa.Column('cached_tokens', sa.BigInteger(), nullable=False),
    sa.Column('cost_nanos', sa.BigInteger(), nullable=True),
    sa.Column('baseline_cost_nanos', sa.BigInteger(), nullable=True),
    sa.Column('latency_ms', sa.Float(), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['request_id'], ['requests.request_id'], name=op.f('fk_attempts_request_id_requests'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('request_id', 'attempt', name=op.f('pk_attempts'))
    )


def downgrade() -> None:
    op.drop_table('attempts')
    op.drop_table('escalation_rollups')
    op.drop_table('rollups')
    op.drop_index('ix_requests_team_started_at', table_name='requests')
    op.drop_index('ix_requests_started_at', table_name='requests')
    op.drop_table('requests')
