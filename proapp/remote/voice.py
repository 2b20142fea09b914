"""A visit's questions asked by a voice call: the state machine behind Twilio's webhooks, as plain functions.

The worker places the call (``sms.delivery.prepare`` makes the outbox row a call, the Twilio gateway calls
``calls.create``); Twilio then posts the answer webhook (`answered`), each ``<Gather>``'s result (`step`) and the
call's end (`call_ended`). Each function takes the locked outbox row's id, what Twilio posted and ``now``, changes
the `Conversation` row (one per visit by voice, kept open until the visit is completed so that a dropped call
resumes) and returns a `Turn`: what to say, then what to gather, whom to dial, or hang up. `twiml` renders a turn
with the ``twilio`` package's builder.

The questions are the conversation engine's (``remote.conversation``). Answers are held in the conversation's
state until the patient confirms them, one questionnaire at a time (read back, then stored with ``store_held``),
except an answer that meets an urgent or same-day rule: confirmed on its own and stored at once, so the team's
alert is raised even if the call drops, and the patient is told to call their team (and offered to be connected).
The audit trail records the call's sid and its events, never audio.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from flask_babel import force_locale
from flask_babel import gettext as _
from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash

from proapp.alerts.raising import rules_telling_patient
from proapp.audit.trail import record
from proapp.instruments import Registry
from proapp.patients.models import OccurrenceStatus, PatientStatus
from proapp.questionnaire.answering import VisitQuestionnaire, site_contact
from proapp.remote import conversation as engine
from proapp.remote.models import Conversation, ConversationStatus
from proapp.sms import delivery
from proapp.sms.models import SmsMessage
from proapp.studies.catalog import StudyCatalog

log = logging.getLogger("proapp.voice")

SAY_LANGUAGE = {"fr": "fr-FR", "en": "en-GB"}
CONFIDENCE = 0.6          # speech heard with less confidence is read back: "Did you say ...?"
TRIES = 3                 # unreadable replies to one question before the call offers the link by SMS
PIN_TRIES = 3
ACTOR = "system:voice"
_YES = {"1", "yes", "yeah", "oui", "ouais", "o", "y", "exactly", "exactement", "d'accord", "ok"}
_NO = {"2", "no", "non", "n", "nope"}


@dataclass(frozen=True)
class Context:
    registry: Registry
    studies: StudyCatalog
    sender_name: str                      # the name the SMS open with: the only name a call gives


@dataclass(frozen=True)
class Reply:
    """What Twilio posted: the call's sid, and the keys pressed or the words heard (with their confidence)."""

    call_sid: str
    digits: str | None = None
    speech: str | None = None
    confidence: float | None = None
    answered_by: str | None = None


@dataclass(frozen=True)
class Gather:
    kind: str                             # "pin", "question" (keys or speech), "yes_no"
    hints: tuple[str, ...] = ()
    two_digits: bool = False              # the answer ends with # (0-10, days ago)


@dataclass
class Turn:
    language: str
    say: list[str] = field(default_factory=list)
    gather: Gather | None = None
    dial: str | None = None
    hangup: bool = False


# What Twilio posts --------------------------------------------------------------------------------------------

def answered(db: Session, ctx: Context, message_id: int, reply: Reply, now: datetime) -> Turn | None:
    """The call was answered (the answer webhook): a machine gets a neutral message; a person is asked their PIN.
    None: no such call (the route answers 404)."""
    msg = delivery.locked(db, message_id)
    if msg is None or msg.channel != "voice":
        return None
    patient = msg.patient
    lang = patient.language if patient.language in SAY_LANGUAGE else "fr"
    if msg.provider_sid is None:          # Twilio may ask before the worker has recorded the call's sid
        msg.provider_sid = reply.call_sid
    elif msg.provider_sid != reply.call_sid:
        return None
    if (reply.answered_by or "") in delivery.MACHINE:
        msg.provider_status = delivery.ANSWERED_BY_MACHINE     # the call's end says "completed" (maybe without it)
        _audit(db, msg, None, "voice.machine", {"answered_by": reply.answered_by}, now)
        return Turn(lang, [_t(lang, "This is %(sender)s for your questionnaire. We will call again; you can also "
                                    "answer on the link we send by SMS.", sender=ctx.sender_name)], hangup=True)
    conv = _open_conversation(db, msg, lang, reply.call_sid, now)
    closed = _closed(msg, now)
    if closed:
        return _stop(db, msg, conv, lang, closed, now)
    state = dict(conv.state or {})
    state.update({"step": "pin", "pin_tries": 0, "tries": 0, "call": reply.call_sid, "identified": False})
    conv.state = state
    _audit(db, msg, conv, "voice.answered", {"answered_by": reply.answered_by or "unknown",
                                              "resumed": bool(state.get("held"))}, now)
    return Turn(lang, [_t(lang, "Hello, this is %(sender)s for your questionnaire.", sender=ctx.sender_name),
                       _t(lang, "Please enter your PIN, followed by the hash key.")], gather=Gather("pin"))


def step(db: Session, ctx: Context, message_id: int, reply: Reply, now: datetime) -> Turn | None:
    """A ``<Gather>``'s result (or a ``<Dial>``'s end): the next turn of the call."""
    msg = delivery.locked(db, message_id)
    if msg is None or msg.channel != "voice":
        return None
    conv = db.scalar(select(Conversation).where(Conversation.occurrence_id == msg.occurrence_id,
                                                Conversation.channel == "voice",
                                                Conversation.provider_ref == reply.call_sid)
                     .order_by(Conversation.id.desc()).limit(1).with_for_update())
    if conv is None:
        return None
    lang = conv.language
    if conv.status != ConversationStatus.OPEN.value:
        return Turn(lang, [_t(lang, "Goodbye.")], hangup=True)
    closed = _closed(msg, now)
    if closed:
        return _stop(db, msg, conv, lang, closed, now)
    conv.last_activity_at = now
    state = copy.deepcopy(conv.state or {})
    call = _Call(db, ctx, msg, conv, state, lang, now)
    turn = call.handle(reply)
    conv.state = state
    return turn


def call_ended(db: Session, ctx: Context, message_id: int, call_sid: str, call_status: str,
               answered_by: str | None, now: datetime) -> bool:
    """The call's status callback: its outcome on the outbox row (answered = delivered; busy, no answer or a
    machine = undelivered), a call dropped mid-questions recorded (its conversation stays open with what it
    holds: the next call resumes it), and the link by SMS when no other call will come for an unanswered visit."""
    msg = delivery.locked(db, message_id)
    if msg is None or msg.channel != "voice":
        return False
    if not answered_by and msg.provider_status == delivery.ANSWERED_BY_MACHINE:
        answered_by = "machine_start"
    delivery.apply_call_status(db, msg, call_sid, call_status, answered_by, now)
    if call_status not in delivery.VOICE_FINAL:
        return True
    conv = db.scalar(select(Conversation).where(Conversation.occurrence_id == msg.occurrence_id,
                                                Conversation.channel == "voice",
                                                Conversation.provider_ref == call_sid).with_for_update())
    if conv is not None and conv.status == ConversationStatus.OPEN.value:
        state = dict(conv.state or {})
        dropped = state.get("identified") and state.get("step") not in ("gave_up", "identity_failed")
        _audit(db, msg, conv, "voice.dropped" if dropped else "voice.call_ended",
               {"step": state.get("step"), "held": len(state.get("held") or []), "status": call_status}, now)
    occ = msg.occurrence
    if occ.status == OccurrenceStatus.SCHEDULED and not delivery.later_call_due(db, msg, ctx.studies, now):
        delivery.queue_link_after_call(db, msg, now, "no call left" if conv is None or
                                       conv.status == ConversationStatus.OPEN.value else "call ended")
    db.flush()
    return True


# The call's turns ---------------------------------------------------------------------------------------------

class _Call:
    """One webhook's work on a conversation: ``state`` is changed in place (the caller stores it)."""

    def __init__(self, db: Session, ctx: Context, msg: SmsMessage, conv: Conversation, state: dict[str, Any],
                 lang: str, now: datetime):
        self.db, self.ctx, self.msg, self.conv, self.state, self.lang, self.now = db, ctx, msg, conv, state, lang, now
        self.state.setdefault("held", [])
        self.state.setdefault("told", [])
        self._vq: VisitQuestionnaire | None = None

    def t(self, text: str, **values: Any) -> str:
        return _t(self.lang, text, **values)

    def spoken(self, prompt: engine.Prompt, value: str) -> str:
        with force_locale(self.lang):
            return engine.spoken_value(prompt, value, self.lang)

    def handle(self, reply: Reply) -> Turn:
        handler = {"pin": self.pin, "question": self.question, "did_you_say": self.did_you_say,
                   "urgent": self.urgent, "connect": self.connect, "after_dial": self.after_dial,
                   "readback": self.readback}.get(self.state.get("step", ""))
        if handler is None:
            return Turn(self.lang, [self.t("Goodbye.")], hangup=True)
        return handler(reply)

    # The visit as the patient has answered it so far (stored answers, then the held ones).
    def visit(self, *, fresh: bool = False) -> VisitQuestionnaire | None:
        if self._vq is None or fresh:
            vq = engine.load_visit(self.db.connection(), self.msg.occurrence_id, "voice", self.ctx.registry,
                                   self.ctx.studies, for_writing=True)
            if vq is not None:
                engine.replay(vq, self.state["held"], self.lang, self.now)
            self._vq = vq
        return self._vq

    def stored_visit(self) -> VisitQuestionnaire | None:
        """The visit as stored, without the held answers (to store some)."""
        self._vq = None
        return engine.load_visit(self.db.connection(), self.msg.occurrence_id, "voice", self.ctx.registry,
                                 self.ctx.studies, for_writing=True)

    # Identity
    def pin(self, reply: Reply) -> Turn:
        digits = (reply.digits or "").strip().rstrip("#")
        pin_hash = self.msg.patient.contact.voice_pin_hash if self.msg.patient.contact else None
        if digits and pin_hash and check_password_hash(pin_hash, digits):
            self.state.update({"step": "question", "identified": True, "tries": 0})
            resumed = bool(self.state["held"]) or self._any_stored()
            _audit(self.db, self.msg, self.conv, "voice.identified", {"resumed": resumed}, self.now)
            return self.ask([self.t("Thank you. We continue where we stopped.") if resumed
                             else self.t("Thank you. Let us start.")])
        self.state["pin_tries"] = self.state.get("pin_tries", 0) + 1
        if self.state["pin_tries"] >= PIN_TRIES:
            self.state["step"] = "identity_failed"
            _audit(self.db, self.msg, self.conv, "voice.identity_failed", {"tries": self.state["pin_tries"]},
                   self.now)
            return Turn(self.lang, [self.t("Sorry, we could not check your PIN. Your study team can help you. "
                                           "Goodbye.")], hangup=True)
        return Turn(self.lang, [self.t("This PIN is not right."),
                                self.t("Please enter your PIN, followed by the hash key.")], gather=Gather("pin"))

    def _any_stored(self) -> bool:
        vq = self.visit()
        return vq is not None and any(vq.answers.get(inst.code) for inst in vq.instruments)

    # Questions
    def ask(self, before: list[str]) -> Turn:
        """The next question, or the read-back of a questionnaire whose questions are all answered."""
        vq = self.visit()
        if vq is None:
            return _stop(self.db, self.msg, self.conv, self.lang, "closed", self.now)
        prompt = engine.next_prompt(vq, self.lang, self.now)
        held = self.state["held"]
        if held and (prompt is None or prompt.screen.code != _instrument(held[0])):
            return self.read_back(before)
        if prompt is None:
            return self.complete(vq, before)
        if self.state.get("key") != prompt.key:
            self.state["tries"] = 0
        self.state.update({"step": "question", "key": prompt.key})
        star = self.state.get("star_told") != self.conv.provider_ref       # said once a call
        self.state["star_told"] = self.conv.provider_ref
        return Turn(self.lang, before + _question_texts(prompt, self.lang, star=star),
                    gather=Gather("question", tuple(c.label for c in prompt.choices), prompt.two_digit_keys))

    def current(self) -> engine.Prompt | None:
        vq = self.visit()
        prompt = engine.next_prompt(vq, self.lang, self.now) if vq is not None else None
        return prompt if prompt is not None and prompt.key == self.state.get("key") else None

    def question(self, reply: Reply) -> Turn:
        prompt = self.current()
        if prompt is None:
            return self.ask([])
        if reply.digits and "*" in reply.digits:
            return self.ask([])
        vq = self.visit()
        assert vq is not None
        today = engine.today_of(vq, self.now)
        value, mode = None, "voice_dtmf"
        if reply.digits:
            value = engine.read_reply(prompt, reply.digits.rstrip("#"), today)
        elif reply.speech:
            mode = "voice_speech"
            value = engine.read_reply(prompt, reply.speech, today)
            if value is not None and (reply.confidence if reply.confidence is not None else 1.0) < CONFIDENCE:
                self.state.update({"step": "did_you_say", "pending": {"key": prompt.key, "value": value,
                                                                      "mode": mode}})
                return Turn(self.lang, [self.t("Did you say: %(answer)s?",
                                               answer=self.spoken(prompt, value)),
                                        self.t("Press 1 for yes, 2 for no.")],
                            gather=Gather("yes_no", _hints(self.lang)))
        if value is None:
            self.state["tries"] = self.state.get("tries", 0) + 1
            if self.state["tries"] >= TRIES:
                return self.give_up()
            return self.ask([self.t("Sorry, I did not understand.")])
        return self.accept(prompt, value, mode)

    def did_you_say(self, reply: Reply) -> Turn:
        pending = self.state.get("pending") or {}
        yes = _yes_no(reply)
        prompt = self.current()
        if prompt is None or prompt.key != pending.get("key"):
            self.state.pop("pending", None)
            return self.ask([])
        if yes is None:
            return Turn(self.lang, [self.t("Press 1 for yes, 2 for no.")], gather=Gather("yes_no", _hints(self.lang)))
        self.state.pop("pending", None)
        if yes:
            return self.accept(prompt, pending["value"], pending["mode"])
        return self.ask([self.t("Let us try again.")])

    def accept(self, prompt: engine.Prompt, value: str, mode: str) -> Turn:
        vq = self.visit()
        assert vq is not None
        engine.hold(vq, prompt, value)
        self.state["held"].append({"key": prompt.key, "value": value, "mode": mode})
        self.state["tries"] = 0
        rules = self.ctx.studies.get(vq.visit.study_code).alerts.rules
        met = [r for r in rules_telling_patient(self.db.connection(), vq, rules, self.ctx.registry)
               if r.code not in self.state["told"]]
        if met:
            self.state.update({"step": "urgent", "urgent": [r.code for r in met]})
            return Turn(self.lang, [self.t("You answered: %(answer)s.",
                                           answer=self.spoken(prompt, value)),
                                    self.t("Press 1 to confirm this answer, 2 to change it.")],
                        gather=Gather("yes_no", _hints(self.lang)))
        return self.ask([])

    # Safety: an urgent or same-day answer is stored at once, and the patient told to call their team.
    def urgent(self, reply: Reply) -> Turn:
        yes = _yes_no(reply)
        entry = self.state["held"][-1] if self.state["held"] else None
        if yes is None or entry is None:
            return Turn(self.lang, [self.t("Press 1 to confirm this answer, 2 to change it.")],
                        gather=Gather("yes_no", _hints(self.lang)))
        if not yes:
            self.state["held"].pop()
            self.state.pop("urgent", None)
            self._vq = None
            return self.ask([self.t("Let us try again.")])
        vq = self.visit()
        assert vq is not None
        screen = next(s for s in vq.flow() if s.key == entry["key"])
        prompt = engine.prompt_for(vq, screen, self.lang, self.now)
        stored = self.stored_visit()
        if stored is None:
            return _stop(self.db, self.msg, self.conv, self.lang, "closed", self.now)
        errors = engine.answer(self.db, stored, prompt, entry["value"], language=self.lang, now=self.now,
                               mode=entry["mode"])
        if errors:
            log.warning("voice call %s: an urgent answer was refused: %s", self.conv.provider_ref, errors)
        entry["stored"] = True
        codes = list(self.state.pop("urgent", []))
        self.state["told"] = self.state["told"] + codes
        _audit(self.db, self.msg, self.conv, "voice.urgent_answer", {"rules": codes, "item": entry["key"]}, self.now)
        rules = {r.code: r for r in self.ctx.studies.get(stored.visit.study_code).alerts.rules}
        settings = self.ctx.studies.get(stored.visit.study_code).alerts
        said = [getattr(rules[c].patient, self.lang) for c in codes if c in rules and rules[c].patient]
        said.append(self.t("Please call your study team now."))
        with force_locale(self.lang):
            said.append(_("In an emergency, call %(numbers)s.",
                          numbers=_(" or ").join(settings.emergency_numbers)))
        phone = self._site_phone()
        if phone:
            self.state["step"] = "connect"
            said.append(self.t("To be connected to your study team now, press 1. To go on with the questions, "
                               "press 2."))
            return Turn(self.lang, said, gather=Gather("yes_no", _hints(self.lang)))
        said.append(self.t("We go on with the questions."))
        return self.ask(said)

    def _site_phone(self) -> str | None:
        contact = site_contact(self.db.connection(), self.msg.patient.site_id)
        return contact.phone if contact is not None and contact.phone else None

    def connect(self, reply: Reply) -> Turn:
        yes = _yes_no(reply)
        phone = self._site_phone()
        if yes and phone:
            self.state["step"] = "after_dial"
            _audit(self.db, self.msg, self.conv, "voice.connected_to_site", {}, self.now)
            return Turn(self.lang, [self.t("We connect you to your study team.")], dial=phone)
        return self.ask([self.t("We go on with the questions.")])

    def after_dial(self, reply: Reply) -> Turn:
        return self.ask([self.t("We go on with the questions.")])

    # Read-back, storage, completion
    def read_back(self, before: list[str]) -> Turn:
        vq = self.visit()
        assert vq is not None
        code = _instrument(self.state["held"][0])
        said = [self.t("You answered:")]
        flow = {s.key: s for s in vq.flow()}
        noes = 0
        for entry in self.state["held"]:
            if _instrument(entry) != code or entry["key"] not in flow:
                continue
            prompt = engine.prompt_for(vq, flow[entry["key"]], self.lang, self.now)
            if entry["value"] == "N" and prompt.item is not None:     # "No" is said once for them all
                noes += 1
                continue
            heading = f"{prompt.heading}. " if prompt.heading else ""
            said.append(f"{heading}{prompt.text} {self.spoken(prompt, entry['value'])}.")
        if noes:
            said.append(self.t("No to the other questions.") if len(said) > 1 else self.t("No to every question."))
        said.append(self.t("Press 1 to confirm, 2 to answer this questionnaire again."))
        self.state.update({"step": "readback", "readback": code})
        return Turn(self.lang, before + said, gather=Gather("yes_no", _hints(self.lang)))

    def readback(self, reply: Reply) -> Turn:
        yes = _yes_no(reply)
        code = self.state.get("readback")
        if yes is None or code is None:
            return self.read_back([])
        entries = [e for e in self.state["held"] if _instrument(e) == code]
        self.state["held"] = [e for e in self.state["held"] if _instrument(e) != code]
        self.state.pop("readback", None)
        if not yes:
            self._vq = None
            _audit(self.db, self.msg, self.conv, "voice.answer_again", {"instrument": code}, self.now)
            return self.ask([self.t("Let us answer this questionnaire again.")])
        stored = self.stored_visit()
        if stored is None:
            return _stop(self.db, self.msg, self.conv, self.lang, "closed", self.now)
        errors = engine.store_held(self.db, stored, entries, language=self.lang, now=self.now,
                                   modes={e["key"]: e["mode"] for e in entries})
        if errors:
            log.warning("voice call %s: held answers refused: %s", self.conv.provider_ref, errors)
        _audit(self.db, self.msg, self.conv, "voice.confirmed", {"instrument": code, "answers": len(entries)},
               self.now)
        self._vq = None
        return self.ask([self.t("Thank you, your answers are recorded.")])

    def complete(self, vq: VisitQuestionnaire, before: list[str]) -> Turn:
        stored = self.stored_visit()
        if stored is None or not engine.finish(self.db, stored, language=self.lang, now=self.now):
            return _stop(self.db, self.msg, self.conv, self.lang, "closed", self.now)
        self.conv.status, self.conv.ended_at = ConversationStatus.COMPLETED.value, self.now
        self.state["step"] = "completed"
        _audit(self.db, self.msg, self.conv, "voice.completed", {}, self.now)
        return Turn(self.lang, [*before, self.t("Your questionnaire is complete. Thank you, goodbye.")], hangup=True)

    def give_up(self) -> Turn:
        self.state["step"] = "gave_up"
        delivery.queue_link_after_call(self.db, self.msg, self.now, "not understood")
        _audit(self.db, self.msg, self.conv, "voice.not_understood", {"item": self.state.get("key")}, self.now)
        return Turn(self.lang, [self.t("Sorry, I could not understand your answer. We send you the link by SMS: you "
                                       "can answer on your phone. Goodbye.")], hangup=True)


# Helpers ----------------------------------------------------------------------------------------------------------

def _t(lang: str, text: str, **values: Any) -> str:
    with force_locale(lang):
        return _(text, **values)


def _hints(lang: str) -> tuple[str, ...]:
    return ("oui", "non") if lang == "fr" else ("yes", "no")


def _instrument(entry: dict[str, Any]) -> str:
    return entry["key"].split(".")[0]


def _yes_no(reply: Reply) -> bool | None:
    if reply.digits:
        first = reply.digits.strip().rstrip("#")[:1]
        return True if first == "1" else False if first == "2" else None
    words = (reply.speech or "").lower().replace(".", " ").replace("!", " ").replace(",", " ").split()
    if words and words[0] in _YES:
        return True
    if words and words[0] in _NO:
        return False
    return None


def _question_texts(prompt: engine.Prompt, lang: str, *, star: bool = True) -> list[str]:
    said = []
    if prompt.title:
        said.append(prompt.title)
    if prompt.instructions:
        said.append(prompt.instructions)
    said.append(f"{prompt.heading}. {prompt.text}" if prompt.heading else prompt.text)
    if prompt.days_ago_max is not None:
        said.append(_t(lang, "Press the number of days, then the hash key."))
    elif prompt.two_digit_keys:
        said.append(_t(lang, "Press a number from %(low)s to %(high)s, then the hash key.",
                       low=prompt.choices[0].key, high=prompt.choices[-1].key))
    else:
        said.extend(_t(lang, "For %(answer)s, press %(key)s.", answer=c.label, key=c.key) for c in prompt.choices)
    if star:
        said.append(_t(lang, "To hear the question again, press star."))
    return said


def _closed(msg: SmsMessage, now: datetime) -> str | None:
    occ, patient = msg.occurrence, msg.patient
    if patient.status != PatientStatus.ACTIVE:
        return "patient_not_active"
    if occ.status == OccurrenceStatus.COMPLETED:
        return "completed"
    if occ.status != OccurrenceStatus.SCHEDULED or now >= occ.window_closes_at:
        return "window_closed"
    return None


def _stop(db: Session, msg: SmsMessage, conv: Conversation | None, lang: str, why: str, now: datetime) -> Turn:
    """The visit can no longer be answered (window closed, patient withdrawn, already completed): the call says so
    and ends."""
    if conv is not None and conv.status == ConversationStatus.OPEN.value:
        conv.status, conv.ended_at = ConversationStatus.STOPPED.value, now
        _audit(db, msg, conv, "voice.stopped", {"why": why}, now)
    text = (_t(lang, "Your questionnaire is already complete. Thank you, goodbye.") if why == "completed"
            else _t(lang, "This questionnaire can no longer be answered. Thank you, goodbye."))
    return Turn(lang, [text], hangup=True)


def _open_conversation(db: Session, msg: SmsMessage, lang: str, call_sid: str, now: datetime) -> Conversation:
    """The visit's open voice conversation (a dropped call's, resumed) or a new one, now on this call."""
    conv = db.scalar(select(Conversation).where(Conversation.occurrence_id == msg.occurrence_id,
                                                Conversation.channel == "voice",
                                                Conversation.status == ConversationStatus.OPEN.value)
                     .order_by(Conversation.id.desc()).limit(1).with_for_update())
    if conv is None:
        conv = Conversation(occurrence_id=msg.occurrence_id, patient_id=msg.patient_id, channel="voice",
                            status=ConversationStatus.OPEN.value, language=lang, state={"held": [], "told": []},
                            started_at=now, last_activity_at=now)
        db.add(conv)
    conv.provider_ref, conv.last_activity_at, conv.language = call_sid, now, lang
    db.flush()
    return conv


def _audit(db: Session, msg: SmsMessage, conv: Conversation | None, action: str, details: dict[str, Any],
           now: datetime) -> None:
    record(db, actor=ACTOR, action=action, entity="conversation" if conv is not None else "sms_message",
           entity_id=conv.id if conv is not None else msg.id, patient_id=msg.patient_id,
           new={"call_sid": conv.provider_ref if conv is not None else msg.provider_sid, "sms_message_id": msg.id,
                **details}, at=now)


def twiml(turn: Turn, action_url: str) -> str:
    """The turn as TwiML, built with the ``twilio`` package (``VoiceResponse``, ``Gather``, ``Say``, ``Dial``)."""
    from twilio.twiml.voice_response import Gather as TwimlGather
    from twilio.twiml.voice_response import VoiceResponse

    language = SAY_LANGUAGE.get(turn.language, "fr-FR")
    response = VoiceResponse()
    if turn.gather is not None:
        g = turn.gather
        params: dict[str, Any] = {"action": action_url, "method": "POST", "action_on_empty_result": True,
                                  "language": language}
        if g.kind == "pin":
            params.update(input="dtmf", finish_on_key="#", timeout=10)
        else:
            params.update(input="dtmf speech", speech_timeout="auto", timeout=8)
            if g.hints:
                params["hints"] = ", ".join(g.hints)
            if g.two_digits:
                params["finish_on_key"] = "#"
            else:
                params["num_digits"] = 1
        gather = TwimlGather(**params)
        for text in turn.say:
            gather.say(text, language=language)
        response.append(gather)
        return str(response)
    for text in turn.say:
        response.say(text, language=language)
    if turn.dial:
        response.dial(turn.dial, action=action_url, method="POST")
    elif turn.hangup:
        response.hangup()
    return str(response)
