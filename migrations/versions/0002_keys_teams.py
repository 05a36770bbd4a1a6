"""Keys schema: teams and virtual API keys (sha256 of the secret only; budgets in nano-dollars).

Revision ID: 0002_keys_teams
Revises: 0001_ledger_tables
Create Date: 2026-11-26 20:30:10.253123
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0002_keys_teams'
down_revision: str | None = '0001_ledger_tables'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('teams',
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_teams'))
    )
    op.create_table('api_keys',
    sa.Column('key_id', sa.String(length=32), nullable=False),
    sa.Column('team', sa.String(length=128), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=True),
    sa.Column('secret_sha256', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('rpm', sa.Integer(), nullable=True),
    sa.Column('tpm', sa.Integer(), nullable=True),
    sa.Column('daily_budget_nanos', sa.BigInteger(), nullable=True),
    sa.Column('monthly_budget_nanos', sa.BigInteger(), nullable=True),
    sa.ForeignKeyConstraint(['team'], ['teams.name'], name=op.f('fk_api_keys_team_teams')),
    sa.PrimaryKeyConstraint('key_id', name=op.f('pk_api_keys'))
    )
    op.create_index('ix_api_keys_team', 'api_keys', ['team'], unique=False)



def downgrade() -> None:
    op.drop_index('ix_api_keys_team', table_name='api_keys')

    op.drop_table('api_keys')
    op.drop_table('teams')
