"""Staff invitations and password resets

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import proapp.db

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('account_token',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('purpose', sa.String(length=10), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', proapp.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', proapp.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('used_at', proapp.db.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['app_user.id'], name=op.f('fk_account_token_user_id_app_user')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_account_token')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_account_token_token_hash'))
    )
    with op.batch_alter_table('account_token', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_account_token_user_id'), ['user_id'], unique=False)

    op.create_table('account_mail',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('purpose', sa.String(length=10), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('created_at', proapp.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('due_at', proapp.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('claimed_by', sa.String(length=80), nullable=True),
    sa.Column('claimed_at', proapp.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('sent_at', proapp.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('error', sa.String(length=300), nullable=True),
    sa.Column('token_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['token_id'], ['account_token.id'], name=op.f('fk_account_mail_token_id_account_token')),
    sa.ForeignKeyConstraint(['user_id'], ['app_user.id'], name=op.f('fk_account_mail_user_id_app_user')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_account_mail'))
    )
    with op.batch_alter_table('account_mail', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_account_mail_status'), ['status'], unique=False)
        batch_op.create_index(batch_op.f('ix_account_mail_user_id'), ['user_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('account_mail', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_account_mail_user_id'))
        batch_op.drop_index(batch_op.f('ix_account_mail_status'))

    op.drop_table('account_mail')
    with op.batch_alter_table('account_token', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_account_token_user_id'))

    op.drop_table('account_token')
