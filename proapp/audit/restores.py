"""Declared restores: a database put back from a backup says so, signed with the audit key.

A restore rolls every audit chain back to where the backup left it, which is exactly what a checkpoint kept
outside calls "truncated or rolled back". ``proapp restore declare`` records who restored, when, from which backup,
and where each chain ended at that moment (the backup's ends), signed like a checkpoint. ``proapp audit verify
--checkpoints`` then names an entry missing since a checkpoint as lost by that declared restore when the
restore's signed ends are before it, and as tampering otherwise: the auditor sees both.

A declared restore also holds the patients' SMS (``holding``) until ``proapp restore reconcile`` has compared
the outbox with the gateway's log, so a message sent after the backup is never sent again.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import String, Text, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from proapp.audit.keys import AuditKeys
from proapp.audit.models import AuditChainHead, AuditEvent
from proapp.audit.trail import record
from proapp.db import Base


class RestoreRecord(Base):
    """One declared restore: its signed statement and whether the outgoing messages are still held."""

    __tablename__ = "restore_record"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime]
    by: Mapped[str] = mapped_column(String(160))
    backup: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text)           # canonical JSON signed by ``mac``: who, when, backup, ends
    key_id: Mapped[str] = mapped_column(String(20))
    mac: Mapped[str] = mapped_column(String(64))
    released_at: Mapped[datetime | None]              # None: SMS held until ``proapp restore reconcile``
    released_by: Mapped[str | None] = mapped_column(String(160))


def _mac(secret: bytes, body: str) -> str:
    return hmac.new(secret, body.encode(), hashlib.sha256).hexdigest()


def backup_time(db: Session) -> datetime | None:
    """When the restored backup was taken, as near as the database tells: its newest audit entry."""
    return db.scalar(select(func.max(AuditEvent.at)))


def declare(db: Session, keys: AuditKeys, now: datetime, *, by: str, backup: str) -> RestoreRecord:
    """Record a restore (and hold the SMS); the audit trail gets an entry too."""
    heads = {h.chain: [h.last_seq, h.last_hash] for h in db.scalars(select(AuditChainHead)) if h.last_seq}

    taken = backup_time(db)
    body = json.dumps({"v": 1, "at": now.astimezone(UTC).isoformat(), "by": by, "backup": backup,
                       "backup_at": taken.astimezone(UTC).isoformat() if taken else None, "heads": heads},
                      sort_keys=True, separators=(",", ":"))
    row = RestoreRecord(at=now, by=by[:160], backup=backup[:300], body=body, key_id=keys.newest,
                        mac=_mac(keys.secret(keys.newest), body))
    db.add(row)
    db.flush()
    record(db, actor=by, action="restore.declared", entity="restore_record", entity_id=row.id,
           new={"backup": backup, "backup_at": taken.isoformat() if taken else None}, at=now)
    return row


def holding(db: Session) -> RestoreRecord | None:
    """The declared restore whose outgoing SMS are still held, if any."""
    return db.scalar(select(RestoreRecord).where(RestoreRecord.released_at.is_(None))
                     .order_by(RestoreRecord.id.desc()).limit(1))


def release(db: Session, row: RestoreRecord, now: datetime, by: str, details: dict[str, Any]) -> None:
    row.released_at, row.released_by = now, by[:160]
    record(db, actor=by, action="restore.reconciled", entity="restore_record", entity_id=row.id, new=details, at=now)
    db.flush()


def genuine(db: Session, keys: AuditKeys) -> list[tuple[RestoreRecord, dict[str, Any]]]:
    """The declared restores whose signature holds, with their statements, oldest first."""
    out = []
    for row in db.scalars(select(RestoreRecord).order_by(RestoreRecord.id)):
        secret = keys.secret(row.key_id)
        if secret is not None and hmac.compare_digest(_mac(secret, row.body), row.mac):
            out.append((row, json.loads(row.body)))
    return out


def explaining(declared: list[tuple[RestoreRecord, dict[str, Any]]], chain: str, seq: int) -> str | None:
    """How a declared restore explains chain ``chain`` lacking entry ``seq`` (or holding another one there):
    the backup it restored ended the chain before that entry. None: nothing declared explains it."""
    for row, statement in declared:
        end = statement["heads"].get(chain, [0, None])[0]
        if end < seq:
            return (f"chain {chain}: entries after #{end} were lost by the restore declared by {statement['by']} "
                    f"at {statement['at']} from backup {statement['backup']} (restore {row.id})")
    return None
