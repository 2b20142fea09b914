"""The certified copy of one patient's audit trail: every entry with its chain hashes (CSV), every chain it lists
verified when the copy is made. Served on the patient's staff page and written into a closed study's archive."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from proapp import csvfiles
from proapp.audit.models import AuditEvent
from proapp.audit.trail import Finding, chain_of, verify

COLUMNS = ("entry", "at_utc", "actor", "action", "entity", "entity_id", "old", "new", "reason", "prev_hash", "hash")


@dataclass(frozen=True)
class CertifiedCopy:
    body: bytes                 # the CSV, with a byte order mark
    verified: int               # entries of the chains it lists, verified
    findings: list[Finding]     # empty: every chain it lists is whole


def certified_copy(db: Session, patient_id: int, separator: str = ",") -> CertifiedCopy:
    """The patient's entries and the verification of every chain they come from (the patient's own, and the
    sealed legacy chain when the patient's history began before chains were per patient): at the cost of that
    patient's history, whatever the size of the trial."""
    listed = list(db.scalars(select(AuditEvent).where(AuditEvent.patient_id == patient_id).order_by(AuditEvent.id)))
    count, findings = 0, []
    for name in sorted({chain_of(patient_id)} | {e.chain for e in listed}):   # this patient's, not the trial's
        n, found = verify(db, chain=name)
        count, findings = count + n, findings + found
    out = io.StringIO()
    out.write(csvfiles.BOM)
    writer = csvfiles.writer(out, separator)
    writer.writerow(COLUMNS)
    for e in listed:
        writer.writerow((e.id, e.at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), e.actor, e.action, e.entity, e.entity_id or "",
                         "" if e.old is None else json.dumps(e.old, sort_keys=True, ensure_ascii=False),
                         "" if e.new is None else json.dumps(e.new, sort_keys=True, ensure_ascii=False),
                         e.reason or "", e.prev_hash, e.hash))
    return CertifiedCopy(out.getvalue().encode(), count, findings)
