"""Changes staff make to an enrolled patient. Each asks for a reason and leaves a ``patient_event`` with who,
when, why and the old and new values (phone numbers masked). Messages are translatable: they reach the page."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from flask_babel import lazy_gettext as _l
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from proapp.config import SUPPORTED_LANGUAGES
from proapp.patients import phones, preferences
from proapp.patients.models import Occurrence, OccurrenceStatus, Patient, PatientStatus
from proapp.patients.services import SENDING_HOURS, Rescheduled, RescheduleRefused, reschedule_anchor
from proapp.questionnaire.models import AccessLink
from proapp.questionnaire.services import new_link
from proapp.questionnaire.signals import occurrence_ended
from proapp.sms import services as sms

REASON_MAX = 500


class ChangeRefused(ValueError):
    """The change was not made; ``message`` says why in the user's language and ``field`` names the input."""

    def __init__(self, message: object, field: str = "reason"):
        super().__init__(str(message))
        self.message = message
        self.field = field


def _reason(reason: str | None) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise ChangeRefused(_l("Give the reason for this change."))
    if len(reason) > REASON_MAX:
        raise ChangeRefused(_l("The reason must be at most %(n)s characters.", n=REASON_MAX))
    return reason


def _event(db: Session, patient: Patient, now: datetime, actor: str, action: str, reason: str | None,
           details: dict[str, Any] | None = None) -> None:
    preferences.record_event(db, patient.id, now, actor, action, reason, details)


def _active(patient: Patient) -> None:
    if patient.status != PatientStatus.ACTIVE:
        raise ChangeRefused(_l("This patient's follow-up has ended: nothing can be changed."), "patient")


def _open(occ: Occurrence, now: datetime) -> None:
    if occ.status == OccurrenceStatus.COMPLETED:
        raise ChangeRefused(_l("This questionnaire is already completed."), "occurrence")
    if not occ.is_open(now):
        raise ChangeRefused(_l("This questionnaire's window is not open."), "occurrence")


def resend_link(db: Session, patient: Patient, occ: Occurrence, *, actor: str, reason: str | None,
                now: datetime) -> str:
    """Send a new link by SMS now; the previous links stop working at once."""
    reason = _reason(reason)
    _active(patient)
    _open(occ, now)
    contact = patient.contact
    if contact is None or contact.phone_ciphertext is None:
        raise ChangeRefused(_l("This patient has no phone number."), "occurrence")
    if contact.opted_out_at is not None or contact.sms_paused_at is not None:
        raise ChangeRefused(_l("SMS are stopped for this patient: resume them first."), "occurrence")
    if not contact.usable:
        raise ChangeRefused(_l("This phone number cannot receive SMS: change it first."), "occurrence")
    kind = sms.queue_resend(db, occ, now)
    _event(db, patient, now, actor, "link_resent", reason, {"visit": occ.visit_code, "sms": kind})
    db.flush()
    return kind


def start_on_site(db: Session, patient: Patient, occ: Occurrence, *, actor: str, now: datetime) -> AccessLink:
    """A link for a site tablet; the patient's SMS link keeps working. The response is recorded on site."""
    _active(patient)
    _open(occ, now)
    _token, link = new_link(db, occ, now, revoke_previous=False)
    link.first_opened_at = now
    _event(db, patient, now, actor, "started_on_site", None, {"visit": occ.visit_code})
    db.flush()
    return link


def pause_sms(db: Session, patient: Patient, *, actor: str, reason: str | None, now: datetime) -> None:
    reason = _reason(reason)
    _active(patient)
    if patient.contact is None:
        raise ChangeRefused(_l("This patient has no phone number."), "patient")
    try:
        preferences.pause(db, patient.contact, now, actor, reason)
    except preferences.PreferenceError:
        raise ChangeRefused(_l("SMS are already paused for this patient."), "patient") from None


def resume_sms(db: Session, patient: Patient, *, actor: str, reason: str | None, now: datetime) -> None:
    reason = _reason(reason)
    _active(patient)
    if patient.contact is None:
        raise ChangeRefused(_l("This patient has no phone number."), "patient")
    try:
        preferences.resume(db, patient.contact, now, actor, reason)
    except preferences.PreferenceError:
        raise ChangeRefused(_l("SMS are not paused for this patient."), "patient") from None


def withdraw(db: Session, patient: Patient, *, actor: str, reason: str | None, now: datetime,
             signature: dict[str, Any] | None = None) -> int:
    """End the patient's follow-up: windows not yet closed are cancelled, their links and waiting SMS too.
    Completed responses stay. Returns the number of cancelled occurrences. ``signature``: the signer's electronic
    signature, kept with the change."""
    reason = _reason(reason)
    _active(patient)
    ended = db.execute(update(Occurrence).where(Occurrence.patient_id == patient.id,
                                                Occurrence.status == OccurrenceStatus.SCHEDULED,
                                                Occurrence.window_closes_at > now)
                       .values(status=OccurrenceStatus.CANCELLED)
                       .returning(Occurrence.id, Occurrence.window_opens_at)).all()
    cancelled = len(ended)
    for occurrence_id, opens_at in ended:
        if opens_at <= now:             # answers already given in an open window still count for the alerts
            occurrence_ended.send(occurrence_id, db=db, how="withdrawn", now=now)
    db.execute(update(AccessLink).where(
        AccessLink.occurrence_id.in_(select(Occurrence.id).where(Occurrence.patient_id == patient.id)),
        AccessLink.revoked_at.is_(None)).values(revoked_at=now))
    sms.cancel_waiting(db, patient.id, "patient_not_active", now)
    patient.status, patient.updated_at = PatientStatus.WITHDRAWN, now
    _event(db, patient, now, actor, "withdrawn", reason,
           {"occurrences_cancelled": cancelled, **({"signature": signature} if signature else {})})
    db.flush()
    return cancelled


def reschedule(db: Session, patient: Patient, new_anchor: date | None, *, actor: str, reason: str | None,
               now: datetime, signature: dict[str, Any] | None = None) -> Rescheduled:
    """Move the anchor date (an injection postponed): the visits not yet completed move, completed ones stay, the
    SMS of the moved visits follow them (`sms.follow_moved_visits`). ``signature``: the signer's e-signature."""
    if new_anchor is None:
        raise ChangeRefused(_l("Give the date as year-month-day, for example 2026-03-02."), "anchor_date")
    reason = _reason(reason)
    _active(patient)
    try:
        return reschedule_anchor(db, patient, new_anchor, actor=actor, reason=reason, now=now, signature=signature)
    except RescheduleRefused as exc:
        raise ChangeRefused(exc.message, "anchor_date") from None


def change_phone(db: Session, vault: phones.PhoneVault, patient: Patient, raw: str, *, region: str, actor: str,
                 reason: str | None, now: datetime) -> None:
    """A new number: usable again (a number marked unusable by the network is replaced)."""
    try:
        e164 = phones.normalise(raw or "", region)
    except phones.PhoneError as exc:
        if exc.code == "not_mobile":
            raise ChangeRefused(_l("This number cannot receive SMS: give a mobile number."), "phone") from None
        raise ChangeRefused(_l("This is not a valid phone number."), "phone") from None
    reason = _reason(reason)
    _active(patient)
    contact = patient.contact
    if contact is None:
        raise ChangeRefused(_l("This patient has no phone number."), "phone")
    try:
        old = vault.decrypt(contact.phone_ciphertext) if contact.phone_ciphertext else None
    except ValueError:                   # written with a lost phone key: the new number replaces it
        old = None
    if old == e164:
        raise ChangeRefused(_l("This is already the patient's number."), "phone")
    contact.phone_ciphertext, contact.phone_lookup = vault.encrypt(e164), vault.lookup(e164)
    contact.usable, contact.unusable_reason, contact.updated_at = True, None, now
    _event(db, patient, now, actor, "phone_changed", reason,
           {"old": phones.mask(old) if old else None, "new": phones.mask(e164)})
    db.flush()


def change_language(db: Session, patient: Patient, language: str, *, actor: str, reason: str | None,
                    now: datetime) -> None:
    if language not in SUPPORTED_LANGUAGES:
        raise ChangeRefused(_l("Language must be fr or en."), "language")
    reason = _reason(reason)
    _active(patient)
    if language == patient.language:
        raise ChangeRefused(_l("This is already the patient's language."), "language")
    old, patient.language, patient.updated_at = patient.language, language, now
    _event(db, patient, now, actor, "language_changed", reason, {"old": old, "new": language})
    db.flush()


def change_sms_hour(db: Session, patient: Patient, hour_text: str, *, actor: str, reason: str | None,
                    now: datetime) -> None:
    try:
        hour = int((hour_text or "").strip())
    except ValueError:
        hour = -1
    if hour not in SENDING_HOURS:
        raise ChangeRefused(_l("The SMS hour must be between 8 and 20 (no SMS at night)."), "sms_hour")
    reason = _reason(reason)
    _active(patient)
    if hour == patient.sms_hour:
        raise ChangeRefused(_l("This is already the patient's SMS hour."), "sms_hour")
    old, patient.sms_hour, patient.updated_at = patient.sms_hour, hour, now
    _event(db, patient, now, actor, "sms_hour_changed", reason, {"old": old, "new": hour})
    db.flush()
