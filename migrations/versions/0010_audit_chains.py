"""Audit trail: one chain per patient (and one for staff and system events), keyed; the entries so far sealed as
the legacy chain

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    from proapp.audit.guard import create_statements, drop_statements

    dialect = op.get_bind().dialect.name
    op.create_table(
        "audit_chain_head",
        sa.Column("chain", sa.String(length=40), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.Column("last_hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("chain", name=op.f("pk_audit_chain_head")),
    )
    for stmt in drop_statements(dialect):          # the existing entries get their place in the legacy chain
        op.execute(stmt)
    with op.batch_alter_table("audit_event", schema=None) as batch_op:
        batch_op.add_column(sa.Column("chain", sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column("seq", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("key_id", sa.String(length=20), nullable=True))
    op.execute("UPDATE audit_event SET chain = 'legacy', seq = id")
    op.execute("INSERT INTO audit_chain_head (chain, last_seq, last_hash) "
               "SELECT 'legacy', last_id, last_hash FROM audit_head WHERE id = 1 AND last_id > 0")
    with op.batch_alter_table("audit_event", schema=None) as batch_op:
        batch_op.alter_column("chain", existing_type=sa.String(length=40), nullable=False)
        batch_op.alter_column("seq", existing_type=sa.BigInteger(), nullable=False)
        batch_op.create_unique_constraint(batch_op.f("uq_audit_event_chain_seq"), ["chain", "seq"])
    op.drop_table("audit_head")
    if dialect == "postgresql":
        op.execute("CREATE SEQUENCE audit_event_id_seq OWNED BY audit_event.id")     # TRUNCATE ... RESTART resets it
        op.execute("SELECT setval('audit_event_id_seq', COALESCE((SELECT max(id) FROM audit_event), 0) + 1, false)")
        op.execute("ALTER TABLE audit_event ALTER COLUMN id SET DEFAULT nextval('audit_event_id_seq')")
    for stmt in create_statements(dialect):
        op.execute(stmt)


def downgrade() -> None:
    raise NotImplementedError("the audit trail cannot go back to a single chain: restore a backup instead")
