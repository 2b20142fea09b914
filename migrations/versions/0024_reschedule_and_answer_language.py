"""The anchor date rescheduled: the round of each visit's SMS (a moved visit's SMS start again), and the language
of each answer

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0024"
down_revision: str | None = "0023"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('occurrence', schema=None) as batch_op:
        batch_op.add_column(sa.Column('sms_round', sa.Integer(), server_default='0', nullable=False))
    with op.batch_alter_table('sms_message', schema=None) as batch_op:
        batch_op.add_column(sa.Column('round', sa.Integer(), server_default='0', nullable=False))
        batch_op.drop_constraint('uq_sms_message_occurrence_id_kind', type_='unique')
        batch_op.create_unique_constraint(batch_op.f('uq_sms_message_occurrence_id_round_kind'),
                                          ['occurrence_id', 'round', 'kind'])
    with op.batch_alter_table('answer', schema=None) as batch_op:
        batch_op.add_column(sa.Column('language', sa.String(length=2), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('answer', schema=None) as batch_op:
        batch_op.drop_column('language')
    # Every row is kept: a later round's kind carries its round ("invitation@1"), unique under the older key.
    op.execute("UPDATE sms_message SET kind = kind || '@' || CAST(round AS VARCHAR(10)) WHERE round > 0")
    with op.batch_alter_table('sms_message', schema=None) as batch_op:
        batch_op.drop_constraint('uq_sms_message_occurrence_id_round_kind', type_='unique')
        batch_op.create_unique_constraint(batch_op.f('uq_sms_message_occurrence_id_kind'), ['occurrence_id', 'kind'])
        batch_op.drop_column('round')
    with op.batch_alter_table('occurrence', schema=None) as batch_op:
        batch_op.drop_column('sms_round')
