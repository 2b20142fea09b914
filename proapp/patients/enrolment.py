"""Enrolment and the patient's schedule: who is enrolled, their agreements, their anchor date. The visits' own
changes (status, window, SMS round) are made by proapp/patients/occurrences.py."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from flask_babel import lazy_gettext as _l
from sqlalchemy import select
from sqlalchemy.orm import Session

from proapp.audit.trail import record
from proapp.config import SUPPORTED_LANGUAGES
from proapp.patients import channels, occurrences, phones
from proapp.patients.models import Agreement, Occurrence, OccurrenceStatus, Patient, PatientContact, PatientStatus
from proapp.patients.preferences import record_event
from proapp.patients.signals import visits_moved
from proapp.refusals import Refused
from proapp.studies.catalog import StudyCatalog
from proapp.studies.models import Site, Study
from proapp.studies.schedule import compute_schedule
from proapp.studies.schema import check_timezone
from proapp.studies.sync import is_closed

SENDING_HOURS = range(8, 21)          # a preferred SMS hour must fall outside the quiet hours (21:00-08:00)
ANCHOR_PAST_LIMIT = timedelta(days=2 * 366)
ANCHOR_FUTURE_LIMIT = timedelta(days=366)
HARVEST_BEFORE_ANCHOR_LIMIT = timedelta(days=366)   # cells cultured for days or weeks: a year is surely a typing error


class EnrolmentError(ValueError):
    """Enrolment refused; ``field`` names the (first) input at fault and ``message`` says why (translatable);
    ``errors`` holds every field at fault, so a form can show them all at once."""

    def __init__(self, field: str, message: object, errors: dict[str, object] | None = None):
        super().__init__(str(message))
        self.field = field
        self.message = message
        self.errors = errors or {field: message}


@dataclass(frozen=True)
class EnrolmentRequest:
    study_code: str
    site_code: str
    subject_id: str
    phone: str
    language: str
    anchor_date: date | None           # None: not given (the form says so beside its field)
    timezone: str | None = None
    sms_hour: int = 10
    agreed_on: date | None = None      # the day the patient agreed to SMS and to answering online (required)
    harvest_date: date | None = None   # the liposuction (a study with ``fat_harvest``), when it is already done
    # How the patient answers (channels.py): the web link, a voice call (with the PIN typed with the patient) or
    # SMS replies (with their agreement that questions and answers travel by SMS)
    answer_channel: str = "web"
    voice_pin: str | None = None
    sms_answers_agreed: bool = False


def harvest_date_problem(harvest: date, anchor: date, today: date) -> object | None:
    """Why a liposuction date cannot be the patient's (translatable), or None: it is on or before the injection
    (the anchor date), not after today, and not more than a year before the injection."""
    if harvest > today:
        return _l("The liposuction date cannot be in the future: record it once the liposuction is done.")
    if harvest > anchor:
        return _l("The liposuction date cannot be after the injection (the anchor date, %(day)s): the cells are "
                  "taken before they are injected.", day=anchor.isoformat())
    if harvest < anchor - HARVEST_BEFORE_ANCHOR_LIMIT:
        return _l("The liposuction date cannot be more than a year before the injection (the anchor date, "
                  "%(day)s).", day=anchor.isoformat())
    return None


def validate_enrolment(db: Session, catalog: StudyCatalog, req: EnrolmentRequest, *, now: datetime,
                       phone_region: str = "FR") -> tuple[Study, Site, str, str]:
    """Check every field; return (study, site, E.164 phone, time zone) or raise EnrolmentError."""
    try:
        study_def = catalog.get(req.study_code)
    except KeyError:
        raise EnrolmentError("study", _l("Unknown study %(study)s.", study=req.study_code)) from None
    study = db.scalar(select(Study).where(Study.code == req.study_code))
    if study is None:
        raise EnrolmentError("study", _l("Study %(study)s is not loaded yet: run proapp init.",
                                         study=req.study_code))

    if is_closed(db, study.id):
        raise EnrolmentError("study", _l("Study %(study)s is closed: it takes no new patient.", study=req.study_code))
    site = db.scalar(select(Site).where(Site.study_id == study.id, Site.code == req.site_code))
    if site is None or not site.active:
        raise EnrolmentError("site", _l("Unknown site %(site)s for study %(study)s.",
                                        site=req.site_code, study=req.study_code))
    errors: dict[str, object] = {}
    if req.subject_id and not study_def.subject_id_matches(req.subject_id, req.site_code):
        errors["subject_id"] = _l(
            "Subject ID %(subject)s does not follow the study's pattern (for example %(example)s).",
            subject=req.subject_id, example=study_def.subject_id_example(req.site_code))
    elif req.subject_id and db.scalar(select(Patient.id).where(Patient.study_id == study.id,
                                                              Patient.subject_id == req.subject_id)) is not None:
        errors["subject_id"] = _l("Subject %(subject)s is already enrolled in %(study)s.",
                                  subject=req.subject_id, study=req.study_code)
    e164 = ""
    if req.phone:
        try:
            e164 = phones.normalise(req.phone, phone_region)
        except phones.PhoneError as exc:
            errors["phone"] = (_l("This number cannot receive SMS: give a mobile number.")
                               if exc.code == "not_mobile" else _l("This is not a valid phone number."))
    if req.language not in SUPPORTED_LANGUAGES:
        errors["language"] = _l("Language must be fr or en.")
    timezone = req.timezone or site.timezone
    try:
        check_timezone(timezone)
    except ValueError:
        errors["timezone"] = _l("Unknown time zone %(tz)s (for example Europe/Paris).", tz=timezone)
        timezone = site.timezone
    if req.sms_hour not in SENDING_HOURS:
        errors["sms_hour"] = _l("The SMS hour must be between 8 and 20 (no SMS at night).")
    if req.anchor_date is not None:
        today = now.astimezone(ZoneInfo(timezone)).date()
        if not today - ANCHOR_PAST_LIMIT <= req.anchor_date <= today + ANCHOR_FUTURE_LIMIT:
            errors["anchor_date"] = _l("The anchor date must be within two years before and one year after today.")
    if req.harvest_date is not None:
        if study_def.fat_harvest is None:
            errors["harvest_date"] = _l("This study follows no liposuction: leave the liposuction date empty.")
        elif req.anchor_date is not None and "anchor_date" not in errors:
            problem = harvest_date_problem(req.harvest_date, req.anchor_date,
                                           now.astimezone(ZoneInfo(timezone)).date())
            if problem is not None:
                errors["harvest_date"] = problem
    if req.agreed_on is not None and req.agreed_on > now.astimezone(ZoneInfo(timezone)).date():
        errors["agreed_on"] = _l("The patient's agreement cannot be dated after today.")
    try:
        channels.check_channel(study_def, req.answer_channel)
        if req.answer_channel == "voice":
            channels.check_pin(req.voice_pin)
        if req.answer_channel == "sms" and not req.sms_answers_agreed:
            raise channels.ChannelRefused(_l("Tick the box once the patient agrees that the questions and their "
                                             "answers travel by SMS."), "sms_agreed")
    except channels.ChannelRefused as exc:
        errors[{"channel": "answer_channel", "pin": "voice_pin"}.get(exc.field, exc.field)] = exc.message
    for field, missing in (("subject_id", not req.subject_id), ("phone", not req.phone),
                           ("anchor_date", req.anchor_date is None), ("agreed_on", req.agreed_on is None)):
        if missing and field not in errors:
            errors[field] = _l("This is required.")
    if errors:
        first = next(iter(errors))
        raise EnrolmentError(first, errors[first], errors)
    return study, site, e164, timezone


def enroll_patient(db: Session, catalog: StudyCatalog, vault: phones.PhoneVault, req: EnrolmentRequest, *,
                   now: datetime, phone_region: str = "FR", actor: str = "system") -> Patient:
    """Enrol a patient and create their schedule. Visits whose window closed before today are cancelled."""
    study, site, e164, timezone = validate_enrolment(db, catalog, req, now=now, phone_region=phone_region)
    study_def = catalog.get(req.study_code)
    patient = Patient(study_id=study.id, site_id=site.id, subject_id=req.subject_id, language=req.language,
                      timezone=timezone, anchor_date=req.anchor_date, harvest_date=req.harvest_date,
                      sms_hour=req.sms_hour, answer_channel=req.answer_channel,
                      status=PatientStatus.ACTIVE, schedule_version=study_def.version,
                      enrolled_at=now, updated_at=now)
    db.add(patient)
    db.flush()
    db.add(PatientContact(patient_id=patient.id, phone_ciphertext=vault.encrypt(e164),
                          phone_lookup=vault.lookup(e164), usable=True, updated_at=now,
                          voice_pin_hash=channels.hash_pin(req.voice_pin or "") if req.answer_channel == "voice"
                          else None))
    occurrences.schedule(db, patient.id, compute_schedule(study_def, req.anchor_date, timezone), now)
    assert req.agreed_on is not None                     # validate_enrolment refuses an enrolment without it
    version = study_def.information.version if study_def.information else None
    agreement = Agreement(patient_id=patient.id, kind="agreement", information_version=version,
                          given_on=req.agreed_on, recorded_by=actor, recorded_at=now)
    db.add(agreement)
    db.flush()

    record(db, actor=actor, action="patient.enrolled", entity="patient", entity_id=patient.id, patient_id=patient.id,
           new={"study": req.study_code, "site": req.site_code, "subject_id": req.subject_id,
                "language": req.language, "timezone": timezone, "anchor_date": req.anchor_date.isoformat(),
                **({"harvest_date": req.harvest_date.isoformat()} if req.harvest_date else {}),
                "sms_hour": req.sms_hour, "phone": phones.mask(e164), "schedule_version": study_def.version,
                "answer_channel": req.answer_channel, **({"voice_pin": "set"} if req.answer_channel == "voice" else {}),
                "schedule": [[o.visit_code, o.window_opens_on.isoformat(), o.window_closes_on.isoformat(),
                              o.status.value] for o in schedule_of(db, patient.id)]}, at=now)
    record(db, actor=actor, action="patient.agreed", entity="agreement", entity_id=agreement.id,
           patient_id=patient.id, new={"kind": "agreement", "to": ["sms", "online_answers"],
                                       "information_version": version, "given_on": req.agreed_on.isoformat()},
           at=now)
    if req.answer_channel == "sms":
        channels.record_sms_agreement(db, patient, actor=actor, now=now)
    return patient


def schedule_of(db: Session, patient_id: int) -> list[Occurrence]:
    return list(db.scalars(select(Occurrence).where(Occurrence.patient_id == patient_id)
                           .order_by(Occurrence.window_opens_at, Occurrence.visit_code)))


def occurrence_state(occ: Occurrence, now: datetime) -> str:
    """What a coordinator sees: upcoming, open, completed, missed or cancelled."""
    if occ.status != OccurrenceStatus.SCHEDULED:
        return occ.status.value
    if now < occ.window_opens_at:
        return "upcoming"
    if now < occ.window_closes_at:
        return "open"
    return "missed"


def agreements_of(db: Session, patient_id: int) -> list[Agreement]:
    """The patient's agreement at enrolment and their acknowledgements of later information sheets, oldest first."""
    return list(db.scalars(select(Agreement).where(Agreement.patient_id == patient_id).order_by(Agreement.id)))


def acknowledge_information(db: Session, patient: Patient, version: str, *, now: datetime,
                            actor: str = "patient:link") -> Agreement | None:
    """The patient acknowledges the information sheet ``version`` (a new one, after their agreement at
    enrolment). Recorded once per version, in the audit trail; returns None when it was already."""
    if any(a.information_version == version for a in agreements_of(db, patient.id)):
        return None
    ack = Agreement(patient_id=patient.id, kind="acknowledgement", information_version=version,
                    given_on=now.astimezone(ZoneInfo(patient.timezone)).date(), recorded_by=actor, recorded_at=now)
    db.add(ack)
    db.flush()

    record(db, actor=actor, action="patient.acknowledged_information", entity="agreement", entity_id=ack.id,
           patient_id=patient.id, new={"kind": "acknowledgement", "information_version": version,
                                       "given_on": ack.given_on.isoformat()}, at=now)
    return ack


# Rescheduling the anchor date -------------------------------------------------------------------------------------

class RescheduleRefused(Refused):
    """The anchor date was not moved; ``message`` says why (translatable)."""


@dataclass(frozen=True)
class Move:
    """One visit's window before and after a reschedule (local calendar days)."""

    visit_code: str
    old_opens_on: date
    old_closes_on: date
    new_opens_on: date
    new_closes_on: date


@dataclass(frozen=True)
class Rescheduled:
    old_anchor: date
    new_anchor: date
    moved: list[Move]
    kept: list[str]                  # completed visits, kept as they were


def plan_reschedule(patient: Patient, occurrences: list[Occurrence], new_anchor: date, *,
                    now: datetime) -> tuple[list[tuple[Occurrence, Move]], list[Occurrence]]:
    """Which visits move and which stay, or RescheduleRefused. The visits not yet completed move with the anchor
    (each keeps its window's length: the schedule given at enrolment). A completed visit is kept as it was: a visit
    before the anchor (day 0 or earlier: "before the injection") only when it was completed before the new date,
    and a visit after it never (its answers were given counting from the old date)."""
    if patient.status != PatientStatus.ACTIVE:
        raise RescheduleRefused(_l("This patient's follow-up has ended: nothing can be changed."))
    zone = ZoneInfo(patient.timezone)
    today = now.astimezone(zone).date()
    if new_anchor == patient.anchor_date:
        raise RescheduleRefused(_l("This is already the patient's anchor date."))
    if not today - ANCHOR_PAST_LIMIT <= new_anchor <= today + ANCHOR_FUTURE_LIMIT:
        raise RescheduleRefused(_l("The anchor date must be within two years before and one year after today."))
    if patient.harvest_date is not None and new_anchor < patient.harvest_date:
        raise RescheduleRefused(_l(
            "The liposuction was on %(day)s: the injection (the anchor date) cannot be before it. Correct the "
            "liposuction date first if it is wrong.", day=patient.harvest_date.isoformat()))
    shift = new_anchor - patient.anchor_date
    moves, kept = [], []
    for occ in occurrences:
        if occ.status == OccurrenceStatus.COMPLETED:
            completed_on = occ.completed_at.astimezone(zone).date() if occ.completed_at else today
            if occ.visit_day > 0:
                raise RescheduleRefused(_l(
                    "Visit %(visit)s is completed, counting from the current date: the anchor date can no longer "
                    "move.", visit=occ.visit_code))
            if completed_on >= new_anchor:
                raise RescheduleRefused(_l(
                    "Visit %(visit)s was completed on %(day)s, which is not before the new date: its answers would "
                    "no longer be from before it.", visit=occ.visit_code, day=completed_on.isoformat()))
            kept.append(occ)
            continue
        moves.append((occ, Move(occ.visit_code, occ.window_opens_on, occ.window_closes_on,
                                occ.window_opens_on + shift, occ.window_closes_on + shift)))
    return moves, kept


def reschedule_anchor(db: Session, patient: Patient, new_anchor: date, *, actor: str, reason: str, now: datetime,
                      signature: dict[str, Any] | None = None) -> Rescheduled:
    """Move the patient's anchor date (the ADUSE injection postponed): the visits not yet completed move with it,
    completed ones stay; days to healing count from the new date (the registry reads it). Announces
    ``visits_moved`` so the SMS of the moved visits follow (the caller's transaction). Audited with its reason
    and the signer's electronic signature."""

    db.refresh(patient, with_for_update=True)       # one reschedule at a time, from the date as it is now
    visits = schedule_of(db, patient.id)
    moves, kept = plan_reschedule(patient, visits, new_anchor, now=now)
    zone = ZoneInfo(patient.timezone)
    shift = new_anchor - patient.anchor_date
    reopened = []
    for occ, move in moves:
        occurrences.move(occ, move.new_opens_on, move.new_closes_on, shift, zone)
        if (was := occurrences.reopen(occ, now)) is not None:
            reopened.append([occ.visit_code, was.value])
    old = patient.anchor_date
    patient.anchor_date, patient.updated_at = new_anchor, now
    db.flush()
    result = Rescheduled(old, new_anchor, [m for _o, m in moves], [o.visit_code for o in kept])
    record_event(db, patient.id, now, actor, "anchor_rescheduled", reason, {
        "old": old.isoformat(), "new": new_anchor.isoformat(),
        "moved": [[m.visit_code, m.old_opens_on.isoformat(), m.old_closes_on.isoformat(), m.new_opens_on.isoformat(),
                   m.new_closes_on.isoformat()] for m in result.moved],
        "kept": result.kept, "reopened": reopened, **({"signature": signature} if signature else {})})
    visits_moved.send(patient.id, db=db, moved=[o.id for o, _m in moves], now=now)
    return result
