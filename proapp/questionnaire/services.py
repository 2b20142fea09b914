"""The patient's side of an occurrence: links, autosave of each screen, completion.

Answers change only while the occurrence is open and not completed; completion is a conditional UPDATE,
so a double tap or two tabs complete it once and the second sees "already completed".
"""

from __future__ import annotations

import enum
import hashlib
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from flask_babel import lazy_gettext as _l
from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from proapp.instruments import Instrument, Registry, score_with
from proapp.patients.models import Occurrence, OccurrenceStatus, Patient
from proapp.questionnaire import flow as flowmod
from proapp.questionnaire.flow import Screen
from proapp.questionnaire.models import AccessLink, Answer, Response, ResponseStatus
from proapp.studies.catalog import StudyCatalog
from proapp.studies.models import Study

TOKEN_BYTES = 16                  # 128 bits from secrets, 22 URL-safe characters
ONSET_MAX_DAYS_BACK = 31


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_link(db: Session, occurrence: Occurrence, now: datetime) -> str:
    """A fresh token for ``occurrence``; every earlier link of it stops working (a resend)."""
    return new_link(db, occurrence, now, revoke_previous=True)[0]


def new_link(db: Session, occurrence: Occurrence, now: datetime, *, revoke_previous: bool) -> tuple[str, AccessLink]:
    """A fresh token and its row. A scheduled reminder (``revoke_previous=False``) leaves the invitation's link
    working too."""
    if revoke_previous:
        db.execute(update(AccessLink).where(AccessLink.occurrence_id == occurrence.id,
                                            AccessLink.revoked_at.is_(None)).values(revoked_at=now))
    token = secrets.token_urlsafe(TOKEN_BYTES)
    link = AccessLink(occurrence_id=occurrence.id, token_sha256=token_hash(token), created_at=now)
    db.add(link)
    db.flush()
    return token, link


class LinkState(enum.Enum):
    OPEN = "open"
    COMPLETED = "completed"
    INVALID = "invalid"        # unknown, revoked, tampered, not yet open or closed: one friendly page


def resolve_link(db: Session, token: str, now: datetime) -> tuple[LinkState, AccessLink | None]:
    if not token or len(token) > 64:
        return LinkState.INVALID, None
    link = db.scalar(select(AccessLink).where(AccessLink.token_sha256 == token_hash(token)))
    if link is None or link.revoked_at is not None:
        return LinkState.INVALID, None
    occ = link.occurrence
    if occ.status == OccurrenceStatus.COMPLETED:
        return LinkState.COMPLETED, link
    if not occ.is_open(now) or occ.patient.status.value in ("withdrawn", "completed"):
        return LinkState.INVALID, None
    if link.first_opened_at is None:
        link.first_opened_at = now
        db.flush()
    return LinkState.OPEN, link


def occurrence_of_live_link(db: Session, link_id: int, occurrence_id: int) -> Occurrence | None:
    """The occurrence behind a patient session, with its patient, in one query (no eager loading: the hot path
    of every patient page); None once the link was revoked (a new SMS was sent)."""
    row = db.execute(
        select(Occurrence, Patient)
        .join(AccessLink, AccessLink.occurrence_id == Occurrence.id)
        .join(Patient, Patient.id == Occurrence.patient_id)
        .where(AccessLink.id == link_id, AccessLink.revoked_at.is_(None), Occurrence.id == occurrence_id)).first()
    return None if row is None else row[0]      # occurrence.patient now comes from the identity map


_STUDY_CODES: dict[tuple[int, int], str] = {}


def study_code(db: Session, study_id: int) -> str:
    """A study's code by id (rows are never deleted nor renamed), cached per engine."""
    key = (id(db.get_bind()), study_id)
    if key not in _STUDY_CODES:
        _STUDY_CODES[key] = db.scalar(select(Study.code).where(Study.id == study_id))
    return _STUDY_CODES[key]


class Closed(Exception):
    """The window closed (or the patient was withdrawn): nothing more is stored."""


class AlreadyCompleted(Exception):
    """The occurrence is completed: its answers can no longer change."""


@dataclass
class Session_:
    """Everything the flow needs about one occurrence, loaded once per request."""

    occurrence: Occurrence
    patient: Patient
    instruments: list[Instrument]
    variants: dict[str, str | None]
    responses: dict[str, Response]
    answers: dict[str, dict[tuple[str, int], str]]

    @property
    def states(self) -> dict[str, dict[str, Any] | None]:
        return {code: r.flow_state for code, r in self.responses.items()}

    def flow(self) -> list[Screen]:
        return flowmod.build_flow(self.instruments, self.answers, self.states)


def load(db: Session, occurrence: Occurrence, registry: Registry, studies: StudyCatalog) -> Session_:
    study = studies.get(study_code(db, occurrence.patient.study_id))
    instruments, variants = [], {}
    for code in occurrence.instruments:
        use = study.instruments[code]
        inst = registry.get(code, use.version)
        instruments.append(inst)
        variants[code] = use.variant or inst.default_variant
    responses = {r.instrument_code: r for r in db.scalars(
        select(Response).where(Response.occurrence_id == occurrence.id))}
    answers: dict[str, dict[tuple[str, int], str]] = {code: {} for code in occurrence.instruments}
    if responses:
        by_id = {r.id: r.instrument_code for r in responses.values()}
        for response_id, item_code, repeat, value in db.execute(
                select(Answer.response_id, Answer.item_code, Answer.repeat_index, Answer.value)
                .where(Answer.response_id.in_(by_id))):
            if value is not None:
                answers[by_id[response_id]][(item_code, repeat)] = value
    return Session_(occurrence, occurrence.patient, instruments, variants, responses, answers)


def _check_writable(s: Session_, now: datetime) -> None:
    if s.occurrence.status == OccurrenceStatus.COMPLETED:
        raise AlreadyCompleted
    if not s.occurrence.is_open(now) or s.patient.status.value in ("withdrawn", "completed"):
        raise Closed


def _response(db: Session, s: Session_, inst: Instrument, language: str, now: datetime) -> Response:
    r = s.responses.get(inst.code)
    if r is not None:
        return r
    r = Response(occurrence_id=s.occurrence.id, instrument_code=inst.code, instrument_version=inst.version,
                 language=language, status=ResponseStatus.IN_PROGRESS, started_at=now, last_saved_at=now,
                 flow_state={})
    try:
        with db.begin_nested():
            db.add(r)
    except IntegrityError:       # another tab created it a moment ago
        r = db.scalar(select(Response).where(Response.occurrence_id == s.occurrence.id,
                                             Response.instrument_code == inst.code))
        assert r is not None
    s.responses[inst.code] = r
    return r


def parse_screen(screen: Screen, form: Mapping[str, str], today: date) -> tuple[dict[str, str | None], dict[str, Any]]:
    """Form fields -> {item code: value or None}, and errors {item code: message}. Stores nothing."""
    values: dict[str, str | None] = {}
    errors: dict[str, Any] = {}
    for item in screen.items:
        raw = (form.get(item.code) or "").strip()
        if item.type == "check":
            if raw not in ("", "Y"):
                errors[item.code] = _l("Please tick the box or leave it empty.")
            values[item.code] = "Y" if raw == "Y" else None
            continue
        if raw == "":
            errors[item.code] = (_l("Please mark the line or type a number from 0 to 100.") if item.type == "vas"
                                 else _l("Please enter a date.") if item.type == "date"
                                 else _l("Please choose an answer."))
            continue
        if item.type == "vas":
            if not (raw.isascii() and raw.isdigit()) or int(raw) > 100:
                errors[item.code] = _l("Please enter a whole number from 0 to 100.")
                continue
            raw = str(int(raw))
        try:
            item.check_value(raw)
        except ValueError:
            errors[item.code] = (_l("Please enter a date.") if item.type == "date"
                                 else _l("Please choose one of the answers shown."))
            continue
        if item.type == "date":
            d = date.fromisoformat(raw)
            if d > today:
                errors[item.code] = _l("This date is in the future.")
                continue
            if d < today - timedelta(days=ONSET_MAX_DAYS_BACK):
                errors[item.code] = _l("Please give a date within the last month.")
                continue
        values[item.code] = raw
    return values, errors


def _audit_answer(db: Session, s: Session_, r: Response, item: str, repeat: int, old: str | None, new: str | None,
                  actor: str, now: datetime, action: str = "answer.saved", reason: str | None = None) -> None:
    from proapp.audit.services import record

    record(db, actor=actor, action=action, entity="answer", entity_id=f"{r.id}:{item}:{repeat}",
           patient_id=s.patient.id, old=None if old is None else {"value": old},
           new={"value": new, "instrument": r.instrument_code, "version": r.instrument_version,
                "visit": s.occurrence.visit_code}, reason=reason, at=now)


def save_screen(db: Session, s: Session_, screen: Screen, form: Mapping[str, str], *, language: str,
                now: datetime, actor: str = "patient") -> dict[str, Any]:
    """Store one screen's answers (autosave). Returns errors; with errors nothing is stored."""
    _check_writable(s, now)
    inst = screen.instrument
    if screen.asks_more:
        choice = form.get("more", "")
        if choice not in ("Y", "N"):
            return {"more": _l("Please choose an answer.")}
        r = _response(db, s, inst, language, now)
        state = dict(r.flow_state or {})
        groups = dict(state.get("groups") or {})
        g = dict(groups.get(screen.group.code) or {})  # type: ignore[union-attr]
        more = dict(g.get("more") or {})
        if more.get(str(screen.repeat)) != choice:
            _audit_answer(db, s, r, f"{screen.group.code}.more", screen.repeat,  # type: ignore[union-attr]
                          more.get(str(screen.repeat)), choice, actor, now)
        more[str(screen.repeat)] = choice
        if choice == "N":              # repeats declared after this one are dropped with their answers
            more = {k: v for k, v in more.items() if int(k) <= screen.repeat}
        g["more"] = more
        groups[screen.group.code] = g  # type: ignore[union-attr]
        state["groups"] = groups
        _record_save(db, s, r, inst, state, language, now, actor)
        return {}
    today = now.astimezone(ZoneInfo(s.patient.timezone)).date()
    values, errors = parse_screen(screen, form, today)
    if errors:
        return errors
    r = _response(db, s, inst, language, now)
    current = s.answers.setdefault(inst.code, {})
    for code, value in values.items():
        key = (code, screen.repeat)
        if value is None:
            if key in current:
                db.execute(delete(Answer).where(*_answer_row(r.id, key)))
                _audit_answer(db, s, r, code, screen.repeat, current[key], None, actor, now, "answer.cleared")
                del current[key]
            continue
        if current.get(key) == value:
            continue
        _audit_answer(db, s, r, code, screen.repeat, current.get(key), value, actor, now)
        set_value = update(Answer).where(*_answer_row(r.id, key)).values(value=value, answered_at=now)
        if not db.execute(set_value).rowcount:
            try:
                with db.begin_nested():
                    db.add(Answer(response_id=r.id, item_code=code, repeat_index=screen.repeat, value=value,
                                  answered_at=now))
            except IntegrityError:     # the same answer was inserted by another tab: keep the latest
                db.execute(set_value)
        current[key] = value
    state = dict(r.flow_state or {})
    seen = list(state.get("seen") or [])
    if screen.key not in seen:
        seen.append(screen.key)
    state["seen"] = seen
    _record_save(db, s, r, inst, state, language, now, actor)
    return {}


def _answer_row(response_id: int, key: tuple[str, int]) -> tuple:
    """The WHERE clause of one stored answer: response, item code, repeat index."""
    return (Answer.response_id == response_id, Answer.item_code == key[0], Answer.repeat_index == key[1])


def _record_save(db: Session, s: Session_, r: Response, inst: Instrument, state: dict[str, Any], language: str,
                 now: datetime, actor: str) -> None:
    """End of every save: new navigation state, language and time, and answers a change has hidden dropped."""
    r.flow_state = state
    r.language, r.last_saved_at = language, now
    _prune_hidden(db, s, r, inst, actor, now)
    db.flush()


def _prune_hidden(db: Session, s: Session_, r: Response, inst: Instrument, actor: str, now: datetime) -> None:
    """Drop answers a changed answer has hidden (7B after 7A turned Yes, ulcers after 'no new ulcer')."""
    keep = flowmod.visible_keys(flowmod.instrument_screens(inst, s.answers.get(inst.code, {}), r.flow_state))
    keep_inst = keep.get(inst.code, set())
    for key in [k for k in s.answers.get(inst.code, {}) if k not in keep_inst]:
        db.execute(delete(Answer).where(*_answer_row(r.id, key)))
        _audit_answer(db, s, r, key[0], key[1], s.answers[inst.code][key], None, actor, now, "answer.dropped",
                      "no longer asked after a changed answer")
        del s.answers[inst.code][key]


def complete(db: Session, s: Session_, *, language: str, now: datetime, on_site: bool = False,
             actor: str = "patient") -> bool:
    """Complete every response of the occurrence once. Returns False when it was already completed."""
    if s.occurrence.status == OccurrenceStatus.COMPLETED:
        return False
    _check_writable(s, now)
    if flowmod.first_unanswered(s.flow(), s.answers, s.states) is not None:
        raise ValueError("the questionnaire is not finished")
    won = db.execute(update(Occurrence).where(Occurrence.id == s.occurrence.id,
                                              Occurrence.status == OccurrenceStatus.SCHEDULED)
                     .values(status=OccurrenceStatus.COMPLETED, completed_at=now,
                             completed_on_site=on_site)).rowcount
    if not won:
        db.expire(s.occurrence)
        return False
    for inst in s.instruments:
        r = _response(db, s, inst, language, now)
        scores = score_with(inst, flowmod.as_scoring_answers(s.answers.get(inst.code, {})))
        r.status, r.completed_at, r.completed_on_site, r.scores = ResponseStatus.COMPLETED, now, on_site, scores
        r.last_saved_at = now
        db.flush()
        from proapp.audit.services import record

        record(db, actor=actor, action="response.completed", entity="response", entity_id=r.id,
               patient_id=s.patient.id, old={"status": "in_progress"},
               new={"status": "completed", "instrument": r.instrument_code, "version": r.instrument_version,
                    "language": language, "visit": s.occurrence.visit_code, "on_site": on_site, "scores": scores,
                    "answers": {f"{k[0]}:{k[1]}": v for k, v in sorted(s.answers.get(inst.code, {}).items())}},
               at=now)
    db.flush()
    db.expire(s.occurrence)
    return True


def set_patient_language(db: Session, patient: Patient, language: str, now: datetime) -> None:
    if language in ("fr", "en") and patient.language != language:
        patient.language = language
        patient.updated_at = now
        db.flush()


def open_occurrence_for(db: Session, patient: Patient, now: datetime, visit: str | None = None) -> Occurrence | None:
    q = select(Occurrence).where(Occurrence.patient_id == patient.id)
    if visit:
        q = q.where(Occurrence.visit_code == visit)
    for occ in db.scalars(q.order_by(Occurrence.window_opens_at)):
        if occ.is_open(now):
            return occ
    return None
