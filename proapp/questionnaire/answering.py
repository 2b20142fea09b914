"""The patient's side of an occurrence: links, autosave of each screen, completion.

Answers change only while the occurrence is open and not completed; completion is a conditional UPDATE,
so a double tap or two tabs complete it once and the second sees "already completed".
"""

from __future__ import annotations

import enum
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from flask_babel import lazy_gettext as _l
from sqlalchemy import Connection, Row, bindparam, delete, literal, select, update
from sqlalchemy.orm import Session

from proapp.audit.trail import record
from proapp.db import dialect_insert
from proapp.i18n import day as i18n_day
from proapp.instruments import Instrument, Registry, score_with
from proapp.instruments.ulcers import context_to_json
from proapp.patients import occurrences
from proapp.patients.models import (
    Occurrence,
    OccurrenceStatus,
    Patient,
    PatientContact,
    PatientStatus,
    window_is_open,
)
from proapp.patients.signals import links_must_stop
from proapp.questionnaire import flow as flowmod
from proapp.questionnaire import ulcers as ulcer_registry
from proapp.questionnaire.flow import Screen
from proapp.questionnaire.models import VAS_CONTROLS, AccessLink, Answer, Response, ResponseStatus
from proapp.questionnaire.signals import answers_saved
from proapp.studies.catalog import StudyCatalog
from proapp.studies.models import ClosedLink, Site, Study
from proapp.studies.schema import HARVEST_FEATURE, StudyDef
from proapp.studies.sync import is_closed
from proapp.tokens import token_hash

TOKEN_BYTES = 16                  # 128 bits from secrets, 22 URL-safe characters
ONSET_MAX_DAYS_BACK = 31




def issue_link(db: Session, occurrence: Occurrence, now: datetime) -> str:
    """A fresh token for ``occurrence``; every earlier link of it stops working (a resend)."""
    return new_link(db, occurrence, now, revoke_previous=True)[0]


def revoke_links(db: Session, patient_id: int, now: datetime) -> None:
    """Every link of the patient's visits stops working (a withdrawal)."""
    db.execute(update(AccessLink).where(
        AccessLink.occurrence_id.in_(select(Occurrence.id).where(Occurrence.patient_id == patient_id)),
        AccessLink.revoked_at.is_(None)).values(revoked_at=now))


def _on_links_must_stop(patient_id: int, *, db: Session, now: datetime) -> None:
    revoke_links(db, patient_id, now)


def connect_signals() -> None:
    """Listen to the patients feature: a withdrawal disables the patient's links (proapp/patients/signals.py)."""

    links_must_stop.connect(_on_links_must_stop)


def new_link(db: Session, occurrence: Occurrence, now: datetime, *, revoke_previous: bool,
             purpose: str | None = None) -> tuple[str, AccessLink]:
    """A fresh token and its row. A scheduled reminder (``revoke_previous=False``) leaves the invitation's link
    working too. ``purpose`` "information": a link to the information sheet (INFORMATION_LINK)."""
    if revoke_previous:
        db.execute(update(AccessLink).where(AccessLink.occurrence_id == occurrence.id,
                                            AccessLink.revoked_at.is_(None)).values(revoked_at=now))
    token = secrets.token_urlsafe(TOKEN_BYTES)
    link = AccessLink(occurrence_id=occurrence.id, token_sha256=token_hash(token), created_at=now, purpose=purpose)
    db.add(link)
    db.flush()
    return token, link


class LinkState(enum.Enum):
    OPEN = "open"
    COMPLETED = "completed"
    INVALID = "invalid"        # unknown, revoked, tampered, not yet open or closed: one friendly page
    INFORMATION = "information"  # a link to read the study's new information sheet
    STUDY_CLOSED = "study_closed"  # a link of a closed study (proapp study close), however it was made


INFORMATION_LINK = "information"


def closed_study_language(conn: Connection, *, token: str | None = None, link_id: int | None = None) -> str | None:
    """The patient's language when the link (by its token, or its id while the live data is there) belongs to a
    closed study (``proapp study close``), else None."""

    if token is not None:
        if not token or len(token) > 64:
            return None
        return conn.execute(select(ClosedLink.language).where(ClosedLink.token_sha256 == token_hash(token))).scalar()
    return conn.execute(select(ClosedLink.language).join(AccessLink, AccessLink.token_sha256 == ClosedLink.token_sha256)
                        .where(AccessLink.id == link_id)).scalar()


def replaced_at(conn: Connection, link_id: int) -> datetime | None:
    """When the staff sent a new link replacing this revoked one (the newest SMS holds it), or None."""
    row = conn.execute(select(AccessLink.revoked_at, AccessLink.occurrence_id)
                       .where(AccessLink.id == link_id)).first()
    if row is None or row.revoked_at is None:
        return None
    newer = conn.execute(select(AccessLink.created_at)
                         .where(AccessLink.occurrence_id == row.occurrence_id, AccessLink.id > link_id,
                                AccessLink.revoked_at.is_(None))
                         .order_by(AccessLink.id.desc()).limit(1)).scalar()
    return newer


def resolve_link(db: Session, token: str, now: datetime) -> tuple[LinkState, AccessLink | None]:
    """The link behind ``token``. A revoked link comes back too (state INVALID), so the page can say a newer
    one was sent."""
    if not token or len(token) > 64:
        return LinkState.INVALID, None
    link = db.scalar(select(AccessLink).where(AccessLink.token_sha256 == token_hash(token)))
    if link is None:
        return LinkState.INVALID, None
    if link.revoked_at is not None:
        return LinkState.INVALID, link
    occ = link.occurrence

    if is_closed(db, occ.patient.study_id):
        return LinkState.STUDY_CLOSED, link
    if link.purpose == INFORMATION_LINK:
        if occ.patient.status.value in ("withdrawn", "completed"):
            return LinkState.INVALID, None
        if link.first_opened_at is None:
            link.first_opened_at = now
            db.flush()
        return LinkState.INFORMATION, link
    if occ.status == OccurrenceStatus.COMPLETED:
        return LinkState.COMPLETED, link
    if not occ.is_open(now) or occ.patient.status.value in ("withdrawn", "completed"):
        return LinkState.INVALID, None
    if link.first_opened_at is None:
        link.first_opened_at = now
        db.flush()
    return LinkState.OPEN, link


@dataclass(frozen=True, slots=True)
class Visit:
    """What the patient pages need of the occurrence behind a live link and of its patient: a plain snapshot
    read with Core (every patient request starts here, so no ORM identity map, lazy loads or flushes)."""

    link_id: int
    occurrence_id: int
    visit_code: str
    instruments: tuple[str, ...]
    status: OccurrenceStatus
    window_opens_at: datetime
    window_closes_at: datetime
    patient_id: int
    study_code: str
    site_id: int
    language: str
    timezone: str
    patient_status: PatientStatus
    ulcer_version: ulcer_registry.RegistryVersion = (0, 0, 0)     # the patient's ulcer registry, as read
    harvest_date: date | None = None       # the patient's liposuction, when recorded (a study with ``fat_harvest``)

    def is_open(self, now: datetime) -> bool:
        return window_is_open(self.status, self.window_opens_at, self.window_closes_at, now)

    @property
    def completed(self) -> bool:
        return self.status == OccurrenceStatus.COMPLETED

    def accepts_answers(self, now: datetime) -> bool:
        """Open, and the patient still followed (not withdrawn nor at the end of the study)."""
        return self.is_open(now) and self.patient_status not in (PatientStatus.WITHDRAWN, PatientStatus.COMPLETED)


@dataclass(slots=True)
class ResponseState:
    """One instrument's response as the flow sees it; written back with Core statements."""

    id: int
    instrument_code: str
    instrument_version: str
    status: ResponseStatus
    flow_state: dict[str, Any] | None
    scores: dict[str, Any] | None


def _visit_select(link_id: Any) -> Any:
    return select(
        link_id.label("link_id"), Occurrence.id.label("occurrence_id"), Occurrence.visit_code,
        Occurrence.instruments, Occurrence.status, Occurrence.window_opens_at, Occurrence.window_closes_at,
        Patient.id.label("patient_id"), Study.code.label("study_code"), Patient.site_id, Patient.language,
        Patient.timezone, Patient.status.label("patient_status"), Patient.harvest_date,
        Response.id.label("response_id"), Response.instrument_code, Response.instrument_version,
        Response.status.label("response_status"), Response.flow_state, Response.scores,
        Answer.item_code, Answer.repeat_index, Answer.value.label("answer_value"),
        *ulcer_registry.version_columns(bindparam("occurrence")))


_VISIT = (
    _visit_select(AccessLink.id)
    .select_from(AccessLink)
    .join(Occurrence, Occurrence.id == AccessLink.occurrence_id)
    .join(Patient, Patient.id == Occurrence.patient_id)
    .join(Study, Study.id == Patient.study_id)
    .outerjoin(Response, Response.occurrence_id == Occurrence.id)
    .outerjoin(Answer, (Answer.response_id == Response.id) & Answer.value.is_not(None))
    .where(AccessLink.id == bindparam("link"), AccessLink.revoked_at.is_(None),
           Occurrence.id == bindparam("occurrence")))
# For a request that will write (an answer, the submit): the occurrence row stays locked until its commit, so an
# answer saved in one tab and the submit in another happen one after the other (PostgreSQL; SQLite has one
# writer at a time anyway).
_VISIT_FOR_WRITING = _VISIT.with_for_update(of=Occurrence)


Answers = dict[str, dict[tuple[str, int], str]]        # {instrument code: {(item code, repeat): value}}


# The same visit reached without a link: a voice call or an SMS conversation (proapp/remote/), its link id 0.
_BY_OCCURRENCE = (
    _visit_select(literal(0))
    .select_from(Occurrence)
    .join(Patient, Patient.id == Occurrence.patient_id)
    .join(Study, Study.id == Patient.study_id)
    .outerjoin(Response, Response.occurrence_id == Occurrence.id)
    .outerjoin(Answer, (Answer.response_id == Response.id) & Answer.value.is_not(None))
    .where(Occurrence.id == bindparam("occurrence")))


def visit_of_occurrence(conn: Connection, occurrence_id: int, *,
                        for_writing: bool = False) -> tuple[Visit, dict[str, ResponseState], Answers] | None:
    """The visit, its responses and answers so far, without a link (a call or an SMS conversation); for writing,
    the occurrence row locked as a page's answer locks it."""
    stmt = _BY_OCCURRENCE.with_for_update(of=Occurrence) if for_writing else _BY_OCCURRENCE
    return _visit_from(conn.execute(stmt, {"occurrence": occurrence_id}).all())


def visit_of_live_link(conn: Connection, link_id: int, occurrence_id: int, *,
                       for_writing: bool = False) -> tuple[Visit, dict[str, ResponseState], Answers] | None:
    """The visit behind a patient session, its responses and answers so far, in one query (a row per answer, at
    least one); None once the link was revoked (a new SMS was sent)."""
    rows = conn.execute(_VISIT_FOR_WRITING if for_writing else _VISIT,
                        {"link": link_id, "occurrence": occurrence_id}).all()
    return _visit_from(rows)


def _visit_from(rows: list[Row]) -> tuple[Visit, dict[str, ResponseState], Answers] | None:
    if not rows:
        return None
    first = rows[0]
    visit = Visit(first.link_id, first.occurrence_id, first.visit_code, tuple(first.instruments), first.status,
                  first.window_opens_at, first.window_closes_at, first.patient_id, first.study_code, first.site_id,
                  first.language, first.timezone, first.patient_status,
                  (first.ulcer_entries, first.corrections, first.noted_ulcers), first.harvest_date)
    responses = {row.instrument_code: ResponseState(row.response_id, row.instrument_code, row.instrument_version,
                                                    row.response_status, row.flow_state, row.scores)
                 for row in rows if row.response_id is not None}
    answers: Answers = {code: {} for code in visit.instruments}
    for row in rows:
        if row.item_code is not None:
            answers.setdefault(row.instrument_code, {})[(row.item_code, row.repeat_index)] = row.answer_value
    return visit, responses, answers


class Closed(Exception):
    """The window closed (or the patient was withdrawn): nothing more is stored."""


class AlreadyCompleted(Exception):
    """The occurrence is completed: its answers can no longer change."""


@dataclass
class VisitQuestionnaire:
    """Everything the flow needs about one occurrence, loaded once per request."""

    visit: Visit
    instruments: list[Instrument]
    variants: dict[str, str | None]
    responses: dict[str, ResponseState]
    answers: dict[str, dict[tuple[str, int], str]]
    contexts: dict[str, flowmod.Context] = field(default_factory=dict)
    registry: Registry | None = None
    studies: StudyCatalog | None = None

    @property
    def states(self) -> dict[str, dict[str, Any] | None]:
        return {code: r.flow_state for code, r in self.responses.items()}

    def flow(self) -> list[Screen]:
        return flowmod.build_flow(self.instruments, self.answers, self.states, self.contexts)

    def context(self, code: str) -> flowmod.Context:
        return self.contexts.get(code, flowmod.NO_CONTEXT)

    def progress(self, scr: Screen) -> Progress:
        """Where the patient is: the questionnaire among the visit's, the step within it (out of a total that does
        not change with the answers), and the share of the whole visit done, which never goes back."""
        steps = [flowmod.progress_steps(inst, self.states.get(inst.code), self.context(inst.code))
                 for inst in self.instruments]
        part = next(i for i, inst in enumerate(self.instruments) if inst.code == scr.code)
        mine = steps[part]
        number = mine.number(scr)
        done = sum(len(s.keys) for s in steps[:part]) + number
        return Progress(part + 1, len(steps), number, len(mine.keys),
                        round(100 * done / max(1, sum(len(s.keys) for s in steps))),
                        self._in_repeat(self.instruments[part], scr))

    def _in_repeat(self, inst: Instrument, scr: Screen) -> InRepeat | None:
        """Where a screen of a group's repeat is within it: the ulcer among those asked about, the question among
        the repeat's (the "another one?" question counted), so that forty screens of ulcers do not all read
        "question 3 of 3"."""
        group = scr.group
        if group is None:
            return None
        mine = [s for s in flowmod.instrument_screens(inst, self.answers.get(inst.code, {}),
                                                      self.states.get(inst.code), self.context(inst.code))
                if s.group is not None and s.group.code == group.code]
        repeats = list(dict.fromkeys(s.repeat for s in mine))
        here = [s.key for s in mine if s.repeat == scr.repeat]
        if scr.repeat not in repeats or scr.key not in here:
            return None
        # An asked group (new ulcers) has as many repeats as the patient reports: no total.
        return InRepeat(repeats.index(scr.repeat) + 1, len(repeats) if group.repeats_from else None,
                        here.index(scr.key) + 1, len(here))

    def changes(self, scr: Screen, form: Mapping[str, str]) -> bool:
        """Whether ``form`` holds another answer than the one saved for this screen."""
        answers = self.answers.get(scr.code, {})
        if scr.asks_more:
            assert scr.group is not None
            state = self.responses[scr.code].flow_state if scr.code in self.responses else None
            return form.get("more", "") != flowmod.group_more(state, scr.group.code).get(str(scr.repeat), "")
        for item in scr.items:
            sent = (form.get(item.code) or "").strip()
            if item.type == "vas" and sent.isascii() and sent.isdigit() and len(sent) <= 9:
                sent = str(int(sent))
            if sent != (answers.get((item.code, scr.repeat)) or ""):
                return True
        return False


@dataclass(frozen=True)
class InRepeat:
    number: int            # the repeat's place (the ulcer's), of ``count`` (None: as many as the patient reports)
    count: int | None
    question: int          # the screen's place in this repeat, of ``questions``
    questions: int


@dataclass(frozen=True)
class Progress:
    part: int              # the questionnaire's place among the visit's (1-based), of ``parts``
    parts: int
    number: int            # the step within the questionnaire, of ``total`` whatever the answers
    total: int
    percent: int           # of the whole visit
    repeat: InRepeat | None = None     # within a group's repeat (an ulcer's questions)


_RESPONSES = (select(Response.id, Response.instrument_code, Response.instrument_version, Response.status,
                     Response.flow_state, Response.scores)
              .where(Response.occurrence_id == bindparam("occurrence")))
_ANSWERS = (select(Response.instrument_code, Answer.item_code, Answer.repeat_index, Answer.value)
            .join(Answer, Answer.response_id == Response.id)
            .where(Response.occurrence_id == bindparam("occurrence"), Answer.value.is_not(None)))


def load(visit: Visit, responses: dict[str, ResponseState], answers: Answers, registry: Registry,
         studies: StudyCatalog, conn: Connection | None = None) -> VisitQuestionnaire:
    """The occurrence's instruments (as the study uses them; a response begun keeps the version it began with),
    beside what `visit_of_live_link` read, and what each needs to know of the patient (``conn`` reads the ulcer
    registry when an instrument asks about the patient's ulcers)."""
    study = studies.get(visit.study_code)
    instruments, variants = [], {}
    for code in visit.instruments:
        use = study.instruments[code]
        begun = responses.get(code)
        inst = registry.get(code, begun.instrument_version if begun else use.version)
        instruments.append(inst)
        variants[code] = use.variant or inst.default_variant
    s = VisitQuestionnaire(visit, instruments, variants, responses, answers, registry=registry, studies=studies)
    s.contexts = contexts_for(conn, s, registry, studies)
    return s


def contexts_for(conn: Connection | None, s: VisitQuestionnaire, registry: Registry,
                 studies: StudyCatalog, *, fresh: bool = False) -> dict[str, flowmod.Context]:
    """What each instrument needs to know of the patient. The ulcer registry is the one remembered for the version
    the visit's query read, or read afresh (``fresh``: a completion numbers the ulcers under the patient's lock)."""
    study = studies.get(s.visit.study_code)
    contexts: dict[str, flowmod.Context] = {}
    found = None
    visit_situations = frozenset({"before_treatment"} if s.visit.visit_code == study.visit_before_treatment else ())
    for inst in s.instruments:
        use = study.instruments[inst.code]
        features = frozenset(use.features)
        followed = HARVEST_FEATURE not in features or _harvest_followed(study, s.visit)
        grouped = not use.one_item_per_screen
        if conn is None or not ulcer_registry.uses_registry(inst):
            if not followed:
                features -= {HARVEST_FEATURE}
            contexts[inst.code] = flowmod.Context(features=features, situations=visit_situations, grouped=grouped)
            continue
        if found is None:
            found = (ulcer_registry.patient_ulcers(conn, s.visit.patient_id, registry) if fresh else
                     ulcer_registry.remembered_ulcers(conn, s.visit.patient_id, registry, s.visit.ulcer_version))
        ctx = found.context()
        situations = set(visit_situations)
        if inst.code not in found.completed_codes:
            situations.add("first_entry")
        harvest_items = _harvest_items(inst)
        never_asked = bool(harvest_items) and not harvest_items & found.answered_items
        if not followed and not never_asked:
            features -= {HARVEST_FEATURE}         # the weeks after the liposuction are over, or not come yet
        elif HARVEST_FEATURE in features and never_asked:
            # Never answered: "since the fat was taken", asked once at least even when the follow-up ended before
            # the first diary (a liposuction weeks before a postponed injection), so those weeks are never unasked.
            situations.add("first_harvest_entry")
        if ctx.known:
            situations.add("known_ulcers")
        contexts[inst.code] = flowmod.Context(features=features, situations=frozenset(situations), ulcers=ctx,
                                              grouped=grouped)
    return contexts


@lru_cache(maxsize=64)
def _harvest_items(inst: Instrument) -> frozenset[str]:
    """The items of the instrument's part about the place where the fat was taken."""
    return frozenset(i.code for i in inst.items if i.requires == HARVEST_FEATURE)


def _harvest_followed(study: StudyDef, visit: Visit) -> bool:
    """Whether this visit asks about the place where the fat was taken: its window overlaps the weeks after the
    liposuction (the study file's ``fat_harvest``), or the liposuction date is not recorded yet (asked, as before:
    never silently dropped), or the study does not limit it."""
    if study.fat_harvest is None or visit.harvest_date is None:
        return True
    return study.fat_harvest.followed(visit.harvest_date, visit.timezone, visit.window_opens_at,
                                      visit.window_closes_at)


def _answers_of(conn: Connection, visit: Visit) -> dict[str, dict[tuple[str, int], str]]:
    """{instrument code: {(item code, repeat): value}} of the occurrence's stored answers."""
    answers: dict[str, dict[tuple[str, int], str]] = {code: {} for code in visit.instruments}
    for row in conn.execute(_ANSWERS, {"occurrence": visit.occurrence_id}):
        answers.setdefault(row.instrument_code, {})[(row.item_code, row.repeat_index)] = row.value
    return answers


def _check_writable(s: VisitQuestionnaire, now: datetime) -> None:
    if s.visit.completed:
        raise AlreadyCompleted
    if not s.visit.accepts_answers(now):
        raise Closed


def _response(db: Session, s: VisitQuestionnaire, inst: Instrument, language: str, now: datetime) -> ResponseState:
    r = s.responses.get(inst.code)
    if r is not None:
        return r
    conn = db.connection()
    # No savepoint: on SQLite, releasing a savepoint that opened the transaction commits it, and this row would
    # stay even if the rest of the save rolled back. A conflict (another tab created it a moment ago) inserts
    # nothing and the row is read instead.
    stmt = dialect_insert(conn.dialect.name)(Response).values(
        occurrence_id=s.visit.occurrence_id, instrument_code=inst.code, instrument_version=inst.version,
        language=language, status=ResponseStatus.IN_PROGRESS, started_at=now, last_saved_at=now, flow_state={})
    rid = conn.execute(stmt.on_conflict_do_nothing(index_elements=["occurrence_id", "instrument_code"])
                       .returning(Response.id)).scalar()
    if rid is not None:
        r = ResponseState(rid, inst.code, inst.version, ResponseStatus.IN_PROGRESS, {}, None)
    else:
        row = conn.execute(_RESPONSES.where(Response.instrument_code == inst.code),
                           {"occurrence": s.visit.occurrence_id}).one()
        r = ResponseState(*row)
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
            if not (raw.isascii() and raw.isdigit() and len(raw) <= 9) or int(raw) > 100:
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
            last_open = screen.ulcer.last_open_on if screen.ulcer and item.earliest == "ulcer_last_open" else None
            if last_open is not None and d < last_open:
                errors[item.code] = _l("You told us on %(day)s that this ulcer was still open: please give a day "
                                       "from then on.", day=i18n_day(last_open, "long"))
                continue
            if last_open is None and d < today - timedelta(days=ONSET_MAX_DAYS_BACK):
                errors[item.code] = _l("Please give a date within the last month.")
                continue
        values[item.code] = raw
    # A follow-up beside its condition (DLQI 7B under 7A) whose condition the answers sent do not meet: not asked,
    # so nothing of it is required or kept.
    sent = {(code, screen.repeat): value for code, value in values.items() if value is not None}
    for item in screen.items:
        if not flowmod.applies(screen, item, sent):
            errors.pop(item.code, None)
            values[item.code] = None
    return values, errors


def vas_controls(screen: Screen, form: Mapping[str, str]) -> dict[str, str | None]:
    """{VAS item code: the control its value was given with}: "line" when the page's script drew the line (it
    sets the hidden ``control-<code>`` field), "number" when the page's number box was used (the field as the page
    sends it without JavaScript); None when the form says neither (a form from elsewhere: nothing is guessed)."""
    return {item.code: control if (control := form.get(f"control-{item.code}")) in VAS_CONTROLS else None
            for item in screen.items if item.type == "vas"}


def _audit_answer(db: Session, s: VisitQuestionnaire, r: ResponseState, item: str, repeat: int, old: str | None,
                  new: str | None, actor: str, now: datetime, action: str = "answer.saved",
                  reason: str | None = None, language: str | None = None, entered_with: str | None = None,
                  mode: str | None = None) -> None:

    after: dict[str, Any] = {"value": new, "instrument": r.instrument_code, "version": r.instrument_version,
                             "visit": s.visit.visit_code}
    if language:
        after["language"] = language
    if entered_with is not None:
        after["entered_with"] = entered_with
    if mode is not None and mode != "web":
        after["mode"] = mode
    record(db, actor=actor, action=action, entity="answer", entity_id=f"{r.id}:{item}:{repeat}",
           patient_id=s.visit.patient_id, old=None if old is None else {"value": old}, new=after, reason=reason,
           at=now)


def save_screen(db: Session, s: VisitQuestionnaire, screen: Screen, form: Mapping[str, str], *, language: str,
                now: datetime, actor: str = "patient", mode: str = "web") -> dict[str, Any]:
    """Store one screen's answers (autosave). Returns errors; with errors nothing is stored. ``mode``: how they
    were given (``ANSWER_MODES``: the page, a call's keypad or speech, an SMS reply), kept with each answer."""
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
                          more.get(str(screen.repeat)), choice, actor, now, mode=mode)
        more[str(screen.repeat)] = choice
        if choice == "N":              # repeats declared after this one are dropped with their answers
            more = {k: v for k, v in more.items() if int(k) <= screen.repeat}
        g["more"] = more
        groups[screen.group.code] = g  # type: ignore[union-attr]
        state["groups"] = groups
        _record_save(db, s, r, inst, state, language, now, actor)
        return {}
    today = now.astimezone(ZoneInfo(s.visit.timezone)).date()
    values, errors = parse_screen(screen, form, today)
    if errors:
        return errors
    r = _response(db, s, inst, language, now)
    controls = vas_controls(screen, form)
    current = s.answers.setdefault(inst.code, {})
    for code, value in values.items():
        key = (code, screen.repeat)
        if value is None:
            if key in current:
                _delete_answer(db, r.id, key)
                _audit_answer(db, s, r, code, screen.repeat, current[key], None, actor, now, "answer.cleared")
                del current[key]
            continue
        if current.get(key) == value:
            continue
        control = controls.get(code)
        _audit_answer(db, s, r, code, screen.repeat, current.get(key), value, actor, now, language=language,
                      entered_with=control, mode=mode)
        # One statement whether the answer is new or changed; another tab saving the same answer at the same
        # moment cannot make a second row (the unique key) nor fail: the latest wins.
        # The language the patient read the question in: a response may be answered in two languages.
        db.execute(_upsert_answer(db), {"response_id": r.id, "item_code": code, "repeat_index": screen.repeat,
                                        "value": value, "answered_at": now, "language": language,
                                        "entered_with": control, "mode": mode})
        current[key] = value
    state = dict(r.flow_state or {})
    seen = list(state.get("seen") or [])
    if screen.key not in seen:
        seen.append(screen.key)
    state["seen"] = seen
    _record_save(db, s, r, inst, state, language, now, actor)
    if values:
        answers_saved.send(s.visit.occurrence_id, db=db, visit_q=s, instrument=inst.code, items=tuple(values),
                           now=now)
    return {}


# Core statements for the autosave (every answer the patient gives runs them; SQLAlchemy caches their SQL).
_ANSWER_T = Answer.__table__
_DELETE_ANSWER = delete(_ANSWER_T).where(_ANSWER_T.c.response_id == bindparam("rid"),
                                         _ANSWER_T.c.item_code == bindparam("item"),
                                         _ANSWER_T.c.repeat_index == bindparam("rep"))
# Only while the response is in progress: a submit that committed since this request read the visit (another
# tab) makes it match nothing, and the whole save is rolled back.
_SAVE_STATE = (update(Response.__table__)
               .where(Response.__table__.c.id == bindparam("rid"),
                      Response.__table__.c.status == ResponseStatus.IN_PROGRESS)
               .values(flow_state=bindparam("state"), language=bindparam("lang"), last_saved_at=bindparam("at")))


def _upsert_for(dialect: str) -> Any:
    stmt = dialect_insert(dialect)(_ANSWER_T)
    return stmt.on_conflict_do_update(
        index_elements=[_ANSWER_T.c.response_id, _ANSWER_T.c.item_code, _ANSWER_T.c.repeat_index],
        set_={"value": stmt.excluded.value, "answered_at": stmt.excluded.answered_at,
              "language": stmt.excluded.language, "entered_with": stmt.excluded.entered_with,
              "mode": stmt.excluded.mode})


# INSERT ... ON CONFLICT (response, item, repeat) DO UPDATE value and time, built once per database (building it
# for every answer cost about a tenth of an answer's time).
_UPSERT_ANSWER = {name: _upsert_for(name) for name in ("postgresql", "sqlite")}


def _upsert_answer(db: Session) -> Any:
    return _UPSERT_ANSWER[db.get_bind().dialect.name]


def _delete_answer(db: Session, response_id: int, key: tuple[str, int]) -> None:
    db.execute(_DELETE_ANSWER, {"rid": response_id, "item": key[0], "rep": key[1]})


def _record_save(db: Session, s: VisitQuestionnaire, r: ResponseState, inst: Instrument, state: dict[str, Any],
                 language: str, now: datetime, actor: str) -> None:
    """End of every save: new navigation state, language and time, and answers a change has hidden dropped."""
    r.flow_state = state
    saved = db.execute(_SAVE_STATE, {"rid": r.id, "state": state, "lang": language, "at": now}).rowcount
    if not saved:
        raise AlreadyCompleted          # submitted meanwhile: the caller rolls back, nothing of this save stays
    _prune_hidden(db, s, r, inst, actor, now)


def _prune_hidden(db: Session, s: VisitQuestionnaire, r: ResponseState, inst: Instrument, actor: str,
                  now: datetime, why: str = "no longer asked after a changed answer") -> None:
    """Drop answers a changed answer has hidden (7B after 7A turned Yes, ulcers after 'no new ulcer'), or a change
    of what the questionnaire knows of the patient (a liposuction date recorded while the entry was in progress)."""
    keep = flowmod.visible_keys(flowmod.instrument_screens(inst, s.answers.get(inst.code, {}), r.flow_state,
                                                           s.context(inst.code)), s.answers)
    keep_inst = keep.get(inst.code, set())
    for key in [k for k in s.answers.get(inst.code, {}) if k not in keep_inst]:
        _delete_answer(db, r.id, key)
        _audit_answer(db, s, r, key[0], key[1], s.answers[inst.code][key], None, actor, now, "answer.dropped", why)
        del s.answers[inst.code][key]


def complete(db: Session, s: VisitQuestionnaire, *, language: str, now: datetime, on_site: bool = False,
             actor: str = "patient", mode_wording: Mapping[str, str] | None = None) -> bool:
    """Complete every response of the occurrence once. Returns False when it was already completed.
    ``mode_wording``: {instrument code: the remote wording's version} when answered by voice or SMS."""
    if s.visit.completed:
        return False
    _check_writable(s, now)
    if not occurrences.complete(db, s.visit.occurrence_id, now=now, on_site=on_site):
        return False
    # The answers as they are now that the occurrence is ours: an answer another tab saved after this request
    # read them is scored too. Unfinished (or reopened by such an answer): refused, and the caller rolls back.
    _refresh(db, s)
    if any(ulcer_registry.uses_registry(i) for i in s.instruments) and s.registry and s.studies:
        # The ulcers' numbers are given now, one completion (or noted ulcer) at a time for this patient.
        ulcer_registry.lock_patient(db, s.visit.patient_id)
        s.contexts = contexts_for(db.connection(), s, s.registry, s.studies, fresh=True)
    if flowmod.first_unanswered(s.flow(), s.answers, s.states) is not None:
        raise ValueError("the questionnaire is not finished")
    for inst in s.instruments:
        if inst.code in s.responses:     # an answer the patient no longer sees is not sent (the team's change)
            _prune_hidden(db, s, s.responses[inst.code], inst, actor, now, "no longer asked when sent")
    for inst in s.instruments:
        r = _response(db, s, inst, language, now)
        ctx = s.context(inst.code)
        scores = score_with(inst, flowmod.as_scoring_answers(s.answers.get(inst.code, {})), ctx.ulcers)
        state = dict(r.flow_state or {})
        # What the patient was asked with, kept with the response: the wording read (exports say it) and the
        # registry as the entry opened (a correction scores again with it).
        wording = {i.code: w for i in inst.items if (w := i.wording(ctx.situations))}
        if wording:
            state["wording"] = wording
        if mode_wording and inst.code in mode_wording:
            state["mode_wording"] = mode_wording[inst.code]     # read aloud or sent by SMS (proapp/remote/)
        if "before_treatment" in ctx.situations and (inst.title_when or inst.instructions_when):
            state["worded_for"] = "before_treatment"        # its title and instructions (the exports say it)
        if ctx.ulcers is not None:
            state["ulcers"] = context_to_json(ctx.ulcers)
        db.execute(update(Response).where(Response.id == r.id).values(
            status=ResponseStatus.COMPLETED, completed_at=now, completed_on_site=on_site, scores=scores,
            last_saved_at=now, flow_state=state))
        r.status, r.scores, r.flow_state = ResponseStatus.COMPLETED, scores, state

        record(db, actor=actor, action="response.completed", entity="response", entity_id=r.id,
               patient_id=s.visit.patient_id, old={"status": "in_progress"},
               new={"status": "completed", "instrument": r.instrument_code, "version": r.instrument_version,
                    "language": language, "visit": s.visit.visit_code, "on_site": on_site, "scores": scores,
                    "answers": {f"{k[0]}:{k[1]}": v for k, v in sorted(s.answers.get(inst.code, {}).items())}},
               at=now)
    occurrences.announce_completion(db, s.visit.occurrence_id, now=now)
    return True


def _refresh(db: Session, s: VisitQuestionnaire) -> None:
    """Read the occurrence's responses and answers again (inside the caller's transaction)."""
    conn = db.connection()
    s.responses = {row.instrument_code: ResponseState(*row)
                   for row in conn.execute(_RESPONSES, {"occurrence": s.visit.occurrence_id})}
    s.answers = _answers_of(conn, s.visit)


def site_contact(conn: Connection, site_id: int) -> Row | None:
    """The site's name and phone number, for the patient to call (thank-you and SMS pages)."""
    return conn.execute(select(Site.name, Site.phone).where(Site.id == site_id)).first()


def sms_stopped_by_patient(conn: Connection, patient_id: int) -> bool:
    opted_out = conn.execute(select(PatientContact.opted_out_at)
                             .where(PatientContact.patient_id == patient_id)).first()
    return opted_out is not None and opted_out[0] is not None


def open_occurrence_for(db: Session, patient: Patient, now: datetime, visit: str | None = None) -> Occurrence | None:
    q = select(Occurrence).where(Occurrence.patient_id == patient.id)
    if visit:
        q = q.where(Occurrence.visit_code == visit)
    for occ in db.scalars(q.order_by(Occurrence.window_opens_at)):
        if occ.is_open(now):
            return occ
    return None
