"""The patient's agreement to SMS and to answering online, acknowledgements of the information sheet, and the
source of each correction

Revision ID: 0022
Revises: 0019
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import proapp.db

revision: str = "0022"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'agreement',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('patient_id', sa.Integer(), nullable=False),
        sa.Column('kind', sa.String(length=20), nullable=False),
        sa.Column('information_version', sa.String(length=40), nullable=True),
        sa.Column('given_on', sa.Date(), nullable=False),
        sa.Column('recorded_by', sa.String(length=160), nullable=False),
        sa.Column('recorded_at', proapp.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['patient_id'], ['patient.id'], name=op.f('fk_agreement_patient_id_patient')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_agreement')),
    )
    with op.batch_alter_table('agreement', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_agreement_patient_id'), ['patient_id'], unique=False)
    with op.batch_alter_table('correction', schema=None) as batch_op:
        batch_op.add_column(sa.Column('source', sa.String(length=30), nullable=True))
        batch_op.add_column(sa.Column('requested_on', sa.Date(), nullable=True))
        batch_op.add_column(sa.Column('request_method', sa.String(length=20), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('correction', schema=None) as batch_op:
        batch_op.drop_column('request_method')
        batch_op.drop_column('requested_on')
        batch_op.drop_column('source')
    with op.batch_alter_table('agreement', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_agreement_patient_id'))
    op.drop_table('agreement')
