"""A patient's own preferences: the language of pages and SMS, how they answer (web link, voice call, SMS replies:
channels.py), and the SMS themselves (opt-out by the patient,
pause and resume by staff). Each change is a ``PatientEvent`` and an audit entry; stopping the SMS announces
``sms_must_stop`` (proapp/patients/signals.py), so that what waits to be sent is cancelled in the same
transaction."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from proapp.audit.trail import record
from proapp.config import SUPPORTED_LANGUAGES
from proapp.patients import channels
from proapp.patients.models import Patient, PatientContact, PatientEvent, PatientStatus
from proapp.patients.signals import sms_must_stop
from proapp.studies.schema import StudyDef


def record_event(db: Session, patient_id: int, now: datetime, actor: str, action: str, reason: str | None = None,
                 details: dict[str, Any] | None = None) -> None:
    """A change to a patient: its ``PatientEvent`` (the patient page's history) and its audit entry, where
    ``details`` ``old`` and ``new`` become the entry's old and new values."""
    db.add(PatientEvent(patient_id=patient_id, at=now, actor=actor, action=action, reason=reason, details=details))
    details = details or {}
    old = {"value": details["old"]} if "old" in details else None
    new = {k: v for k, v in details.items() if k != "old"} or None
    if new and "new" in new:
        new = {"value": new.pop("new"), **new}
    record(db, actor=actor, action=f"patient.{action}", entity="patient", entity_id=patient_id,
           patient_id=patient_id, old=old, new=new, reason=reason, at=now)


def opt_out(db: Session, contact: PatientContact, now: datetime, actor: str) -> bool:
    """The patient asks for no more SMS. Returns False when they had already."""
    if contact.opted_out_at is not None:
        return False
    contact.opted_out_at, contact.updated_at = now, now
    record_event(db, contact.patient_id, now, actor, "sms_opt_out", None)
    sms_must_stop.send(contact.patient_id, db=db, why="opted_out", now=now)
    db.flush()
    return True


class PreferenceError(ValueError):
    """A pause or resume that cannot be done; the message says why."""


def pause(db: Session, contact: PatientContact, now: datetime, actor: str, reason: str) -> None:
    if not reason.strip():
        raise PreferenceError("a reason is required")
    if contact.sms_paused_at is not None:
        raise PreferenceError("SMS are already paused")
    contact.sms_paused_at, contact.updated_at = now, now
    record_event(db, contact.patient_id, now, actor, "sms_pause", reason.strip())
    sms_must_stop.send(contact.patient_id, db=db, why="paused", now=now)
    db.flush()


def resume(db: Session, contact: PatientContact, now: datetime, actor: str, reason: str) -> None:
    """Staff resume SMS after a pause or an opt-out (the patient asked again, in person)."""
    if not reason.strip():
        raise PreferenceError("a reason is required")
    if contact.sms_paused_at is None and contact.opted_out_at is None:
        raise PreferenceError("SMS are not paused")
    contact.sms_paused_at = contact.opted_out_at = None
    contact.updated_at = now
    record_event(db, contact.patient_id, now, actor, "sms_resume", reason.strip())
    db.flush()


def patient_switched_language(db: Session, patient: Patient, language: str, *, actor: str, now: datetime) -> bool:
    """The patient pressed FR | EN on a questionnaire page: their language from now on (SMS included), recorded
    like any other change. Returns whether anything changed."""
    if language not in SUPPORTED_LANGUAGES or language == patient.language:
        return False
    old, patient.language, patient.updated_at = patient.language, language, now
    record_event(db, patient.id, now, actor, "language_changed", details={"old": old, "new": language})
    db.flush()
    return True


def channels_to_offer(db: Session, study: StudyDef, patient: Patient) -> list[str]:
    """The channels the patient may switch to themselves from a questionnaire page: those the study allows but
    their own, a voice call only once the team set their PIN with them, SMS replies only while they receive SMS;
    none once the follow-up is paused or ended."""
    contact = patient.contact
    if patient.status != PatientStatus.ACTIVE:
        return []
    out = []
    for channel in channels.offered(study):
        if channel == patient.answer_channel:
            continue
        if channel != "web" and (contact is None or not contact.usable or contact.opted_out_at is not None):
            continue
        if channel == "voice" and (contact is None or contact.voice_pin_hash is None):
            continue
        out.append(channel)
    return out


def patient_switched_channel(db: Session, study: StudyDef, patient: Patient, channel: str, *, actor: str,
                             now: datetime) -> bool:
    """The patient chose, on a questionnaire page, how they answer next time. Choosing SMS replies is their
    agreement that questions and answers travel by SMS (the page says so), recorded. Returns whether anything
    changed (a channel not offered to them changes nothing)."""
    if channel not in channels_to_offer(db, study, patient):
        return False
    if channel == "sms":
        channels.record_sms_agreement(db, patient, actor=actor, now=now)
    old, patient.answer_channel, patient.updated_at = patient.answer_channel, channel, now
    record_event(db, patient.id, now, actor, "answer_channel_changed", details={"old": old, "new": channel})
    db.flush()
    return True
