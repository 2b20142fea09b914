"""The study team's decisions on the ulcers: disputes resolved, ulcers closed

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import proapp.db

revision: str = "0023"
down_revision: str | None = "0022"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'ulcer_decision',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('patient_id', sa.Integer(), nullable=False),
        sa.Column('number', sa.Integer(), nullable=False),
        sa.Column('action', sa.String(length=20), nullable=False),
        sa.Column('hand', sa.String(length=1), nullable=True),
        sa.Column('finger', sa.String(length=1), nullable=True),
        sa.Column('site', sa.String(length=10), nullable=True),
        sa.Column('closed_on', sa.Date(), nullable=True),
        sa.Column('reason', sa.String(length=500), nullable=False),
        sa.Column('decided_by', sa.String(length=160), nullable=False),
        sa.Column('decided_at', proapp.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['patient_id'], ['patient.id'], name=op.f('fk_ulcer_decision_patient_id_patient')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_ulcer_decision')),
    )
    with op.batch_alter_table('ulcer_decision', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ulcer_decision_patient_id'), ['patient_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('ulcer_decision', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ulcer_decision_patient_id'))
    op.drop_table('ulcer_decision')
