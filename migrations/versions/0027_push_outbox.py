"""EDC pushes join the one outbox: claimed by a worker (claimed_by, claimed_at, status "sending"), due_at as in
the other outboxes, "sent" for what the EDC accepted (was "delivered")

Revision ID: 0027
Revises: 0026
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import proapp.db

revision: str = "0027"
down_revision: str | None = "0026"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('push_delivery', schema=None) as batch_op:
        batch_op.drop_index('ix_push_delivery_due')
        batch_op.alter_column('next_at', new_column_name='due_at')
        batch_op.add_column(sa.Column('claimed_by', sa.String(length=80), nullable=True))
        batch_op.add_column(sa.Column('claimed_at', proapp.db.UTCDateTime(timezone=True), nullable=True))
    with op.batch_alter_table('push_delivery', schema=None) as batch_op:
        batch_op.create_index('ix_push_delivery_due', ['status', 'due_at'], unique=False)
    op.execute("UPDATE push_delivery SET status = 'sent' WHERE status = 'delivered'")


def downgrade() -> None:
    op.execute("UPDATE push_delivery SET status = 'delivered' WHERE status = 'sent'")
    op.execute("UPDATE push_delivery SET status = 'pending' WHERE status = 'sending'")
    with op.batch_alter_table('push_delivery', schema=None) as batch_op:
        batch_op.drop_index('ix_push_delivery_due')
        batch_op.drop_column('claimed_at')
        batch_op.drop_column('claimed_by')
        batch_op.alter_column('due_at', new_column_name='next_at')
    with op.batch_alter_table('push_delivery', schema=None) as batch_op:
        batch_op.create_index('ix_push_delivery_due', ['status', 'next_at'], unique=False)
