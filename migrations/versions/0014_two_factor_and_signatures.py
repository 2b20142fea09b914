"""Two-factor sign-in and electronic signatures

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import proapp.db

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('app_user', schema=None) as batch_op:
        batch_op.add_column(sa.Column('totp_secret_ciphertext', sa.LargeBinary(), nullable=True))
        batch_op.add_column(sa.Column('totp_enabled_at', proapp.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('totp_last_step', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('recovery_codes', sa.JSON(), nullable=True))

    with op.batch_alter_table('correction', schema=None) as batch_op:
        batch_op.add_column(sa.Column('signature_meaning', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('signature_method', sa.String(length=20), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('correction', schema=None) as batch_op:
        batch_op.drop_column('signature_method')
        batch_op.drop_column('signature_meaning')

    with op.batch_alter_table('app_user', schema=None) as batch_op:
        batch_op.drop_column('recovery_codes')
        batch_op.drop_column('totp_last_step')
        batch_op.drop_column('totp_enabled_at')
        batch_op.drop_column('totp_secret_ciphertext')

