"""The outbox's rules, as plain functions over a Session. The worker's jobs and the webhook only call these.

- ``queue_invitations`` / ``queue_reminders`` / ``queue_information``: one row per (occurrence, kind), inserted
  with ON CONFLICT DO NOTHING, so a kind of SMS exists once whatever the number of workers and ticks.
- ``claim``: rows due now are taken by one worker in one atomic UPDATE ... RETURNING (with FOR UPDATE SKIP
  LOCKED on PostgreSQL); ``prepare`` issues the link and fixes the body; ``apply_outcome`` records what the
  gateway said.
- ``apply_provider_status``: delivery reports; a message never moves backwards.
- ``reconcile``: claims left by a dead worker, unknown outcomes looked up at the gateway, lost callbacks.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from flask import Flask
from sqlalchemy import and_, case, exists, func, select, update
from sqlalchemy.orm import Session, aliased, joinedload, object_session

from proapp import outbox, runtime
from proapp.audit.restores import holding
from proapp.audit.trail import record
from proapp.db import dialect_insert
from proapp.patients import occurrences
from proapp.patients.models import (
    Agreement,
    Occurrence,
    OccurrenceStatus,
    Patient,
    PatientContact,
    PatientEvent,
    PatientStatus,
)
from proapp.patients.phones import PhoneVault
from proapp.patients.signals import sms_must_stop, visits_moved
from proapp.questionnaire.answering import INFORMATION_LINK, TOKEN_BYTES, new_link
from proapp.questionnaire.models import AccessLink
from proapp.sms import text as smstext
from proapp.sms.gateways import UNUSABLE_CODES, Found, Gateway, Outcome, Outgoing, body_hash
from proapp.sms.models import PROGRESS, SendSlot, SmsMessage, SmsStatus
from proapp.sms.timing import QuietHours, allowed_at, invitation_due, local_day, local_instant, reminder_days
from proapp.studies.catalog import StudyCatalog
from proapp.studies.models import Study, StudyClosure
from proapp.studies.sync import closing

log = logging.getLogger("proapp.sms")

INVITATION = "invitation"
INFORMATION = "info:"      # info:<information sheet version>: the SMS asking to read a new information sheet
RESEND = "resend_"         # resend_1, resend_2, ...: a new link sent at a coordinator's request
REPLY = "reply_"           # reply_1, reply_2, ...: the messages of an SMS conversation (proapp/remote/sms_replies.py)
MAX_RETRY_DELAY = timedelta(hours=1)
TWILIO_STATUS = {
    "queued": SmsStatus.ACCEPTED, "accepted": SmsStatus.ACCEPTED, "scheduled": SmsStatus.ACCEPTED,
    "sending": SmsStatus.ACCEPTED, "sent": SmsStatus.SENT, "delivered": SmsStatus.DELIVERED,
    "read": SmsStatus.DELIVERED, "undelivered": SmsStatus.UNDELIVERED, "failed": SmsStatus.FAILED,
    "canceled": SmsStatus.FAILED,
}
# A call (``channel == "voice"``): answered is "delivered"; busy, not answered or a voicemail is "undelivered" (the
# next reminder calls again); Twilio could not place it: "failed".
VOICE_STATUS = {
    "queued": SmsStatus.ACCEPTED, "initiated": SmsStatus.ACCEPTED, "ringing": SmsStatus.ACCEPTED,
    "in-progress": SmsStatus.SENT, "completed": SmsStatus.DELIVERED, "busy": SmsStatus.UNDELIVERED,
    "no-answer": SmsStatus.UNDELIVERED, "failed": SmsStatus.FAILED, "canceled": SmsStatus.FAILED,
}
VOICE_FINAL = ("completed", "busy", "no-answer", "failed", "canceled")
MACHINE = ("machine_start", "machine_end_beep", "machine_end_silence", "machine_end_other", "fax")
ANSWERED_BY_MACHINE = "machine"      # a call's provider status once a voicemail or fax answered it
LINK_AFTER_CALL = "link_after_call"   # the link by SMS when the last call of a visit was not answered or ended early
REMINDABLE = (SmsStatus.ACCEPTED, SmsStatus.SENT, SmsStatus.DELIVERED, SmsStatus.UNDELIVERED)
WAITING = (SmsStatus.PENDING,)


@dataclass(frozen=True)
class SmsSettings:
    public_url: str
    sender_name: str
    quiet: QuietHours = field(default_factory=QuietHours)
    max_attempts: int = 5
    retry_seconds: int = 30
    rate_per_second: int = 10
    threads: int = 8
    claim_lease: timedelta = timedelta(minutes=2)       # a claim older than this belongs to a dead worker
    unknown_grace: timedelta = timedelta(seconds=60)    # how long an unknown outcome waits before a resend
    poll_after: timedelta = timedelta(minutes=30)       # ask Twilio when no delivery report came by then

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> SmsSettings:
        return cls(public_url=cfg["PUBLIC_URL"], sender_name=cfg["SMS_SENDER_NAME"],
                   quiet=QuietHours(cfg["SMS_QUIET_START"], cfg["SMS_QUIET_END"]),
                   max_attempts=cfg["SMS_MAX_ATTEMPTS"], retry_seconds=cfg["SMS_RETRY_SECONDS"],
                   rate_per_second=cfg["SMS_RATE_PER_SECOND"], threads=cfg["SMS_SEND_THREADS"],
                   claim_lease=timedelta(seconds=cfg["SMS_CLAIM_LEASE_SECONDS"]),
                   unknown_grace=timedelta(seconds=cfg["SMS_UNKNOWN_GRACE_SECONDS"]))

    def sender(self, cfg: dict[str, Any]) -> str:
        return cfg.get("TWILIO_MESSAGING_SERVICE_SID") or cfg.get("TWILIO_FROM") or self.sender_name


def _reachable():
    """SQL condition: the patient can be sent an SMS for this occurrence."""
    return and_(Occurrence.status == OccurrenceStatus.SCHEDULED, Patient.status == PatientStatus.ACTIVE,
                PatientContact.phone_ciphertext.is_not(None), PatientContact.usable.is_(True),
                PatientContact.sms_paused_at.is_(None), PatientContact.opted_out_at.is_(None),
                ~closing(Patient.study_id))


def _insert_new(db: Session, rows: list[dict[str, Any]]) -> int:
    """Insert outbox rows, silently skipping any (occurrence, kind) that exists already."""
    if not rows:
        return 0
    insert = dialect_insert(db.get_bind().dialect.name)
    stmt = insert(SmsMessage).on_conflict_do_nothing(index_elements=["occurrence_id", "round", "kind"])
    created = db.execute(stmt.returning(SmsMessage.id, SmsMessage.patient_id, SmsMessage.kind, SmsMessage.status),
                         rows).all()
    now = rows[0]["created_at"]
    for message_id, patient_id, kind, status in created:
        _audit_sms(db, [(message_id, patient_id)], None, status.value, now, kind=kind)
    return len(created)


def _new_row(occurrence_id: int, patient_id: int, kind: str, due: datetime, now: datetime,
             status: SmsStatus = SmsStatus.PENDING, cancel_reason: str | None = None, sms_round: int = 0
             ) -> dict[str, Any]:
    return {"occurrence_id": occurrence_id, "patient_id": patient_id, "kind": kind, "status": status,
            "created_at": now, "due_at": due, "status_at": now, "attempts": 0, "cancel_reason": cancel_reason,
            "round": sms_round}


def queue_invitations(db: Session, now: datetime, settings: SmsSettings) -> int:
    """One invitation per open occurrence (per round of its SMS: a visit moved by a reschedule starts again), due
    at the patient's preferred hour (or now, if that has passed)."""
    rows = db.execute(
        select(Occurrence.id, Occurrence.patient_id, Occurrence.window_opens_on, Occurrence.window_closes_at,
               Patient.timezone, Patient.sms_hour, Occurrence.sms_round)
        .join(Patient, Patient.id == Occurrence.patient_id)
        .join(PatientContact, PatientContact.patient_id == Patient.id)
        .where(_reachable(), Occurrence.window_opens_at <= now, Occurrence.window_closes_at > now,
               ~exists().where(SmsMessage.occurrence_id == Occurrence.id, SmsMessage.round == Occurrence.sms_round,
                               SmsMessage.kind == INVITATION)))
    new = []
    for occ_id, patient_id, opens_on, closes_at, tz, hour, sms_round in rows:
        due = invitation_due(opens_on, tz, hour, now, settings.quiet)
        if due < closes_at:
            new.append(_new_row(occ_id, patient_id, INVITATION, due, now, sms_round=sms_round))
    return _insert_new(db, new)


def information_kind(version: str) -> str:
    """The outbox kind of the SMS about information sheet ``version`` (20 characters at most)."""

    return INFORMATION + (version if len(version) <= 15 else hashlib.sha256(version.encode()).hexdigest()[:15])


def queue_information(db: Session, catalog: StudyCatalog, now: datetime, settings: SmsSettings) -> int:
    """One SMS per patient and information sheet version, to the patients in follow-up who agreed to an earlier
    version of their study's sheet and have not acknowledged this one: its link opens the information page,
    where they confirm they read it. No health information in it. Exactly once: a patient who has such an SMS,
    whatever became of it, gets no other (the row is on the patient's first occurrence, unique per kind)."""

    new = []
    for loaded in catalog.all():
        info = loaded.definition.information
        if info is None:
            continue
        kind = information_kind(info.version)
        first = select(func.min(Occurrence.id)).where(Occurrence.patient_id == Patient.id).scalar_subquery()
        rows = db.execute(
            select(Patient.id, first, Patient.timezone, Patient.sms_hour)
            .join(Study, Study.id == Patient.study_id)
            .join(PatientContact, PatientContact.patient_id == Patient.id)
            .where(Study.code == loaded.definition.code, Patient.status == PatientStatus.ACTIVE,
                   PatientContact.phone_ciphertext.is_not(None), PatientContact.usable.is_(True),
                   PatientContact.sms_paused_at.is_(None), PatientContact.opted_out_at.is_(None),
                   ~closing(Patient.study_id),
                   exists().where(Agreement.patient_id == Patient.id, Agreement.information_version.is_not(None),
                                  Agreement.information_version != info.version),
                   ~exists().where(Agreement.patient_id == Patient.id, Agreement.information_version == info.version),
                   ~exists().where(SmsMessage.patient_id == Patient.id, SmsMessage.kind == kind)))
        for patient_id, occurrence_id, tz, hour in rows:
            if occurrence_id is not None:
                due = invitation_due(local_day(now, tz), tz, hour, now, settings.quiet)
                new.append(_new_row(occurrence_id, patient_id, kind, due, now))
    return _insert_new(db, new)


def queue_reminders(db: Session, catalog: StudyCatalog, now: datetime, settings: SmsSettings) -> int:
    """Reminders whose day has come, for occurrences still open and not completed. When several are due at
    once (the worker was stopped), only the latest goes; the earlier ones are recorded as superseded."""
    inv = aliased(SmsMessage)
    rows = db.execute(
        select(Occurrence.id, Occurrence.patient_id, Occurrence.window_closes_on, Occurrence.window_closes_at,
               Patient.timezone, Patient.sms_hour, Study.code, func.coalesce(inv.submitted_at, inv.status_at),
               Occurrence.sms_round)
        .join(Patient, Patient.id == Occurrence.patient_id)
        .join(PatientContact, PatientContact.patient_id == Patient.id)
        .join(Study, Study.id == Patient.study_id)
        .join(inv, and_(inv.occurrence_id == Occurrence.id, inv.round == Occurrence.sms_round,
                        inv.kind == INVITATION))
        .where(_reachable(), inv.status.in_(REMINDABLE), Occurrence.window_opens_at <= now,
               Occurrence.window_closes_at > now))
    existing = {(o, k) for o, k in db.execute(
        select(SmsMessage.occurrence_id, SmsMessage.kind)
        .join(Occurrence, Occurrence.id == SmsMessage.occurrence_id)
        .where(SmsMessage.kind != INVITATION, SmsMessage.round == Occurrence.sms_round,
               Occurrence.status == OccurrenceStatus.SCHEDULED, Occurrence.window_closes_at > now))}
    rules_by_study: dict[str, list[tuple[int | None, bool]]] = {}
    new = []
    for occ_id, patient_id, closes_on, closes_at, tz, hour, study_code, invited_at, sms_round in rows:
        if study_code not in rules_by_study:
            try:
                reminders = catalog.get(study_code).sms.reminders
            except KeyError:
                reminders = []
            rules_by_study[study_code] = [(r.after_invitation_days, r.last_day) for r in reminders]
        due_now = []
        for number, day in reminder_days(local_day(invited_at, tz), closes_on, rules_by_study[study_code]):
            kind = f"reminder_{number}"
            due = local_instant(day, hour, tz)
            if due <= now and (occ_id, kind) not in existing:
                due_now.append((kind, due))
        for kind, due in due_now[:-1]:
            new.append(_new_row(occ_id, patient_id, kind, due, now, SmsStatus.CANCELLED, "superseded",
                                sms_round=sms_round))
        if due_now:
            kind, due = due_now[-1]
            due = allowed_at(max(due, now), tz, hour, settings.quiet)
            if due < closes_at:
                new.append(_new_row(occ_id, patient_id, kind, due, now, sms_round=sms_round))
    return _insert_new(db, new)


def queue_resend(db: Session, occ: Occurrence, now: datetime) -> str:
    """Queue a new link for ``occ``, due now (the worker sends it within seconds, or after the quiet hours).
    The earlier links keep working until Twilio has taken the new SMS (`apply_outcome`): a resend at night
    leaves the patient a working link. Returns the kind of the new SMS: ``invitation`` when none was queued yet
    (so the patient does not get two SMS), else resend_1, resend_2, ..."""
    kinds = set(db.scalars(select(SmsMessage.kind).where(SmsMessage.occurrence_id == occ.id,
                                                         SmsMessage.round == occ.sms_round)))
    # Not invited yet: this SMS is the invitation (due now), and the reminders follow it as usual.
    resends = sum(k.startswith(RESEND) for k in kinds)
    kind = INVITATION if INVITATION not in kinds else f"{RESEND}{resends + 1}"
    if not _insert_new(db, [_new_row(occ.id, occ.patient_id, kind, now, now, sms_round=occ.sms_round)]):
        raise ValueError("another resend of this occurrence was queued at the same moment")
    return kind


def cancel_unsendable(db: Session, now: datetime) -> int:
    """Waiting rows whose SMS must no longer go: completed, missed or closed, patient not active, SMS stopped."""
    visit_sms = SmsMessage.kind.not_like(f"{INFORMATION}%")      # the information SMS has no window
    reply = SmsMessage.kind.like(f"{REPLY}%")          # a conversation's thank-you goes after the completion
    reason = case(
        (and_(visit_sms, ~reply, Occurrence.status == OccurrenceStatus.COMPLETED), "completed"),
        (and_(visit_sms, Occurrence.status.not_in((OccurrenceStatus.SCHEDULED, OccurrenceStatus.COMPLETED))),
         "window_closed"),
        (and_(visit_sms, Occurrence.window_closes_at <= now), "window_closed"),
        (Patient.status != PatientStatus.ACTIVE, "patient_not_active"),
        (closing(Patient.study_id), "study_closed"),
        (PatientContact.opted_out_at.is_not(None), "opted_out"),
        (PatientContact.sms_paused_at.is_not(None), "paused"),
        (PatientContact.usable.is_(False), "number_unusable"),
        else_=None)
    targets = db.execute(
        select(SmsMessage.id, reason, SmsMessage.patient_id)
        .join(Occurrence, Occurrence.id == SmsMessage.occurrence_id)
        .join(Patient, Patient.id == SmsMessage.patient_id)
        .join(PatientContact, PatientContact.patient_id == Patient.id)
        .where(SmsMessage.status.in_(WAITING), reason.is_not(None))).all()
    by_reason: dict[str, list[int]] = {}
    for msg_id, why, _patient in targets:
        by_reason.setdefault(why, []).append(msg_id)
    for why, ids in by_reason.items():             # one UPDATE per reason, not one per row
        done = db.execute(update(SmsMessage).where(SmsMessage.id.in_(ids), SmsMessage.status.in_(WAITING))
                          .values(status=SmsStatus.CANCELLED, cancel_reason=why, status_at=now)
                          .returning(SmsMessage.id, SmsMessage.patient_id)).all()
        _audit_sms(db, [tuple(r) for r in done], SmsStatus.PENDING.value, SmsStatus.CANCELLED.value, now,
                   cancel_reason=why)
    return len(targets)


def claim(db: Session, worker: str, now: datetime, limit: int) -> list[int]:
    """Take up to ``limit`` due rows for this worker (proapp/outbox). Nothing while a declared restore holds the
    SMS (``proapp restore reconcile`` releases them)."""

    if holding(db) is not None:
        return []
    ids = outbox.claim(db, SmsMessage, worker, now, limit)
    if ids:
        taken = db.execute(select(SmsMessage.id, SmsMessage.patient_id).where(SmsMessage.id.in_(ids))).all()
        _audit_sms(db, [tuple(r) for r in taken], SmsStatus.PENDING.value, SmsStatus.SENDING.value, now,
                   worker=worker)
    return ids


@dataclass(frozen=True)
class Replies:
    """What the SMS conversations (proapp/remote/sms_replies.py, above this feature) tell the outbox, registered by
    the app factory (`register_replies`): ``compose(db, msg, now=, sender=, link=)`` the body of a conversation's
    message (``link()`` issues the visit's link and returns its URL), or None when there is nothing to send;
    ``busy(db, occurrence_id)`` whether a conversation about the visit is going on (its reminders then wait)."""

    compose: Callable[..., str | None]
    busy: Callable[[Session, int], bool]


_replies: list[Replies] = []


def register_replies(replies: Replies) -> None:
    _replies[:] = [replies]


def queue_reply(db: Session, occurrence_id: int, patient_id: int, sms_round: int, now: datetime,
                due: datetime | None = None) -> str | None:
    """One more message of a visit's SMS conversation, due now (or at ``due``): its kind (reply_<n>), or None when
    another one took that number at the same moment (the caller holds the patient's lock, so it does not)."""
    taken = db.scalars(select(SmsMessage.kind).where(SmsMessage.occurrence_id == occurrence_id,
                                                     SmsMessage.round == sms_round,
                                                     SmsMessage.kind.like(f"{REPLY}%"))).all()
    kind = f"{REPLY}{len(taken) + 1}"
    row = _new_row(occurrence_id, patient_id, kind, due or now, now, sms_round=sms_round)
    return kind if _insert_new(db, [row]) else None


@dataclass
class ReadyToSend:
    outgoing: list[Outgoing] = field(default_factory=list)
    cancelled: int = 0
    postponed: int = 0


def answer_channel(patient: Patient, contact: PatientContact, occ: Occurrence, catalog: StudyCatalog | None) -> str:
    """How this visit's invitation or reminder goes: "voice" (a call asks the questions) or "sms_replies" (a text
    opens an SMS conversation) when the patient answers so and the study allows every questionnaire of the visit
    in that channel (a call needs the patient's PIN); else "sms", the text with the link."""
    if catalog is None or patient.answer_channel == "web":
        return "sms"
    mode = patient.answer_channel
    try:
        allowed = catalog.get(patient.study.code).remote_plan(tuple(occ.instruments), mode) is not None
    except KeyError:
        return "sms"
    if not allowed or (mode == "voice" and not contact.voice_pin_hash):
        return "sms"
    return "voice" if mode == "voice" else "sms_replies"


def prepare(db: Session, ids: list[int], *, worker: str, now: datetime, settings: SmsSettings, vault: PhoneVault,
            gateway: str, catalog: StudyCatalog | None = None) -> ReadyToSend:
    """For each claimed row: check once more that it may go now, then issue its link and fix its body.

    The body's hash is committed before the request leaves, so a send whose outcome is unknown can be found
    again at the gateway instead of being sent twice.
    """
    out = ReadyToSend()
    if not ids:
        return out
    messages = db.scalars(select(SmsMessage).where(SmsMessage.id.in_(ids), SmsMessage.claimed_by == worker,
                                                   SmsMessage.status == SmsStatus.SENDING)
                          .options(joinedload(SmsMessage.occurrence),
                                   joinedload(SmsMessage.patient).joinedload(Patient.contact))).all()
    closed = set(db.scalars(select(StudyClosure.study_id)))           # no SMS of a study closed or closing
    for msg in messages:
        occ, patient = msg.occurrence, msg.patient
        contact = patient.contact
        information = msg.kind.startswith(INFORMATION)
        # An invitation or reminder of an earlier round (the visit moved since), or for a window not open yet: not
        # sent. The information SMS belongs to no visit's round.
        reply = msg.kind.startswith(REPLY)
        why = None if information else (
            "rescheduled" if msg.round != occ.sms_round or now < occ.window_opens_at else None)
        why = why or (_patient_unsendable(patient, contact) if information
                      else _reply_unsendable(occ, patient, contact, now) if reply
                      else _unsendable_reason(occ, patient, contact, now)) or (
            "study_closed" if patient.study_id in closed else None) or (
            "acknowledged" if information and _acknowledged(db, msg) else None)
        if why:
            _set(msg, SmsStatus.CANCELLED, now, cancel_reason=why)
            out.cancelled += 1
            continue
        # A conversation's message answers the patient, who is writing to us now: no quiet hours.
        allowed = now if reply else allowed_at(now, patient.timezone, patient.sms_hour, settings.quiet)
        if allowed > now:                    # quiet hours (the worker was stopped, or a retry fell at night)
            if allowed >= occ.window_closes_at and not information:
                _set(msg, SmsStatus.CANCELLED, now, cancel_reason="window_closed")
                out.cancelled += 1
            else:
                _set(msg, SmsStatus.PENDING, now, due_at=allowed, claimed_by=None, claimed_at=None)
                out.postponed += 1
            continue
        # A staff resend kills every earlier link once Twilio has taken it (`apply_outcome`); a scheduled reminder
        # leaves the invitation's link working.
        try:
            phone = vault.decrypt(contact.phone_ciphertext)
        except ValueError:                   # the key that wrote it is gone: the number must be asked again
            _number_lost(db, msg, now)
            out.cancelled += 1
            continue
        resend = msg.kind.startswith(RESEND)
        # A staff resend is always the link (the team sends it because the patient asked for it).
        link_only = information or resend or msg.kind == LINK_AFTER_CALL
        msg.channel = ("sms" if link_only else "sms_replies" if reply
                       else answer_channel(patient, contact, occ, catalog))
        if reply:
            body = _reply_body(db, msg, occ, now, settings)
            if body is None:
                _set(msg, SmsStatus.CANCELLED, now, cancel_reason="nothing_to_send")
                out.cancelled += 1
                continue
            msg.attempts += 1
            msg.language, msg.gateway = patient.language, gateway
            msg.body_sha256, msg.body_length = body_hash(body), len(body)
            out.outgoing.append(Outgoing(msg.id, phone, body, f"{settings.public_url}/sms/status/{msg.id}",
                                         channel="sms_replies"))
            continue
        if msg.channel == "sms_replies" and _replies and _replies[0].busy(db, occ.id):
            # A reminder while the patient is answering by SMS would read as an answer: it is not sent.
            _set(msg, SmsStatus.CANCELLED, now, cancel_reason="in_conversation")
            out.cancelled += 1
            continue
        if msg.channel == "voice":           # a call: no link, no text; the webhooks ask the questions
            answer_url = f"{settings.public_url}/voice/answer/{msg.id}"
            msg.attempts += 1
            # The hash marks the request as ready to leave (a claim of a dead worker is then looked up, never
            # placed twice); a call is found again by number and time (``Gateway.find_call``).
            msg.language, msg.gateway, msg.body_sha256 = patient.language, gateway, body_hash(answer_url)
            out.outgoing.append(Outgoing(msg.id, phone, "", f"{settings.public_url}/voice/status/{msg.id}",
                                         channel="voice", answer_url=answer_url))
            continue
        token, link = new_link(db, occ, now, revoke_previous=False,
                               purpose=INFORMATION_LINK if information else None)
        text_kind = ("information" if information else "invitation" if msg.kind == INVITATION or resend
                     else "last_day" if local_day(now, patient.timezone) == occ.window_closes_on else "reminder")
        if text_kind == "invitation" and _first_sms(db, msg):
            text_kind = "first_invitation"      # the patient's first SMS names their rights, whatever the channel
        elif msg.channel == "sms_replies" and text_kind in ("invitation", "reminder", "last_day"):
            text_kind = "opener"                # "Reply 1 to answer by SMS, or open <link>"
        body = smstext.compose(text_kind, patient.language, sender=settings.sender_name,
                               link=f"{settings.public_url}/s/{token}", last_day=occ.window_closes_on)
        msg.attempts += 1
        msg.language, msg.gateway, msg.access_link_id = patient.language, gateway, link.id
        msg.body_sha256, msg.body_length = body_hash(body), len(body)
        out.outgoing.append(Outgoing(msg.id, phone, body,
                                     f"{settings.public_url}/sms/status/{msg.id}"))
    db.flush()
    return out


def _reply_body(db: Session, msg: SmsMessage, occ: Occurrence, now: datetime, settings: SmsSettings) -> str | None:
    """A conversation's message, composed by the SMS conversations; a link in it is issued here, as for any SMS."""
    if not _replies:
        return None

    def link() -> str:
        token, access = new_link(db, occ, now, revoke_previous=False)
        msg.access_link_id = access.id
        return f"{settings.public_url}/s/{token}"

    return _replies[0].compose(db, msg, now=now, sender=settings.sender_name, link=link)


def _reply_unsendable(occ: Occurrence, patient: Patient, contact: PatientContact | None,
                      now: datetime) -> str | None:
    """A conversation's message goes while the window is open, also once the visit is completed (the thank-you)."""
    if occ.status not in (OccurrenceStatus.SCHEDULED, OccurrenceStatus.COMPLETED) or now >= occ.window_closes_at:
        return "window_closed"
    return _patient_unsendable(patient, contact)


def _first_sms(db: Session, msg: SmsMessage) -> bool:
    """Whether no other SMS of this patient went to the gateway before this one."""
    return db.scalar(select(SmsMessage.id).where(SmsMessage.patient_id == msg.patient_id, SmsMessage.id != msg.id,
                                                 SmsMessage.submitted_at.is_not(None)).limit(1)) is None


def _unsendable_reason(occ: Occurrence, patient: Patient, contact: PatientContact | None, now: datetime) -> str | None:
    if occ.status == OccurrenceStatus.COMPLETED:
        return "completed"
    if occ.status != OccurrenceStatus.SCHEDULED or now >= occ.window_closes_at:
        return "window_closed"
    return _patient_unsendable(patient, contact)


def _acknowledged(db: Session, msg: SmsMessage) -> bool:
    """Whether the patient already acknowledged the information sheet this SMS announces (on a questionnaire page,
    between the queueing and the sending)."""

    version = msg.kind.removeprefix(INFORMATION)
    return db.scalar(select(Agreement.id).where(Agreement.patient_id == msg.patient_id,
                                                Agreement.information_version == version).limit(1)) is not None


def _patient_unsendable(patient: Patient, contact: PatientContact | None) -> str | None:
    if patient.status != PatientStatus.ACTIVE:
        return "patient_not_active"
    if contact is None or contact.phone_ciphertext is None:
        return "no_phone"
    if contact.opted_out_at is not None:
        return "opted_out"
    if contact.sms_paused_at is not None:
        return "paused"
    if not contact.usable:
        return "number_unusable"
    return None


def _audit_sms(db: Session, rows: list[tuple[int, int]], old: str | None, new: str, now: datetime,
               **details: Any) -> None:
    """One audit entry per message whose status changed: (message id, patient id) pairs."""

    extra = {k: v for k, v in details.items() if v is not None}
    for message_id, patient_id in rows:
        record(db, actor="system:sms", action="sms.status", entity="sms_message", entity_id=message_id,
               patient_id=patient_id, old=None if old is None else {"status": old}, new={"status": new, **extra},
               at=now)


def _set(msg: SmsMessage, status: SmsStatus, now: datetime, **values: Any) -> None:
    old = msg.status
    msg.status, msg.status_at = status, now
    for key, value in values.items():
        setattr(msg, key, value)
    db = object_session(msg)
    if db is not None and old != status:
        _audit_sms(db, [(msg.id, msg.patient_id)], old.value if old else None, status.value, now,
                   **{k: values.get(k) for k in ("cancel_reason", "error_code", "error_message", "provider_status")})


def locked(db: Session, message_id: int) -> SmsMessage | None:
    """The message, its row locked until the caller's commit (a delivery report, an outcome)."""
    return db.scalar(select(SmsMessage).where(SmsMessage.id == message_id).with_for_update())


def apply_outcome(db: Session, message_id: int, worker: str, outcome: Outcome, now: datetime,
                  settings: SmsSettings) -> SmsStatus | None:
    """Record what the gateway answered to this worker's send. Returns the message's new status."""
    msg = locked(db, message_id)
    if msg is None or msg.claimed_by != worker:
        return None
    if outcome.kind == "sent":                 # the gateway took it: how far it went, Twilio's status says
        msg.submitted_at = msg.submitted_at or now
        if msg.provider_sid is None:
            msg.provider_sid = outcome.reference
        new = TWILIO_STATUS.get(outcome.provider_status or "", SmsStatus.ACCEPTED)
        if msg.status in (SmsStatus.SENDING, SmsStatus.UNKNOWN) or PROGRESS[new] > PROGRESS[msg.status]:
            _set(msg, new, now, provider_status=outcome.provider_status)
        if msg.kind.startswith(RESEND) and msg.access_link_id is not None:
            # The new link has gone: the earlier ones stop working (their page says a newer one was sent, when).
            db.execute(update(AccessLink).where(AccessLink.occurrence_id == msg.occurrence_id,
                                                AccessLink.id < msg.access_link_id, AccessLink.revoked_at.is_(None))
                       .values(revoked_at=now))
    elif msg.status not in (SmsStatus.SENDING, SmsStatus.UNKNOWN):
        return msg.status                     # a delivery report already told us more than this outcome
    elif outcome.kind == "retry":
        if msg.attempts >= settings.max_attempts:
            _set(msg, SmsStatus.FAILED, now, error_code=outcome.error_code,
                 error_message=f"gave up after {msg.attempts} attempts: {outcome.error}"[:300])
        else:
            _set(msg, SmsStatus.PENDING, now, claimed_by=None, claimed_at=None, error_code=outcome.error_code,
                 due_at=outbox.retry_at(now, msg.attempts, timedelta(seconds=settings.retry_seconds),
                                        MAX_RETRY_DELAY), error_message=outcome.error)
    elif outcome.kind == "failed":
        _set(msg, SmsStatus.FAILED, now, error_code=outcome.error_code, error_message=outcome.error)
        _maybe_unusable(db, msg, outcome.error_code, now)
    else:
        _set(msg, SmsStatus.UNKNOWN, now, error_message=outcome.error)
    db.flush()
    return msg.status


def apply_call_status(db: Session, msg: SmsMessage, sid: str, call_status: str, answered_by: str | None,
                      now: datetime) -> bool:
    """A call's status callback (or lookup): completed by a machine (voicemail, fax) is "undelivered" (nobody
    answered the questions: the next reminder calls again)."""
    if call_status == "completed" and (answered_by or "") in MACHINE:
        return apply_provider_status(db, msg, sid, "no-answer", None, now,
                                     error_message=f"answered by a machine ({answered_by}): neutral message left",
                                     provider_status=f"machine:{answered_by}"[:20])
    return apply_provider_status(db, msg, sid, call_status, None, now)


def apply_provider_status(db: Session, msg: SmsMessage, sid: str, raw_status: str, error_code: int | None,
                          now: datetime, error_message: str | None = None, provider_status: str | None = None
                          ) -> bool:
    """A delivery report (callback, lookup or poll). Duplicates and late, older reports change nothing.
    Returns True when the message changed."""
    new = (VOICE_STATUS if msg.channel == "voice" else TWILIO_STATUS).get(raw_status)
    if new is None or msg.status == SmsStatus.CANCELLED:
        return False
    if msg.provider_sid is not None and msg.provider_sid != sid:
        return False
    moved = PROGRESS[new] > PROGRESS[msg.status]
    if not moved:
        return False
    msg.provider_sid = sid
    msg.submitted_at = msg.submitted_at or now
    _set(msg, new, now, provider_status=provider_status or raw_status)
    if new in (SmsStatus.UNDELIVERED, SmsStatus.FAILED):
        msg.error_code = error_code
        msg.error_message = error_message or (UNUSABLE_CODES.get(error_code or 0) if error_code else None)
        _maybe_unusable(db, msg, error_code, now)
    db.flush()
    return True


def later_call_due(db: Session, msg: SmsMessage, catalog: StudyCatalog, now: datetime) -> bool:
    """Whether the study's reminder days still hold a call for this visit after today (a call is placed at each
    reminder, as a text would be sent)."""
    occ, patient = msg.occurrence, msg.patient
    invitation = db.scalar(select(SmsMessage).where(SmsMessage.occurrence_id == occ.id,
                                                    SmsMessage.round == occ.sms_round, SmsMessage.kind == INVITATION))
    if invitation is None:
        return False
    try:
        rules = [(r.after_invitation_days, r.last_day) for r in catalog.get(patient.study.code).sms.reminders]
    except KeyError:
        rules = []
    today = local_day(now, patient.timezone)
    invited_on = local_day(invitation.submitted_at or invitation.status_at, patient.timezone)
    return any(day > today for _number, day in reminder_days(invited_on, occ.window_closes_on, rules))


def queue_link_after_call(db: Session, msg: SmsMessage, now: datetime, why: str) -> bool:
    """The link by SMS after a call that left the visit unanswered with no call to come (its last reminder, or the
    patient could not be understood): due now, once per visit and round. Returns True when it was queued."""
    occ = msg.occurrence
    if occ.status != OccurrenceStatus.SCHEDULED or now >= occ.window_closes_at:
        return False
    queued = _insert_new(db, [_new_row(occ.id, msg.patient_id, LINK_AFTER_CALL, now, now, sms_round=occ.sms_round)])
    if queued:
        record(db, actor="system:voice", action="sms.link_after_call", entity="occurrence", entity_id=occ.id,
               patient_id=msg.patient_id, new={"after_message": msg.id, "why": why}, at=now)
    return bool(queued)


KEY_LOST = "the phone key that encrypted this number is missing from PROAPP_PHONE_KEYS: ask the patient again"


def _number_lost(db: Session, msg: SmsMessage, now: datetime) -> None:
    """A number no configured key can read: the patient is flagged for a new number, their SMS wait no more, the
    worker goes on with everyone else (docs/operations.md, "Keys")."""
    log.warning("SMS %s: the phone number of patient %s cannot be decrypted with PROAPP_PHONE_KEYS (a lost key?); "
                "the patient is flagged for a new number", msg.id, msg.patient_id)
    _set(msg, SmsStatus.CANCELLED, now, cancel_reason="number_unusable", claimed_by=None, claimed_at=None)
    _flag_unusable(db, msg, now, KEY_LOST, "phone key missing")


def _maybe_unusable(db: Session, msg: SmsMessage, error_code: int | None, now: datetime) -> None:
    if error_code not in UNUSABLE_CODES:
        return
    _flag_unusable(db, msg, now, UNUSABLE_CODES[error_code], f"Twilio error {error_code}")


def _flag_unusable(db: Session, msg: SmsMessage, now: datetime, why: str, short: str) -> None:
    contact = db.get(PatientContact, msg.patient_id)
    if contact is not None and contact.usable:
        contact.usable, contact.unusable_reason, contact.updated_at = False, why[:200], now
        db.add(PatientEvent(patient_id=msg.patient_id, at=now, actor="system:sms", action="phone_unusable",
                            reason=f"{short}: {why}", details={"sms_message_id": msg.id}))

        record(db, actor="system:sms", action="patient.phone_unusable", entity="patient_contact",
               entity_id=msg.patient_id, patient_id=msg.patient_id, old={"usable": True}, new={"usable": False},
               reason=short, at=now)
    done = db.execute(update(SmsMessage).where(SmsMessage.patient_id == msg.patient_id,
                                               SmsMessage.status.in_(WAITING))
                      .values(status=SmsStatus.CANCELLED, cancel_reason="number_unusable", status_at=now)
                      .returning(SmsMessage.id, SmsMessage.patient_id)).all()
    _audit_sms(db, [tuple(r) for r in done], SmsStatus.PENDING.value, SmsStatus.CANCELLED.value, now,
               cancel_reason="number_unusable")


@dataclass
class Reconciled:
    abandoned: int = 0        # claims of a dead worker
    found: int = 0            # unknown outcomes found at the gateway
    resent: int = 0           # unknown outcomes not found: safe to send again
    polled: int = 0           # delivery reports fetched because no callback came


def reconcile(db: Session, gateway: Gateway, vault: PhoneVault, now: datetime, settings: SmsSettings,
              limit: int = 200) -> Reconciled:
    r = Reconciled()
    stale = db.scalars(select(SmsMessage).where(SmsMessage.status == SmsStatus.SENDING,
                                                SmsMessage.claimed_at < now - settings.claim_lease)
                       .limit(limit).with_for_update(skip_locked=True)).all()
    for msg in stale:
        r.abandoned += 1
        if msg.body_sha256 is None or msg.attempts == 0:
            _set(msg, SmsStatus.PENDING, now, claimed_by=None, claimed_at=None)   # never left: send it
        else:
            _set(msg, SmsStatus.UNKNOWN, now, error_message="the worker stopped while sending")
    db.flush()
    unknown = db.scalars(select(SmsMessage).where(SmsMessage.status == SmsStatus.UNKNOWN)
                         .options(joinedload(SmsMessage.patient).joinedload(Patient.contact))
                         .order_by(SmsMessage.status_at).limit(limit)).all()
    for msg in unknown:
        contact = msg.patient.contact
        if contact is None or contact.phone_ciphertext is None or msg.body_sha256 is None:
            _set(msg, SmsStatus.FAILED, now, error_message="outcome unknown and the number is gone")
            continue
        try:
            phone = vault.decrypt(contact.phone_ciphertext)
        except ValueError:                   # a lost phone key: it cannot be looked up, and is never resent
            _set(msg, SmsStatus.FAILED, now, error_message="outcome unknown and the number unreadable (phone key)")
            continue
        if msg.channel == "voice":           # a call: any call to the number since this try was claimed
            found: Found | None = gateway.find_call(phone, (msg.claimed_at or msg.status_at) - settings.claim_lease)
        else:
            found = gateway.find(phone, msg.body_sha256)
        if found is not None:
            r.found += 1
            if not apply_provider_status(db, msg, found.sid, found.provider_status, found.error_code, now):
                msg.provider_sid = msg.provider_sid or found.sid
                _set(msg, SmsStatus.ACCEPTED, now, provider_status=found.provider_status)
        elif now - msg.status_at >= settings.unknown_grace:
            if msg.attempts >= settings.max_attempts:
                _set(msg, SmsStatus.FAILED, now, error_message="no answer from the gateway; not found there")
            else:
                r.resent += 1
                _set(msg, SmsStatus.PENDING, now, due_at=now, claimed_by=None, claimed_at=None)
    db.flush()
    quiet = db.scalars(select(SmsMessage).where(SmsMessage.status.in_((SmsStatus.ACCEPTED, SmsStatus.SENT)),
                                                SmsMessage.provider_sid.is_not(None),
                                                SmsMessage.status_at < now - settings.poll_after,
                                                SmsMessage.submitted_at > now - timedelta(days=3))
                       .order_by(SmsMessage.status_at).limit(limit)).all()
    for msg in quiet:
        found = gateway.fetch(msg.provider_sid or "")
        r.polled += 1
        if found is None or not apply_provider_status(db, msg, found.sid, found.provider_status,
                                                      found.error_code, now):
            msg.status_at = now            # asked; ask again later rather than on every pass
    db.flush()
    return r


def renew_claim(connection: Any, message_id: int, worker: str, now: datetime) -> bool:
    """Right before the request leaves: confirm this worker still holds the claim, and restart its lease.
    False means the claim was given up (the worker was presumed dead): the SMS must not be sent by it."""
    return connection.execute(
        update(SmsMessage).where(SmsMessage.id == message_id, SmsMessage.status == SmsStatus.SENDING,
                                 SmsMessage.claimed_by == worker)
        .values(claimed_at=now).returning(SmsMessage.id)).first() is not None


def reserve_slot(connection: Any, sender: str, rate_per_second: int, now_us: int) -> int:
    """The instant (µs since the epoch) this send may leave, so that all workers together keep to the rate.
    ``connection`` must commit right after (a short transaction of its own)."""
    step = 1_000_000 // rate_per_second
    insert = dialect_insert(connection.dialect.name)
    connection.execute(insert(SendSlot).values(sender=sender, next_us=now_us)
                       .on_conflict_do_nothing(index_elements=["sender"]))
    next_us = connection.execute(
        update(SendSlot).where(SendSlot.sender == sender)
        .values(next_us=case((SendSlot.next_us > now_us, SendSlot.next_us), else_=now_us) + step)
        .returning(SendSlot.next_us)).scalar_one()
    return next_us - step


# Stopping what waits -------------------------------------------------------------------------------------

def cancel_waiting(db: Session, patient_id: int, why: str, now: datetime) -> int:
    done = db.execute(update(SmsMessage).where(SmsMessage.patient_id == patient_id,
                                               SmsMessage.status.in_(WAITING))
                      .values(status=SmsStatus.CANCELLED, cancel_reason=why, status_at=now)
                      .returning(SmsMessage.id, SmsMessage.patient_id)).all()
    _audit_sms(db, [tuple(r) for r in done], SmsStatus.PENDING.value, SmsStatus.CANCELLED.value, now,
               cancel_reason=why)
    return len(done)


def _on_sms_must_stop(patient_id: int, *, db: Session, why: str, now: datetime) -> None:
    cancel_waiting(db, patient_id, why, now)


def follow_moved_visits(db: Session, catalog: StudyCatalog, moved: list[int], now: datetime) -> None:
    """The SMS of visits whose window a reschedule moved: never one twice, none lost.

    - a visit whose window is open now and whose invitation has gone keeps it (the patient has its link): its
      reminders waiting to go are set to their day in the new window, or cancelled when the new window has none;
    - any other visit with SMS: what waits is cancelled ("rescheduled") and its SMS start a new round, so the worker
      queues a new invitation (and its reminders) when the new window opens, as for any visit.
    """

    if not moved:
        return
    visits = db.scalars(select(Occurrence).where(Occurrence.id.in_(moved))
                        .options(joinedload(Occurrence.patient).joinedload(Patient.study))).all()
    for occ in visits:
        rows = list(db.scalars(select(SmsMessage).where(SmsMessage.occurrence_id == occ.id,
                                                        SmsMessage.round == occ.sms_round)
                               .order_by(SmsMessage.id)))
        if not rows:
            continue
        invitation = next((m for m in rows if m.kind == INVITATION), None)
        gone = invitation is not None and invitation.status not in (SmsStatus.PENDING, SmsStatus.CANCELLED)
        waiting = [m for m in rows if m.status in WAITING]
        patient = occ.patient
        if gone and occ.window_opens_at <= now < occ.window_closes_at:
            assert invitation is not None
            try:
                rules = [(r.after_invitation_days, r.last_day) for r in catalog.get(patient.study.code).sms.reminders]
            except KeyError:
                rules = []
            invited_on = local_day(invitation.submitted_at or invitation.status_at, patient.timezone)
            days = dict(reminder_days(invited_on, occ.window_closes_on, rules))
            for m in waiting:
                if not m.kind.startswith("reminder_"):
                    continue                          # a staff resend goes as asked
                day = days.get(int(m.kind.removeprefix("reminder_")))
                if day is None:
                    _set(m, SmsStatus.CANCELLED, now, cancel_reason="rescheduled")
                    continue
                due = max(local_instant(day, patient.sms_hour, patient.timezone), now)
                if due != m.due_at:
                    record(db, actor="system:sms", action="sms.rescheduled", entity="sms_message", entity_id=m.id,
                           patient_id=m.patient_id, old={"due_at": m.due_at.isoformat()},
                           new={"due_at": due.isoformat()}, at=now)
                    m.due_at = due
            continue
        for m in waiting:
            _set(m, SmsStatus.CANCELLED, now, cancel_reason="rescheduled")
        occurrences.new_sms_round(db, occ, now=now)
    db.flush()


def _on_visits_moved(patient_id: int, *, db: Session, moved: list[int], now: datetime) -> None:

    follow_moved_visits(db, runtime.studies(), moved, now)


def connect_signals() -> None:
    """Listen to the patients feature (a pause, an opt-out, a withdrawal, an erased number; visits moved)."""

    sms_must_stop.connect(_on_sms_must_stop)
    visits_moved.connect(_on_visits_moved)


def longest_sms(settings: SmsSettings) -> tuple[str, int | None]:
    """The longest text this configuration can send, and its GSM-7 length (None: not GSM-7)."""
    return smstext.longest_text(settings.public_url, settings.sender_name, len(secrets.token_urlsafe(TOKEN_BYTES)))


def text_problems(app: Flask) -> list[str]:
    """SMS set-up problems that can be known without sending anything."""
    out = []
    settings = SmsSettings.from_config(app.config)
    with app.app_context():
        text, length = longest_sms(settings)
    if length is None:
        out.append(f"an SMS text is not GSM-7 and would be split into 70-character segments: {text!r}")
    elif length > 160:
        out.append(f"the longest SMS is {length} characters (more than one 160-character segment): "
                   "shorten PROAPP_PUBLIC_URL or PROAPP_SMS_SENDER_NAME")
    return out


def waiting_messages(db: Session, limit: int = 200) -> list[Any]:
    """SMS waiting for their time, soonest first (the development outbox page)."""
    return list(db.execute(select(SmsMessage.kind, SmsMessage.due_at, SmsMessage.status, SmsMessage.patient_id)
                           .where(SmsMessage.status.in_(WAITING)).order_by(SmsMessage.due_at).limit(limit)))
