"""Declared restores and the workers' heartbeats

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import proapp.db

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'restore_record',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('at', proapp.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column('by', sa.String(length=160), nullable=False),
        sa.Column('backup', sa.String(length=300), nullable=False),
        sa.Column('body', sa.Text(), nullable=False),
        sa.Column('key_id', sa.String(length=20), nullable=False),
        sa.Column('mac', sa.String(length=64), nullable=False),
        sa.Column('released_at', proapp.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column('released_by', sa.String(length=160), nullable=True),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_restore_record')),
    )
    op.create_table(
        'worker_heartbeat',
        sa.Column('worker', sa.String(length=80), nullable=False),
        sa.Column('started_at', proapp.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column('beat_at', proapp.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('worker', name=op.f('pk_worker_heartbeat')),
    )
    with op.batch_alter_table('worker_heartbeat', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_worker_heartbeat_beat_at'), ['beat_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('worker_heartbeat', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_worker_heartbeat_beat_at'))
    op.drop_table('worker_heartbeat')
    op.drop_table('restore_record')
