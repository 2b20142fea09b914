"""Answering by voice call and SMS replies: each answer's mode, each patient's channel and voice PIN, each outbox
row's channel, and the conversations (a call or an SMS exchange about one visit)

Revision ID: 0028
Revises: 0027
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import proapp.db

revision: str = "0028"
down_revision: str | None = "0027"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("answer", schema=None) as batch_op:
        batch_op.add_column(sa.Column("mode", sa.String(length=12), nullable=True))
    with op.batch_alter_table("patient", schema=None) as batch_op:
        batch_op.add_column(sa.Column("answer_channel", sa.String(length=10), nullable=False,
                                      server_default="web"))
    with op.batch_alter_table("patient_contact", schema=None) as batch_op:
        batch_op.add_column(sa.Column("voice_pin_hash", sa.String(length=200), nullable=True))
    with op.batch_alter_table("sms_message", schema=None) as batch_op:
        batch_op.add_column(sa.Column("channel", sa.String(length=12), nullable=False, server_default="sms"))
    op.create_table(
        "conversation",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("occurrence_id", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=10), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("language", sa.String(length=2), nullable=False),
        sa.Column("state", sa.JSON(), nullable=True),
        sa.Column("provider_ref", sa.String(length=64), nullable=True),
        sa.Column("started_at", proapp.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_activity_at", proapp.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("ended_at", proapp.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["occurrence_id"], ["occurrence.id"]),
        sa.ForeignKeyConstraint(["patient_id"], ["patient.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("conversation", schema=None) as batch_op:
        batch_op.create_index("ix_conversation_occurrence_id", ["occurrence_id"], unique=False)
        batch_op.create_index("ix_conversation_patient_status", ["patient_id", "status"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("conversation", schema=None) as batch_op:
        batch_op.drop_index("ix_conversation_patient_status")
        batch_op.drop_index("ix_conversation_occurrence_id")
    op.drop_table("conversation")
    with op.batch_alter_table("sms_message", schema=None) as batch_op:
        batch_op.drop_column("channel")
    with op.batch_alter_table("patient_contact", schema=None) as batch_op:
        batch_op.drop_column("voice_pin_hash")
    with op.batch_alter_table("patient", schema=None) as batch_op:
        batch_op.drop_column("answer_channel")
    with op.batch_alter_table("answer", schema=None) as batch_op:
        batch_op.drop_column("mode")
