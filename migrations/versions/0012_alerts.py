"""Safety-signal alerts and their notifications; site on-call contacts

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import proapp.db

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('alert',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('study_id', sa.Integer(), nullable=False),
    sa.Column('site_id', sa.Integer(), nullable=False),
    sa.Column('patient_id', sa.Integer(), nullable=False),
    sa.Column('occurrence_id', sa.Integer(), nullable=False),
    sa.Column('rule_code', sa.String(length=40), nullable=False),
    sa.Column('rule_label', sa.JSON(), nullable=False),
    sa.Column('severity', sa.String(length=10), nullable=False),
    sa.Column('source', sa.String(length=20), nullable=False),
    sa.Column('evidence', sa.JSON(), nullable=False),
    sa.Column('raised_at', proapp.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('state', sa.Enum('open', 'acknowledged', name='alert_state', native_enum=False, create_constraint=True, length=20), nullable=False),
    sa.Column('escalation_level', sa.Integer(), nullable=False),
    sa.Column('notified_at', proapp.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('escalated_at', proapp.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('acknowledged_at', proapp.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('acknowledged_by', sa.String(length=160), nullable=True),
    sa.Column('ack_action', sa.Enum('called_patient', 'referred', 'seen_at_visit', 'no_action', name='alert_ack_action', native_enum=False, create_constraint=True, length=20), nullable=True),
    sa.Column('ack_note', sa.String(length=1000), nullable=True),
    sa.ForeignKeyConstraint(['occurrence_id'], ['occurrence.id'], name=op.f('fk_alert_occurrence_id_occurrence')),
    sa.ForeignKeyConstraint(['patient_id'], ['patient.id'], name=op.f('fk_alert_patient_id_patient')),
    sa.ForeignKeyConstraint(['site_id'], ['site.id'], name=op.f('fk_alert_site_id_site')),
    sa.ForeignKeyConstraint(['study_id'], ['study.id'], name=op.f('fk_alert_study_id_study')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_alert')),
    sa.UniqueConstraint('occurrence_id', 'rule_code', name=op.f('uq_alert_occurrence_id_rule_code'))
    )
    with op.batch_alter_table('alert', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_alert_patient_id'), ['patient_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_alert_site_id'), ['site_id'], unique=False)
        batch_op.create_index('ix_alert_state_raised_at', ['state', 'raised_at'], unique=False)

    op.create_table('alert_notification',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('alert_id', sa.Integer(), nullable=False),
    sa.Column('step', sa.Integer(), nullable=False),
    sa.Column('channel', sa.String(length=10), nullable=False),
    sa.Column('recipient', sa.String(length=254), nullable=False),
    sa.Column('recipient_kind', sa.String(length=20), nullable=False),
    sa.Column('language', sa.String(length=2), nullable=True),
    sa.Column('status', sa.Enum('pending', 'sending', 'sent', 'failed', 'unknown', name='alert_notification_status', native_enum=False, create_constraint=True, length=20), nullable=False),
    sa.Column('created_at', proapp.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('due_at', proapp.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('status_at', proapp.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('claimed_by', sa.String(length=80), nullable=True),
    sa.Column('claimed_at', proapp.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('sent_at', proapp.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('provider_id', sa.String(length=120), nullable=True),
    sa.Column('error', sa.String(length=300), nullable=True),
    sa.ForeignKeyConstraint(['alert_id'], ['alert.id'], name=op.f('fk_alert_notification_alert_id_alert')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_alert_notification')),
    sa.UniqueConstraint('alert_id', 'step', 'channel', 'recipient', name=op.f('uq_alert_notification_alert_id_step_channel_recipient'))
    )
    with op.batch_alter_table('alert_notification', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_alert_notification_alert_id'), ['alert_id'], unique=False)
        batch_op.create_index('ix_alert_notification_status_due_at', ['status', 'due_at'], unique=False)

    with op.batch_alter_table('site', schema=None) as batch_op:
        batch_op.add_column(sa.Column('on_call_email', sa.String(length=254), nullable=True))
        batch_op.add_column(sa.Column('on_call_mobile', sa.String(length=32), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('site', schema=None) as batch_op:
        batch_op.drop_column('on_call_mobile')
        batch_op.drop_column('on_call_email')

    with op.batch_alter_table('alert_notification', schema=None) as batch_op:
        batch_op.drop_index('ix_alert_notification_status_due_at')
        batch_op.drop_index(batch_op.f('ix_alert_notification_alert_id'))

    op.drop_table('alert_notification')
    with op.batch_alter_table('alert', schema=None) as batch_op:
        batch_op.drop_index('ix_alert_state_raised_at')
        batch_op.drop_index(batch_op.f('ix_alert_site_id'))
        batch_op.drop_index(batch_op.f('ix_alert_patient_id'))

    op.drop_table('alert')
