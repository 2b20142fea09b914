"""SMS conversations: a visit's questions answered by SMS replies, one question per message.

The opener (the invitation or a reminder of a patient whose answer channel is "sms", for a visit the study allows
by SMS: ``sms.delivery.prepare``) says "Reply 1 to answer by SMS, or open <link>". A reply "1" starts the
conversation; each reply is read by the conversation engine (``remote.conversation.read_reply``) and stored at
once (``answer(..., mode="sms")``: audit, save-time alerts, exports as for the web). A reply it cannot read is
asked again, three times at most, then the link is sent. An urgent or same-day alert newly raised by an answer is
told in its own SMS before the next question. The last answer completes the visit and a thank-you is sent.

Every message we send is a row of the one SMS outbox (kind ``reply_<n>`` on the visit's occurrence), sent by the
worker's send loop: rate-limited, delivery reports, exactly once. Nothing is answered inline in TwiML.

What the outbox needs to compose a message is kept in the conversation's state, under ``out``, by kind:
``{"text": ...}`` for a question, a re-ask or the thank-you (the instrument's wording and the app's texts: no
answer, no token in it), ``{"link": <text kind>}`` for a message with the visit's link (issued when it is sent,
so the token is never stored), ``{"safety": [first, last]}`` for the advice about the alerts raised (recomputed
from the alerts when it is sent, so no answer is copied into the state).

Keywords (the whole reply, any case, accents ignored): STOP, ARRET, STOPALL, UNSUBSCRIBE, CANCEL, END, QUIT: the
patient's opt-out (Twilio confirms it; we send nothing). LIEN / LINK: this visit by link. WEB: this visit and the
next ones by link. SMS: the next ones by SMS (and this one, when the study allows it).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import phonenumbers
from flask import current_app
from flask_babel import force_locale
from flask_babel import gettext as _
from sqlalchemy import select
from sqlalchemy.orm import Session

from proapp import runtime
from proapp.alerts.raising import raised_telling_patient
from proapp.audit.trail import record
from proapp.instruments import Registry
from proapp.patients import preferences
from proapp.patients.models import Occurrence, OccurrenceStatus, Patient, PatientContact, PatientStatus
from proapp.questionnaire import answering
from proapp.remote import conversation as conv
from proapp.remote.models import Conversation, ConversationStatus
from proapp.sms import delivery
from proapp.sms import text as smstext
from proapp.sms.models import SmsMessage
from proapp.sms.timing import QuietHours, allowed_at
from proapp.studies.catalog import StudyCatalog

log = logging.getLogger("proapp.sms")

CHANNEL = "sms"
MODE = "sms"
ACTOR = "patient:sms"
STOP_WORDS = frozenset({"stop", "arret", "stopall", "unsubscribe", "cancel", "end", "quit"})
LINK_WORDS = frozenset({"lien", "link"})
START_WORDS = frozenset({"1", "oui", "yes", "o", "y", "ok"})
MAX_TRIES = 3                      # replies it cannot read before the link is sent instead
SEEN_KEPT = 100                    # the MessageSids remembered per conversation (a webhook delivered twice)
LINK_MARGIN = timedelta(hours=1)   # a conversation times out at the latest this long before the window closes
LIVE = (ConversationStatus.OPEN.value,)
# The next question waits this long after the safety advice: the worker sends a batch's SMS in parallel, and the
# network does not keep their order either; the advice must arrive first.
AFTER_ADVICE = timedelta(seconds=10)


# Finding who writes -----------------------------------------------------------------------------------------------

def contact_for(db: Session, lookup: str) -> PatientContact | None:
    """The contact of the patient followed with this number (its keyed hash), locked until the commit, so two
    replies of one patient are handled one after the other. Two patients sharing a phone: the one in a
    conversation, else the one sent an SMS last."""
    contacts = db.scalars(select(PatientContact).join(Patient, Patient.id == PatientContact.patient_id)
                          .where(PatientContact.phone_lookup == lookup, Patient.status == PatientStatus.ACTIVE)
                          .order_by(PatientContact.patient_id).with_for_update(of=PatientContact)).all()
    if len(contacts) <= 1:
        return contacts[0] if contacts else None
    ids = [c.patient_id for c in contacts]
    talking = db.scalar(select(Conversation.patient_id).where(Conversation.patient_id.in_(ids),
                                                               Conversation.channel == CHANNEL,
                                                               Conversation.status.in_(LIVE))
                        .order_by(Conversation.last_activity_at.desc()).limit(1))
    latest = talking or db.scalar(select(SmsMessage.patient_id).where(SmsMessage.patient_id.in_(ids),
                                                                      SmsMessage.submitted_at.is_not(None))
                                  .order_by(SmsMessage.submitted_at.desc()).limit(1))
    return next((c for c in contacts if c.patient_id == latest), contacts[0])


def _word(body: str) -> str:
    """The reply as a keyword: lower case, accents and punctuation gone ("Arrêt !" -> "arret")."""
    return conv._no_accents(conv._plain(body)).replace(" ", "")


# The webhook's work ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Context:
    """What a reply needs besides the database: the definitions and the app's clock reading."""

    registry: Registry
    studies: StudyCatalog
    now: datetime


def receive(db: Session, contact: PatientContact, body: str, sid: str, ctx: Context) -> str:
    """Handle one incoming SMS of a known patient. Returns what it did (for the tests and the logs): "duplicate",
    "stopped", "link", "web", "sms", "not_by_sms", "started", "answered", "reasked", "to_web", "completed",
    "closed" or "ignored". Only flushes; the caller commits."""
    now = ctx.now
    patient = db.get(Patient, contact.patient_id)
    assert patient is not None
    conversations = list(db.scalars(select(Conversation).where(Conversation.patient_id == patient.id,
                                                               Conversation.channel == CHANNEL)
                                    .order_by(Conversation.id.desc()).limit(20)))
    if sid and any(sid in ((c.state or {}).get("seen") or ()) for c in conversations):
        return "duplicate"
    word = _word(body)
    live = next((c for c in conversations if c.status in LIVE), None)
    occ = (db.get(Occurrence, live.occurrence_id) if live is not None
           else answering.open_occurrence_for(db, patient, now))
    current = live or (next((c for c in conversations if c.occurrence_id == occ.id), None) if occ else None)

    if word in STOP_WORDS:
        preferences.opt_out(db, contact, now, ACTOR)      # sms_must_stop: what waits is cancelled
        if live is not None:
            _end(db, live, ConversationStatus.STOPPED, now, "stop")
        _seen(current, sid)
        return "stopped"
    if contact.opted_out_at is not None or contact.sms_paused_at is not None:
        return "ignored"          # no SMS may go to the patient: nothing is read (the team resumes them in person)
    if occ is None:
        if word == "web":
            _switch(db, patient, "web", now)
            return "web"
        return "ignored"
    if word in LINK_WORDS:
        c = current or _new(db, patient, occ, now, ConversationStatus.TO_WEB)
        if c.status in LIVE:
            _end(db, c, ConversationStatus.TO_WEB, now, "link")
        _queue(db, c, occ, {"link": "conversation_link"}, now)
        _seen(c, sid)
        return "link"
    if word == "web":
        _switch(db, patient, "web", now)
        if live is not None:
            _end(db, live, ConversationStatus.TO_WEB, now, "web")
            _queue(db, live, occ, {"link": "conversation_link"}, now)
        _seen(current, sid)
        return "web"
    if word == "sms":
        return _to_sms(db, patient, occ, current, sid, ctx)
    if live is not None:
        return _reply(db, live, occ, body, sid, ctx)
    if word in START_WORDS and _may_start(db, occ, current):
        c = current or _new(db, patient, occ, now, ConversationStatus.OPEN)
        _reopen(db, c, now)
        _seen(c, sid)
        return _ask(db, c, occ, ctx) or "started"
    return "ignored"


def _may_start(db: Session, occ: Occurrence, current: Conversation | None) -> bool:
    """A "1" starts a conversation in reply to an opener of this visit, takes up one that timed out, or one that
    ended otherwise (the link asked for, STOP then SMS resumed by the team) when an opener was sent since."""
    if current is not None and current.status == ConversationStatus.TIMED_OUT.value:
        return True
    if current is not None and current.status not in (ConversationStatus.TO_WEB.value,
                                                      ConversationStatus.STOPPED.value):
        return False
    opener = select(SmsMessage.id).where(SmsMessage.occurrence_id == occ.id, SmsMessage.round == occ.sms_round,
                                         SmsMessage.channel == "sms_replies",
                                         SmsMessage.kind.not_like(f"{delivery.REPLY}%"),
                                         SmsMessage.submitted_at.is_not(None))
    if current is not None and current.ended_at is not None:
        opener = opener.where(SmsMessage.submitted_at > current.ended_at)
    return db.scalar(opener.limit(1)) is not None


def _to_sms(db: Session, patient: Patient, occ: Occurrence, current: Conversation | None, sid: str,
            ctx: Context) -> str:
    """"SMS" in reply to a link: SMS conversations from now on, this visit included, when the study allows the
    visit by SMS; else the patient is told this questionnaire is on the web page only."""
    vq = conv.load_visit(db.connection(), occ.id, MODE, ctx.registry, ctx.studies)
    if vq is None:
        c = current or _new(db, patient, occ, ctx.now, ConversationStatus.TO_WEB)
        _queue(db, c, occ, {"text": smstext.conversation("not_by_sms", c.language, sender=_sender())}, ctx.now)
        _seen(c, sid)
        return "not_by_sms"
    _switch(db, patient, "sms", ctx.now)
    if current is not None and current.status == ConversationStatus.COMPLETED.value:
        _seen(current, sid)
        return "sms"
    c = current or _new(db, patient, occ, ctx.now, ConversationStatus.OPEN)
    if c.status not in LIVE:
        _reopen(db, c, ctx.now)
    _seen(c, sid)
    _ask(db, c, occ, ctx)
    return "sms"


def _reply(db: Session, c: Conversation, occ: Occurrence, body: str, sid: str, ctx: Context) -> str:
    now = ctx.now
    _seen(c, sid)
    c.last_activity_at = now
    vq = conv.load_visit(db.connection(), occ.id, MODE, ctx.registry, ctx.studies, for_writing=True)
    if vq is None or not vq.visit.accepts_answers(now):
        _end(db, c, ConversationStatus.STOPPED, now, "closed")
        return "closed"
    prompt = conv.next_prompt(vq, c.language, now)
    state = dict(c.state or {})
    if prompt is None or prompt.key != state.get("asked"):
        # Answered on the web page meanwhile: this reply is not an answer to what is asked now.
        return _ask(db, c, occ, ctx, vq) or "answered"
    value = conv.read_reply(prompt, body, conv.today_of(vq, now))
    errors = (conv.answer(db, vq, prompt, value, language=c.language, now=now, mode=MODE)
              if value is not None else None)
    if value is None or errors:
        tries = int(state.get("tries", 0)) + 1
        _state(c, tries=tries)
        if tries >= MAX_TRIES:
            _end(db, c, ConversationStatus.TO_WEB, now, "not_understood")
            _queue(db, c, occ, {"link": "conversation_link"}, now)
            return "to_web"
        _queue(db, c, occ, {"text": reask(prompt, c.language)}, now)
        return "reasked"
    _state(c, tries=0, answered=int(state.get("answered", 0)) + 1)
    told = _tell_alerts(db, c, occ, ctx)
    return _ask(db, c, occ, ctx, after=AFTER_ADVICE if told else None) or "answered"


def _tell_alerts(db: Session, c: Conversation, occ: Occurrence, ctx: Context) -> bool:
    """An urgent or same-day alert newly raised for the visit is told at once, in its own SMS. Returns whether."""
    rules = ctx.studies.get(occ.patient.study.code).alerts.rules
    raised = len(raised_telling_patient(db.connection(), occ.id, rules))
    told = int((c.state or {}).get("told", 0))
    if raised > told:
        _queue(db, c, occ, {"safety": [told, raised]}, ctx.now)
        _state(c, told=raised)
        return True
    return False


def _ask(db: Session, c: Conversation, occ: Occurrence, ctx: Context,
         vq: answering.VisitQuestionnaire | None = None, after: timedelta | None = None) -> str | None:
    """The next question, or the visit completed and thanked when every one is answered."""
    now = ctx.now
    vq = vq or conv.load_visit(db.connection(), occ.id, MODE, ctx.registry, ctx.studies, for_writing=True)
    if vq is None or not vq.visit.accepts_answers(now):
        _end(db, c, ConversationStatus.STOPPED, now, "closed")
        return "closed"
    prompt = conv.next_prompt(vq, c.language, now)
    if prompt is None:
        if not conv.finish(db, vq, language=c.language, now=now):
            _end(db, c, ConversationStatus.STOPPED, now, "not_completed")
            return "closed"
        _end(db, c, ConversationStatus.COMPLETED, now, "completed")
        _queue(db, c, occ, {"text": smstext.conversation("thanks", c.language, sender=_sender())}, now,
               due=now + after if after else None)
        return "completed"
    _state(c, asked=prompt.key, tries=0)
    _queue(db, c, occ, {"text": question(prompt, c.language)}, now, due=now + after if after else None)
    return None


# The texts ------------------------------------------------------------------------------------------------------

def question(prompt: conv.Prompt, language: str) -> str:
    """One question as one SMS: the instrument's title and instructions before its first question, the ulcer it is
    about, the question, and how to answer ("1 Oui / 2 Non", "Reply with a number from 0 to 10")."""
    lines = [x for x in (prompt.title, prompt.instructions, prompt.heading) if x]
    lines.append(prompt.text)
    if prompt.days_ago_max is not None:
        lines.append(smstext.conversation("days_ago", language))
    elif _numeric(prompt):
        lines.append(smstext.conversation("number_scale", language, low=prompt.choices[0].key,
                                          high=prompt.choices[-1].key))
    else:
        lines.append(" / ".join(f"{c.key} {c.label}" for c in prompt.choices))
    return "\n".join(lines)


def reask(prompt: conv.Prompt, language: str) -> str:
    """"Sorry, I did not understand. Reply 1 or 2." (or a number in range)."""
    if prompt.days_ago_max is not None:
        return smstext.conversation("not_understood_days", language, high=prompt.days_ago_max)
    if _numeric(prompt):
        return smstext.conversation("not_understood_number", language, low=prompt.choices[0].key,
                                    high=prompt.choices[-1].key)
    keys = [c.key for c in prompt.choices]
    with force_locale(language):
        joined = ", ".join(keys[:-1]) + _(" or ") + keys[-1] if len(keys) > 1 else keys[0]
    return smstext.conversation("not_understood_choice", language, keys=joined)


def _numeric(prompt: conv.Prompt) -> bool:
    return len(prompt.choices) > 2 and all(c.key == c.value and c.value.isdigit() for c in prompt.choices)


def safety_text(conn: Any, occ: Occurrence, studies: StudyCatalog, language: str, first: int, last: int) -> str:
    """What the patient is told at once after an answer meeting an urgent or same-day rule: the rule's patient
    wording, to call the study team now (or today) on the site's number, the emergency numbers (as the web's
    _call.html and _emergency.html say)."""
    alerts = studies.get(occ.patient.study.code).alerts
    raised = raised_telling_patient(conn, occ.id, alerts.rules)[first:last]
    urgent = any(severity == "urgent" for _label, severity in raised)
    site = answering.site_contact(conn, occ.patient.site_id)
    phone = site.phone if site is not None else None
    with force_locale(language):
        parts = [label.get(language) or label.get("en", "") for label, _severity in raised]
        call = _("Please call your study team now") if urgent else _("Please call your study team today")
        parts.append(f"{call}: {_national(phone)}." if phone else f"{call}.")
        parts.append(_("In an emergency, call %(numbers)s.", numbers=_(" or ").join(alerts.emergency_numbers)))
        if alerts.emergency_text_number:
            parts.append(_("If you are deaf, hard of hearing or cannot speak, send a text message to %(number)s.",
                           number=alerts.emergency_text_number))
    return " ".join(parts)


def _national(phone: str) -> str:
    try:
        return phonenumbers.format_number(phonenumbers.parse(phone), phonenumbers.PhoneNumberFormat.NATIONAL)
    except phonenumbers.NumberParseException:
        return phone


def _sender() -> str:
    return current_app.config["SMS_SENDER_NAME"]


# What the outbox asks -------------------------------------------------------------------------------------------

def compose(db: Session, msg: SmsMessage, *, now: datetime, sender: str, link: Callable[[], str]) -> str | None:
    """The body of a conversation's message when the worker sends it (registered with the SMS outbox by the app
    factory): its text, a link text with a fresh link, or the safety advice recomputed from the alerts raised."""
    c = db.scalar(select(Conversation).where(Conversation.occurrence_id == msg.occurrence_id,
                                             Conversation.channel == CHANNEL).order_by(Conversation.id.desc())
                  .limit(1))
    entry = ((c.state or {}).get("out") or {}).get(msg.kind) if c is not None else None
    if c is None or entry is None:
        return None
    if "text" in entry:
        return str(entry["text"])
    occ = msg.occurrence
    if "link" in entry:
        return smstext.compose(entry["link"], c.language, sender=sender, link=link(), last_day=occ.window_closes_on)
    if "safety" in entry:
        first, last = entry["safety"]
        return safety_text(db.connection(), occ, runtime.studies(), c.language, first, last)
    return None


def busy(db: Session, occurrence_id: int) -> bool:
    """Whether a conversation about this visit waits for the patient's reply (its reminders are not sent)."""
    return db.scalar(select(Conversation.id).where(Conversation.occurrence_id == occurrence_id,
                                                   Conversation.channel == CHANNEL,
                                                   Conversation.status.in_(LIVE)).limit(1)) is not None


# Time out -------------------------------------------------------------------------------------------------------

def time_out(db: Session, now: datetime, timeout: timedelta, quiet: QuietHours, limit: int = 200) -> int:
    """Conversations without a reply for ``timeout`` (and at the latest an hour before the window closes) end: the
    link is sent (at the patient's hour outside the quiet hours), the answers given are kept and the web page
    continues from them. A window already closed ends its conversation with nothing sent."""
    rows = db.execute(select(Conversation, Occurrence).join(Occurrence, Occurrence.id == Conversation.occurrence_id)
                      .where(Conversation.channel == CHANNEL, Conversation.status.in_(LIVE),
                             (Conversation.last_activity_at <= now - timeout)
                             | (Occurrence.window_closes_at <= now + LINK_MARGIN))
                      .order_by(Conversation.id).limit(limit).with_for_update(of=Conversation, skip_locked=True)).all()
    ended = 0
    for c, occ in rows:
        ended += 1
        if occ.status != OccurrenceStatus.SCHEDULED or now >= occ.window_closes_at:
            _end(db, c, ConversationStatus.STOPPED, now, "closed")
            continue
        _end(db, c, ConversationStatus.TIMED_OUT, now, "timed_out")
        patient = occ.patient
        due = allowed_at(now, patient.timezone, patient.sms_hour, quiet)
        if due < occ.window_closes_at:
            _queue(db, c, occ, {"link": "timeout_link"}, now, due=due)
    db.flush()
    return ended


# The conversation's row -----------------------------------------------------------------------------------------

def _new(db: Session, patient: Patient, occ: Occurrence, now: datetime, status: ConversationStatus) -> Conversation:
    c = Conversation(occurrence_id=occ.id, patient_id=patient.id, channel=CHANNEL, status=status.value,
                     language=patient.language, state={"out": {}, "seen": []}, started_at=now,
                     last_activity_at=now, ended_at=None if status in (ConversationStatus.OPEN,) else now)
    db.add(c)
    db.flush()
    record(db, actor=ACTOR, action="conversation.started", entity="conversation", entity_id=c.id,
           patient_id=patient.id, new={"status": c.status, "channel": CHANNEL, "occurrence_id": occ.id}, at=now)
    return c


def _reopen(db: Session, c: Conversation, now: datetime) -> None:
    if c.status in LIVE:
        return
    _set_status(db, c, ConversationStatus.OPEN, now, "reply")
    c.ended_at = None
    c.last_activity_at = now
    _state(c, tries=0)


def _end(db: Session, c: Conversation, status: ConversationStatus, now: datetime, why: str) -> None:
    _set_status(db, c, status, now, why)
    c.ended_at = now


def _set_status(db: Session, c: Conversation, status: ConversationStatus, now: datetime, why: str) -> None:
    if c.status == status.value:
        return
    old, c.status = c.status, status.value
    record(db, actor=ACTOR if why in ("stop", "link", "web", "reply", "sms") else "system:sms",
           action="conversation.status", entity="conversation", entity_id=c.id, patient_id=c.patient_id,
           old={"status": old}, new={"status": status.value, "why": why}, at=now)


def _state(c: Conversation, **values: Any) -> None:
    """The JSON column is replaced, never changed in place (SQLAlchemy sees the change)."""
    c.state = {**(c.state or {}), **values}


def _seen(c: Conversation | None, sid: str) -> None:
    if c is None or not sid:
        return
    seen = list((c.state or {}).get("seen") or [])
    if sid not in seen:
        _state(c, seen=[*seen, sid][-SEEN_KEPT:])


def _queue(db: Session, c: Conversation, occ: Occurrence, entry: dict[str, Any], now: datetime,
           due: datetime | None = None) -> str | None:
    """One message of the conversation into the outbox; what composes it into the conversation's state."""
    kind = delivery.queue_reply(db, occ.id, c.patient_id, occ.sms_round, now, due)
    if kind is not None:
        _state(c, out={**((c.state or {}).get("out") or {}), kind: entry})
    db.flush()
    return kind


def _switch(db: Session, patient: Patient, channel: str, now: datetime) -> bool:
    """The patient's answer channel changed by a reply ("WEB", "SMS"): a PatientEvent and its audit entry."""
    if patient.answer_channel == channel:
        return False
    old, patient.answer_channel, patient.updated_at = patient.answer_channel, channel, now
    preferences.record_event(db, patient.id, now, ACTOR, "answer_channel_changed",
                             details={"old": old, "new": channel})
    db.flush()
    return True

