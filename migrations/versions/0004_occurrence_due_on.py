"""Occurrence target day (due_on), for the coordinators' overdue filter

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22
"""

from collections.abc import Sequence
from datetime import timedelta

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("occurrence") as batch_op:
        batch_op.add_column(sa.Column("due_on", sa.Date(), nullable=True))
    # Existing occurrences: the target day is the patient's anchor date plus the visit day.
    conn = op.get_bind()
    occurrence = sa.table("occurrence", sa.column("id", sa.Integer), sa.column("patient_id", sa.Integer),
                          sa.column("visit_day", sa.Integer), sa.column("due_on", sa.Date))
    patient = sa.table("patient", sa.column("id", sa.Integer), sa.column("anchor_date", sa.Date))
    rows = conn.execute(sa.select(occurrence.c.id, occurrence.c.visit_day, patient.c.anchor_date)
                        .join(patient, patient.c.id == occurrence.c.patient_id)).all()
    if rows:
        conn.execute(occurrence.update().where(occurrence.c.id == sa.bindparam("oid"))
                     .values(due_on=sa.bindparam("due")),
                     [{"oid": oid, "due": anchor + timedelta(days=day)} for oid, day, anchor in rows])
    with op.batch_alter_table("occurrence") as batch_op:
        batch_op.alter_column("due_on", existing_type=sa.Date(), nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("occurrence") as batch_op:
        batch_op.drop_column("due_on")
