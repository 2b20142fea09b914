"""How a patient answers (``Patient.answer_channel``): the web link sent by SMS, a voice call that reads the
questions aloud (answered on the keypad or by voice, after the PIN the team typed with the patient), or SMS replies
(one question per message, after the patient agreed that questions and answers travel by SMS). Only the visits
whose questionnaires the study allows in that channel go so (``StudyDef.remote_plan``); the others stay on the web
link. The checks and records both the enrolment and the later changes share; the changes themselves are in
``actions.py`` (staff) and ``preferences.py`` (the patient)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from itertools import pairwise
from zoneinfo import ZoneInfo

from flask_babel import lazy_gettext as _l
from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from proapp.audit.trail import record
from proapp.patients.models import ANSWER_CHANNELS, Agreement, Patient
from proapp.studies.schema import StudyDef

# The remote mode of each channel in the study files (``remote: [voice, sms]``)
MODE_OF_CHANNEL = {"voice": "voice", "sms": "sms"}
SMS_ANSWERS = "sms_answers"           # the Agreement's kind: questions and answers may travel by SMS
PIN_LENGTHS = range(4, 7)


class ChannelRefused(ValueError):
    """The channel (or PIN) was refused; ``message`` says why (translatable), ``field`` names the input."""

    def __init__(self, message: object, field: str = "channel"):
        super().__init__(str(message))
        self.message = message
        self.field = field


@dataclass(frozen=True)
class ChannelPlan:
    """Which of the study's visits go by a channel, and which stay on the web link (visit codes, in order)."""

    channel: str
    remote: list[str]
    web: list[str]


def plan(study: StudyDef, channel: str) -> ChannelPlan:
    """The visits a patient of ``study`` answers by ``channel`` (ADUSE's weekly diaries by voice or SMS; W0 and
    W16Q stay on the web link), from the study file's ``remote`` uses."""
    visits = study.all_visits()
    if channel not in MODE_OF_CHANNEL:
        return ChannelPlan(channel, [], [v.code for v in visits])
    mode = MODE_OF_CHANNEL[channel]
    remote = [v.code for v in visits if study.remote_plan(list(v.instruments), mode) is not None]
    return ChannelPlan(channel, remote, [v.code for v in visits if v.code not in remote])


def offered(study: StudyDef) -> list[str]:
    """The channels a patient of this study may choose: the web link always, voice and SMS when at least one
    visit can go so."""
    return ["web"] + [c for c in ("voice", "sms") if plan(study, c).remote]


def check_channel(study: StudyDef, channel: str) -> str:
    if channel not in ANSWER_CHANNELS:
        raise ChannelRefused(_l("Choose how the patient answers: web link, voice call or SMS replies."))
    if channel not in offered(study):
        raise ChannelRefused(_l("This study's questionnaires cannot be answered this way: choose another."))
    return channel


def check_pin(pin: str | None) -> str:
    """The PIN a call asks before any question: 4 to 6 digits, not one a stranger would try first (one digit
    repeated, or digits in a row)."""
    pin = (pin or "").strip()
    if not pin:
        raise ChannelRefused(_l("Type the PIN the patient chose (4 to 6 digits): a call asks it before any "
                                "question."), "pin")
    if not (pin.isascii() and pin.isdigit() and len(pin) in PIN_LENGTHS):
        raise ChannelRefused(_l("The PIN must be 4 to 6 digits, nothing else."), "pin")
    digits = [int(c) for c in pin]
    steps = {b - a for a, b in pairwise(digits)}
    if len(set(digits)) == 1 or steps in ({1}, {-1}):
        raise ChannelRefused(_l("This PIN is too easy to guess (one digit repeated, or digits in a row): choose "
                                "another with the patient."), "pin")
    return pin


def hash_pin(pin: str) -> str:
    """The PIN as stored: werkzeug's scrypt hash; the PIN itself is never kept nor shown again."""
    return generate_password_hash(pin)


def pin_matches(stored: str | None, pin: str) -> bool:
    return stored is not None and check_password_hash(stored, pin)


def has_sms_agreement(db: Session, patient_id: int) -> bool:
    return db.scalar(select(Agreement.id).where(Agreement.patient_id == patient_id,
                                                Agreement.kind == SMS_ANSWERS).limit(1)) is not None


def record_sms_agreement(db: Session, patient: Patient, *, actor: str, now: datetime) -> Agreement | None:
    """The patient's agreement that questions and answers travel by SMS (an SMS is not end-to-end protected: the
    answers are health data), recorded once, audited. None when it was already."""
    if has_sms_agreement(db, patient.id):
        return None
    given_on = now.astimezone(ZoneInfo(patient.timezone)).date()
    agreement = Agreement(patient_id=patient.id, kind=SMS_ANSWERS, information_version=None, given_on=given_on,
                          recorded_by=actor, recorded_at=now)
    db.add(agreement)
    db.flush()
    record(db, actor=actor, action="patient.agreed", entity="agreement", entity_id=agreement.id,
           patient_id=patient.id, new={"kind": SMS_ANSWERS, "to": ["sms_answers"], "given_on": given_on.isoformat()},
           at=now)
    return agreement
