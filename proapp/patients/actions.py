"""Changes staff make to an enrolled patient: pause or resume their SMS, withdraw them, move their anchor date,
record their liposuction date, change their number, language or SMS hour, how they answer (web link, voice call, SMS
replies) and their voice PIN. Each asks for a reason and leaves a ``patient_event`` with who, when, why and the old
and new values (phone numbers masked; a PIN never). Messages are translatable: they reach the page. What other
features must do about a change (cancel the SMS waiting to go, disable links) they do on this package's signals
(proapp/patients/signals.py); the visits' own changes are made by proapp/patients/occurrences.py."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from flask_babel import lazy_gettext as _l
from sqlalchemy.orm import Session

from proapp.config import SUPPORTED_LANGUAGES
from proapp.patients import channels, occurrences, phones, preferences
from proapp.patients.enrolment import (
    SENDING_HOURS,
    Rescheduled,
    RescheduleRefused,
    harvest_date_problem,
    reschedule_anchor,
)
from proapp.patients.models import Patient, PatientStatus
from proapp.patients.signals import links_must_stop, sms_must_stop
from proapp.studies.schema import StudyDef

REASON_MAX = 500


class ChangeRefused(ValueError):
    """The change was not made; ``message`` says why in the user's language and ``field`` names the input."""

    def __init__(self, message: object, field: str = "reason"):
        super().__init__(str(message))
        self.message = message
        self.field = field


def check_reason(reason: str | None) -> str:
    """The reason given for a change, trimmed; ChangeRefused when it is missing or too long."""
    reason = (reason or "").strip()
    if not reason:
        raise ChangeRefused(_l("Give the reason for this change."))
    if len(reason) > REASON_MAX:
        raise ChangeRefused(_l("The reason must be at most %(n)s characters.", n=REASON_MAX))
    return reason


def check_active(patient: Patient) -> None:
    """ChangeRefused when the patient's follow-up has ended."""
    if patient.status != PatientStatus.ACTIVE:
        raise ChangeRefused(_l("This patient's follow-up has ended: nothing can be changed."), "patient")


def _event(db: Session, patient: Patient, now: datetime, actor: str, action: str, reason: str | None,
           details: dict[str, Any] | None = None) -> None:
    preferences.record_event(db, patient.id, now, actor, action, reason, details)


def pause_sms(db: Session, patient: Patient, *, actor: str, reason: str | None, now: datetime) -> None:
    _change_sms(db, patient, preferences.pause, _l("SMS are already paused for this patient."), actor=actor,
                reason=reason, now=now)


def resume_sms(db: Session, patient: Patient, *, actor: str, reason: str | None, now: datetime) -> None:
    _change_sms(db, patient, preferences.resume, _l("SMS are not paused for this patient."), actor=actor,
                reason=reason, now=now)


def _change_sms(db: Session, patient: Patient, change: Any, already: Any, *, actor: str, reason: str | None,
                now: datetime) -> None:
    """Pause or resume a patient's SMS (``change``), refused with ``already`` when they are so already."""
    reason = check_reason(reason)
    check_active(patient)
    if patient.contact is None:
        raise ChangeRefused(_l("This patient has no phone number."), "patient")
    try:
        change(db, patient.contact, now, actor, reason)
    except preferences.PreferenceError:
        raise ChangeRefused(already, "patient") from None


def withdraw(db: Session, patient: Patient, *, actor: str, reason: str | None, now: datetime,
             signature: dict[str, Any] | None = None) -> int:
    """End the patient's follow-up: windows not yet closed are cancelled, their links and waiting SMS too.
    Completed responses stay. Returns the number of cancelled occurrences. ``signature``: the signer's electronic
    signature, kept with the change."""
    reason = check_reason(reason)
    check_active(patient)
    cancelled = len(occurrences.cancel(db, [patient.id], how="withdrawn", now=now, actor=actor))
    links_must_stop.send(patient.id, db=db, now=now)
    sms_must_stop.send(patient.id, db=db, why="patient_not_active", now=now)
    patient.status, patient.updated_at = PatientStatus.WITHDRAWN, now
    _event(db, patient, now, actor, "withdrawn", reason,
           {"occurrences_cancelled": cancelled, **({"signature": signature} if signature else {})})
    db.flush()
    return cancelled


def reschedule(db: Session, patient: Patient, new_anchor: date | None, *, actor: str, reason: str | None,
               now: datetime, signature: dict[str, Any] | None = None) -> Rescheduled:
    """Move the anchor date (an injection postponed): the visits not yet completed move, completed ones stay, the
    SMS of the moved visits follow them (``visits_moved``). ``signature``: the signer's e-signature."""
    if new_anchor is None:
        raise ChangeRefused(_l("Give the date as year-month-day, for example 2026-03-02."), "anchor_date")
    reason = check_reason(reason)
    check_active(patient)
    try:
        return reschedule_anchor(db, patient, new_anchor, actor=actor, reason=reason, now=now, signature=signature)
    except RescheduleRefused as exc:
        raise ChangeRefused(exc.message, "anchor_date") from None


def record_harvest_date(db: Session, patient: Patient, harvest: date | None, *, follows_harvest: bool, actor: str,
                        reason: str | None, now: datetime) -> None:
    """Record (or correct) the liposuction date: the diary asks about the place where the fat was taken in the weeks
    after it (the study file's ``fat_harvest``, ``follows_harvest``). A reschedule of the anchor date never moves
    it."""
    if not follows_harvest:
        raise ChangeRefused(_l("This study follows no liposuction."), "harvest_date")
    if harvest is None:
        raise ChangeRefused(_l("Give the date as year-month-day, for example 2026-03-02."), "harvest_date")
    reason = check_reason(reason)
    check_active(patient)
    if harvest == patient.harvest_date:
        raise ChangeRefused(_l("This is already the patient's liposuction date."), "harvest_date")
    problem = harvest_date_problem(harvest, patient.anchor_date, now.astimezone(ZoneInfo(patient.timezone)).date())
    if problem is not None:
        raise ChangeRefused(problem, "harvest_date")
    old, patient.harvest_date, patient.updated_at = patient.harvest_date, harvest, now
    _event(db, patient, now, actor, "harvest_date_recorded", reason,
           {"old": old.isoformat() if old else None, "new": harvest.isoformat()})
    db.flush()


def change_phone(db: Session, vault: phones.PhoneVault, patient: Patient, raw: str, *, region: str, actor: str,
                 reason: str | None, now: datetime) -> None:
    """A new number: usable again (a number marked unusable by the network is replaced)."""
    try:
        e164 = phones.normalise(raw or "", region)
    except phones.PhoneError as exc:
        if exc.code == "not_mobile":
            raise ChangeRefused(_l("This number cannot receive SMS: give a mobile number."), "phone") from None
        raise ChangeRefused(_l("This is not a valid phone number."), "phone") from None
    reason = check_reason(reason)
    check_active(patient)
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
    reason = check_reason(reason)
    check_active(patient)
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
    reason = check_reason(reason)
    check_active(patient)
    if hour == patient.sms_hour:
        raise ChangeRefused(_l("This is already the patient's SMS hour."), "sms_hour")
    old, patient.sms_hour, patient.updated_at = patient.sms_hour, hour, now
    _event(db, patient, now, actor, "sms_hour_changed", reason, {"old": old, "new": hour})
    db.flush()


def set_answer_channel(db: Session, study: StudyDef, patient: Patient, channel: str, *, pin: str | None,
                       sms_agreed: bool, actor: str, reason: str | None, now: datetime) -> None:
    """How the patient answers from now on: the web link, a voice call or SMS replies (the visits the study
    allows so; the others stay on the web link). A voice call needs the PIN typed by the team with the patient
    (stored hashed, never shown again; kept when the patient already has one and none is typed); SMS replies need
    the patient's agreement that questions and answers travel by SMS (recorded once)."""
    try:
        channels.check_channel(study, channel)
    except channels.ChannelRefused as exc:
        raise ChangeRefused(exc.message, "channel") from None
    contact = patient.contact
    if channel != "web" and contact is None:
        raise ChangeRefused(_l("This patient has no phone number."), "channel")
    new_pin = None
    if channel == "voice" and ((pin or "").strip() or contact is None or contact.voice_pin_hash is None):
        try:
            new_pin = channels.check_pin(pin)
        except channels.ChannelRefused as exc:
            raise ChangeRefused(exc.message, "pin") from None
    if channel == "sms":
        if not sms_agreed and not channels.has_sms_agreement(db, patient.id):
            raise ChangeRefused(_l("Tick the box once the patient agrees that the questions and their answers "
                                   "travel by SMS."), "sms_agreed")
        if contact is not None and contact.opted_out_at is not None:
            raise ChangeRefused(_l("The patient stopped the SMS: resume them first, with the patient's agreement."),
                                "channel")
    reason = check_reason(reason)
    check_active(patient)
    if channel == patient.answer_channel and new_pin is None:
        raise ChangeRefused(_l("This is already how the patient answers."), "channel")
    if new_pin is not None:
        _set_pin(db, patient, new_pin, actor=actor, reason=reason, now=now)
    if channel == "sms":
        channels.record_sms_agreement(db, patient, actor=actor, now=now)
    if channel != patient.answer_channel:
        old, patient.answer_channel, patient.updated_at = patient.answer_channel, channel, now
        _event(db, patient, now, actor, "answer_channel_changed", reason, {"old": old, "new": channel})
    db.flush()


def change_voice_pin(db: Session, patient: Patient, pin: str | None, *, actor: str, reason: str | None,
                     now: datetime) -> None:
    """A new PIN for the voice calls, typed with the patient (the old one stops working at once)."""
    try:
        new_pin = channels.check_pin(pin)
    except channels.ChannelRefused as exc:
        raise ChangeRefused(exc.message, "pin") from None
    reason = check_reason(reason)
    check_active(patient)
    if patient.contact is None:
        raise ChangeRefused(_l("This patient has no phone number."), "pin")
    _set_pin(db, patient, new_pin, actor=actor, reason=reason, now=now)
    db.flush()


def _set_pin(db: Session, patient: Patient, pin: str, *, actor: str, reason: str, now: datetime) -> None:
    """Store the PIN's hash; the history says it changed, never the PIN nor its hash."""
    contact = patient.contact
    assert contact is not None
    had = contact.voice_pin_hash is not None
    contact.voice_pin_hash, contact.updated_at = channels.hash_pin(pin), now
    _event(db, patient, now, actor, "voice_pin_changed" if had else "voice_pin_set", reason)
