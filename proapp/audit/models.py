"""Audit entries and the heads of their chains.

Entries form one chain per patient (``patient:<id>``) and one for staff and system events (``system``); the
entries made before chains were per patient stay as the ``legacy`` chain, verifiable as they were and sealed for good
(migration 0018). Within a chain entries are numbered 1, 2, 3 ... (``seq``) and each one's ``hash`` covers the one
before; its head row is locked while an entry is appended, so appends to one chain are serialised, and appends to
different chains are not."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, FetchedValue, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from proapp.db import Base


class AuditEvent(Base):
    __tablename__ = "audit_event"
    __table_args__ = (UniqueConstraint("chain", "seq"),)

    # Across chains, in the order entries were written (PostgreSQL: the column's default, a sequence; SQLite: the
    # writer gives the next after the last).
    id: Mapped[int] = mapped_column(BigInteger, FetchedValue(), primary_key=True, autoincrement=False)
    chain: Mapped[str] = mapped_column(String(40))
    seq: Mapped[int] = mapped_column(BigInteger)
    key_id: Mapped[str | None] = mapped_column(String(20))       # None: a legacy entry (plain SHA-256)
    at: Mapped[datetime] = mapped_column(index=True)
    actor: Mapped[str] = mapped_column(String(160))     # user:<email>, patient:link:<id>, api:pk_<prefix>, system:<job>
    action: Mapped[str] = mapped_column(String(60), index=True)
    entity: Mapped[str] = mapped_column(String(40))
    entity_id: Mapped[str | None] = mapped_column(String(64))
    patient_id: Mapped[int | None] = mapped_column(index=True)
    old: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    new: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    reason: Mapped[str | None] = mapped_column(String(500))
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditChainHead(Base):
    """The last entry of each chain: locking its row serialises the appends to that chain only. ``mac`` signs the
    row with the audit key (``trail.head_mac``), so whoever lacks the key cannot move a head back over entries
    cut from the chain's end, nor forward over entries added outside proapp."""

    __tablename__ = "audit_chain_head"

    chain: Mapped[str] = mapped_column(String(40), primary_key=True)
    last_seq: Mapped[int] = mapped_column(BigInteger)
    last_hash: Mapped[str] = mapped_column(String(64))
    key_id: Mapped[str] = mapped_column(String(20))
    mac: Mapped[str] = mapped_column(String(64))


class AuditCheckpoint(Base):
    """A signed statement of where every chain ended at one moment, written by the worker. Kept outside the
    database (``proapp audit checkpoint --append FILE``, syslog, the sponsor), it lets ``proapp audit verify
    --checkpoints FILE`` find a history rewritten, truncated or rolled back even by someone holding the key. The
    table is append-only (triggers, as on ``audit_event``; the app's role may only add rows)."""

    __tablename__ = "audit_checkpoint"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime]
    body: Mapped[str] = mapped_column(Text)           # the canonical JSON that ``mac`` signs
    key_id: Mapped[str] = mapped_column(String(20))
    mac: Mapped[str] = mapped_column(String(64))
