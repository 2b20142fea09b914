"""Keeping phone numbers to the minimum: re-encryption under a new key, and erasure once follow-up has ended."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from proapp.audit.trail import record
from proapp.patients.models import Occurrence, OccurrenceStatus, Patient, PatientContact, PatientStatus
from proapp.patients.phones import PhoneVault
from proapp.patients.signals import sms_must_stop


@dataclass
class Rotation:
    rotated: int = 0
    unreadable: int = 0


def rotate_keys(db: Session, vault: PhoneVault, now: datetime, actor: str) -> Rotation:
    """Re-encrypt every stored number with the newest key and recompute its lookup hash. Afterwards the older
    keys can be removed from PROAPP_PHONE_KEYS."""
    out = Rotation()
    for contact in db.scalars(select(PatientContact).where(PatientContact.phone_ciphertext.is_not(None))):
        try:
            contact.phone_ciphertext = vault.rotate(contact.phone_ciphertext)
            contact.phone_lookup = vault.lookup(vault.decrypt(contact.phone_ciphertext))
        except ValueError:
            out.unreadable += 1
            continue
        out.rotated += 1
    record(db, actor=actor, action="phones.rotated", entity="patient_contact",
           new={"rotated": out.rotated, "unreadable": out.unreadable}, at=now)
    db.flush()
    return out


def follow_up_ended(now: datetime):
    """SQL: withdrawn or finished patients, or patients with no window still to come."""
    open_or_upcoming = exists().where(Occurrence.patient_id == Patient.id,
                                      Occurrence.status == OccurrenceStatus.SCHEDULED,
                                      Occurrence.window_closes_at > now)
    return (Patient.status.in_([PatientStatus.WITHDRAWN, PatientStatus.COMPLETED])) | ~open_or_upcoming


def purge_contacts(db: Session, now: datetime, actor: str, dry_run: bool = False) -> list[str]:
    """Erase the phone numbers of patients whose follow-up has ended. Returns their subject IDs."""
    rows = db.execute(select(PatientContact, Patient.subject_id).join(Patient, Patient.id == PatientContact.patient_id)
                      .where(PatientContact.phone_ciphertext.is_not(None), follow_up_ended(now))
                      .order_by(Patient.subject_id)).all()
    if dry_run:
        return [subject for _c, subject in rows]
    for contact, _subject in rows:
        erase(db, contact, now, actor, why="follow-up ended", note="erased after follow-up")
    db.flush()
    return [subject for _c, subject in rows]


def erase(db: Session, contact: PatientContact, now: datetime, actor: str, why: str, note: str) -> None:
    """Erase one patient's number (the SMS waiting for them are cancelled), audited with ``why``; ``note`` is
    what the staff pages show in its place."""
    contact.phone_ciphertext = contact.phone_lookup = None
    contact.usable, contact.unusable_reason, contact.updated_at = False, note[:200], now
    sms_must_stop.send(contact.patient_id, db=db, why="no_phone", now=now)
    record(db, actor=actor, action="patient.contact_erased", entity="patient_contact",
           entity_id=contact.patient_id, patient_id=contact.patient_id, reason=why, at=now)
