"""Recording and verifying the audit trail.

Services call ``record(db, ...)``; the entries wait in the session and are written by a ``before_commit`` hook:
it locks the chain's head row, numbers the entries after the last one and chains their SHA-256 hashes
(hash = SHA-256 of the previous hash and the entry's canonical JSON). A rolled-back transaction records
nothing, and a committed change always comes with its entries, in the same transaction.

``verify`` walks the chain and names every entry that was altered, removed, inserted or moved.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import bindparam, event, insert, select, update
from sqlalchemy.orm import Session

from proapp.audit.models import AuditEvent, AuditHead
from proapp.db import dialect_insert

GENESIS = "0" * 64
HEAD_ROW = 1
PENDING = "proapp.audit.pending"


def record(db: Session, *, actor: str, action: str, entity: str, entity_id: Any = None, patient_id: int | None = None,
           old: dict[str, Any] | None = None, new: dict[str, Any] | None = None, reason: str | None = None,
           at: datetime | None = None) -> None:
    """Add an entry to this transaction (written at commit, with the change)."""
    if not db.in_transaction():
        db.begin()                      # so that a rollback or close before any SQL also drops the entry
    db.info.setdefault(PENDING, []).append({
        "at": (at or datetime.now(UTC)).astimezone(UTC), "actor": actor[:160], "action": action[:60],
        "entity": entity[:40], "entity_id": None if entity_id is None else str(entity_id)[:64],
        "patient_id": patient_id, "old": _jsonable(old), "new": _jsonable(new),
        "reason": reason[:500] if reason else None})


def _jsonable(value: dict[str, Any] | None) -> dict[str, Any] | None:
    return None if value is None else json.loads(json.dumps(value, default=str, sort_keys=True))


def canonical(entry: dict[str, Any]) -> str:
    body = {k: entry[k] for k in ("id", "actor", "action", "entity", "entity_id", "patient_id", "old", "new",
                                  "reason")}
    body["at"] = entry["at"].astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def chain_hash(prev_hash: str, entry: dict[str, Any]) -> str:
    return hashlib.sha256(f"{prev_hash}|{canonical(entry)}".encode()).hexdigest()


_HEAD = AuditHead.__table__
# Core statements: the writer runs in every transaction that records something (every answer saved).
_LOCK_HEAD = (update(_HEAD).where(_HEAD.c.id == HEAD_ROW).values(last_id=_HEAD.c.last_id)
              .returning(_HEAD.c.last_id, _HEAD.c.last_hash))
_MOVE_HEAD = (update(_HEAD).where(_HEAD.c.id == HEAD_ROW)
              .values(last_id=bindparam("new_last_id"), last_hash=bindparam("new_last_hash")))
_INSERT_EVENTS = insert(AuditEvent.__table__).values({c.name: bindparam(c.name)
                                                      for c in AuditEvent.__table__.columns})


def _lock_head(db: Session) -> tuple[int, str]:
    """Lock the head row (an UPDATE that changes nothing takes the row lock) and read the chain's end."""
    conn = db.connection()
    row = conn.execute(_LOCK_HEAD).first()
    if row is None:
        upsert = dialect_insert(conn.dialect.name)
        conn.execute(upsert(_HEAD).values(id=HEAD_ROW, last_id=0, last_hash=GENESIS).on_conflict_do_nothing())
        row = conn.execute(_LOCK_HEAD).first()
    return row.last_id, row.last_hash


def _write_pending(session: Session) -> None:
    pending = session.info.pop(PENDING, None)
    if not pending:
        return
    last_id, last_hash = _lock_head(session)
    rows = []
    for entry in pending:
        last_id += 1
        entry = {**entry, "id": last_id, "prev_hash": last_hash}
        entry["hash"] = last_hash = chain_hash(entry["prev_hash"], entry)
        rows.append(entry)
    conn = session.connection()
    conn.execute(_INSERT_EVENTS, rows)
    conn.execute(_MOVE_HEAD, {"new_last_id": last_id, "new_last_hash": last_hash})


def _drop_pending(session: Session, transaction: Any) -> None:
    """The outermost transaction ended without commit (rollback or close): its entries go with it."""
    if transaction.parent is None:
        session.info.pop(PENDING, None)


def install() -> None:
    """Hook the writer into every session (once)."""
    if not event.contains(Session, "before_commit", _write_pending):
        event.listen(Session, "before_commit", _write_pending)
        event.listen(Session, "after_transaction_end", _drop_pending)


# Verification ------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Finding:
    entry_id: int | None
    problem: str

    def __str__(self) -> str:
        return f"entry {self.entry_id}: {self.problem}" if self.entry_id is not None else self.problem


def _entries(db: Session) -> Iterator[AuditEvent]:
    yield from db.scalars(select(AuditEvent).order_by(AuditEvent.id).execution_options(yield_per=2000))


def verify(db: Session) -> tuple[int, list[Finding]]:
    """(entries checked, findings). No finding: the chain is whole."""
    findings: list[Finding] = []
    prev_hash, expected = GENESIS, 1
    count = 0
    for e in _entries(db):
        count += 1
        entry = {c: getattr(e, c) for c in ("id", "at", "actor", "action", "entity", "entity_id", "patient_id",
                                            "old", "new", "reason")}
        if e.id != expected:
            findings.append(Finding(e.id, f"entries {expected} to {e.id - 1} are missing (removed)" if e.id > expected
                                    else "appears out of order (moved or inserted)"))
        if e.prev_hash != prev_hash:
            findings.append(Finding(e.id, "does not follow the entry before it (an entry was removed, inserted or "
                                          "moved here)"))
        if chain_hash(e.prev_hash, entry) != e.hash:
            findings.append(Finding(e.id, "was altered after it was written (its content no longer matches its "
                                          "hash)"))
        prev_hash, expected = e.hash, e.id + 1
    head = db.get(AuditHead, HEAD_ROW)
    last_id, last_hash = (head.last_id, head.last_hash) if head else (0, GENESIS)
    if last_id != expected - 1 or last_hash != prev_hash:
        findings.append(Finding(None, f"the chain should end at entry {last_id} but ends at entry {expected - 1}: "
                                      "entries were removed from its end, or added outside proapp"))
    return count, findings
