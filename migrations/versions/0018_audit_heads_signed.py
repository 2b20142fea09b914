"""Audit trail: every chain's head signed with the audit key, the legacy chain sealed for good, the checkpoints
append-only

Each head row gets the MAC of where its chain ends (key id and MAC), so that cutting a chain's newest entries and
moving its head back, or adding entries and moving it forward, is named by ``proapp audit verify`` without the
key. The legacy chain (plain SHA-256, which anyone can recompute) is closed: its end is written in a signed
checkpoint now, and from now on the database refuses an entry without a key id, any entry of the legacy chain and
any change to its head; ``audit_checkpoint`` refuses UPDATE, DELETE and TRUNCATE like the trail.

Signing needs the audit key: run it with ``proapp init`` (or with PROAPP_AUDIT_KEYS set) when the trail has
entries.

Revision ID: 0018
Revises: 0016
Create Date: 2026-12-07
"""

import os
from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

import proapp.db

revision: str = "0018"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _keys():
    """The app's audit keys (``proapp init`` runs in the app's context), else PROAPP_AUDIT_KEYS, else None."""
    from flask import current_app, has_app_context

    from proapp.audit.keys import parse

    if has_app_context() and "proapp.audit_keys" in current_app.extensions:
        return current_app.extensions["proapp.audit_keys"]
    value = os.environ.get("PROAPP_AUDIT_KEYS", "").strip()
    return parse(value) if value else None


def upgrade() -> None:
    from proapp.audit.checkpoints import signed_body
    from proapp.audit.guard import seal_statements
    from proapp.audit.trail import head_mac

    conn = op.get_bind()
    head = sa.table("audit_chain_head", sa.column("chain", sa.String), sa.column("last_seq", sa.BigInteger),
                    sa.column("last_hash", sa.String), sa.column("key_id", sa.String), sa.column("mac", sa.String))
    rows = conn.execute(sa.select(head.c.chain, head.c.last_seq, head.c.last_hash).order_by(head.c.chain)).all()
    keys = _keys() if rows else None
    if rows and keys is None:                # before anything changes
        raise RuntimeError("migration 0018 signs the audit chains' heads with the audit key: run it with "
                           "proapp init, or set PROAPP_AUDIT_KEYS")
    with op.batch_alter_table("audit_chain_head", schema=None) as batch_op:
        batch_op.add_column(sa.Column("key_id", sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column("mac", sa.String(length=64), nullable=True))
    if rows:
        secret = keys.secret(keys.newest)
        for chain, seq, digest in rows:
            conn.execute(head.update().where(head.c.chain == chain)
                         .values(key_id=keys.newest, mac=head_mac(secret, chain, seq, digest)))
        ends = {chain: [seq, digest] for chain, seq, digest in rows if seq}
        if "legacy" in ends:                 # its end, for good, in a checkpoint signed now
            now = datetime.now(UTC)
            body, mac = signed_body(keys, now, ends, sealed={"legacy": ends["legacy"]})
            checkpoint = sa.table("audit_checkpoint", sa.column("at", proapp.db.UTCDateTime(timezone=True)),
                                  sa.column("body", sa.Text), sa.column("key_id", sa.String),
                                  sa.column("mac", sa.String))
            conn.execute(checkpoint.insert().values(at=now, body=body, key_id=keys.newest, mac=mac))
    with op.batch_alter_table("audit_chain_head", schema=None) as batch_op:
        batch_op.alter_column("key_id", existing_type=sa.String(length=20), nullable=False)
        batch_op.alter_column("mac", existing_type=sa.String(length=64), nullable=False)
    for stmt in seal_statements(conn.dialect.name):
        op.execute(stmt)


def downgrade() -> None:
    from proapp.audit.guard import seal_statements

    for stmt in seal_statements(op.get_bind().dialect.name, create=False):
        op.execute(stmt)
    with op.batch_alter_table("audit_chain_head", schema=None) as batch_op:
        batch_op.drop_column("mac")
        batch_op.drop_column("key_id")
