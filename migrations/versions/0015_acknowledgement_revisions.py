"""Acknowledgements by revision

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('acknowledgement', schema=None) as batch_op:
        batch_op.add_column(sa.Column('revision', sa.Integer(), server_default='0', nullable=False))
        batch_op.drop_constraint(batch_op.f('uq_acknowledgement_response_id_api_key_id'), type_='unique')
        batch_op.create_unique_constraint(batch_op.f('uq_acknowledgement_response_id_api_key_id_revision'), ['response_id', 'api_key_id', 'revision'])



def downgrade() -> None:
    with op.batch_alter_table('acknowledgement', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_acknowledgement_response_id_api_key_id_revision'), type_='unique')
        batch_op.create_unique_constraint(batch_op.f('uq_acknowledgement_response_id_api_key_id'), ['response_id', 'api_key_id'])
        batch_op.drop_column('revision')

