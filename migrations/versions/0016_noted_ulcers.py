"""Ulcers noted by the study team

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import proapp.db

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'noted_ulcer',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('patient_id', sa.Integer(), nullable=False),
        sa.Column('number', sa.Integer(), nullable=False),
        sa.Column('hand', sa.String(length=1), nullable=False),
        sa.Column('finger', sa.String(length=1), nullable=False),
        sa.Column('site', sa.String(length=10), nullable=False),
        sa.Column('treated', sa.Boolean(), nullable=False),
        sa.Column('noted_on', sa.Date(), nullable=False),
        sa.Column('recorded_by', sa.String(length=160), nullable=False),
        sa.Column('recorded_at', proapp.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column('marks_reported', sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(['patient_id'], ['patient.id'], name=op.f('fk_noted_ulcer_patient_id_patient')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_noted_ulcer')),
        sa.UniqueConstraint('patient_id', 'number', name=op.f('uq_noted_ulcer_patient_id_number')),
    )
    with op.batch_alter_table('noted_ulcer', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_noted_ulcer_patient_id'), ['patient_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('noted_ulcer', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_noted_ulcer_patient_id'))
    op.drop_table('noted_ulcer')
