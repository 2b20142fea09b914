"""Closing a study: the closure's steps, and the closed study's links; links that open the information sheet

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import proapp.db

revision: str = "0026"
down_revision: str | None = "0025"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'study_closure',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('study_id', sa.Integer(), nullable=False),
        sa.Column('started_at', proapp.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column('started_by', sa.String(length=160), nullable=False),
        sa.Column('forced_reason', sa.String(length=500), nullable=True),
        sa.Column('signature', sa.JSON(), nullable=True),
        sa.Column('live_data', sa.String(length=10), nullable=False),
        sa.Column('archive_name', sa.String(length=200), nullable=True),
        sa.Column('archive_sha256', sa.String(length=64), nullable=True),
        sa.Column('archived_at', proapp.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column('contacts_erased_at', proapp.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column('live_data_done_at', proapp.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['study_id'], ['study.id'], name=op.f('fk_study_closure_study_id_study')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_study_closure')),
        sa.UniqueConstraint('study_id', name=op.f('uq_study_closure_study_id')),
    )
    op.create_table(
        'closed_link',
        sa.Column('token_sha256', sa.String(length=64), nullable=False),
        sa.Column('study_id', sa.Integer(), nullable=False),
        sa.Column('language', sa.String(length=2), nullable=False),
        sa.ForeignKeyConstraint(['study_id'], ['study.id'], name=op.f('fk_closed_link_study_id_study')),
        sa.PrimaryKeyConstraint('token_sha256', name=op.f('pk_closed_link')),
    )
    with op.batch_alter_table('closed_link', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_closed_link_study_id'), ['study_id'], unique=False)
    with op.batch_alter_table('access_link', schema=None) as batch_op:
        batch_op.add_column(sa.Column('purpose', sa.String(length=20), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('access_link', schema=None) as batch_op:
        batch_op.drop_column('purpose')
    with op.batch_alter_table('closed_link', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_closed_link_study_id'))
    op.drop_table('closed_link')
    op.drop_table('study_closure')
