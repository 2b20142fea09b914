"""The patient's ulcer registry, read from the database: the ulcers the study team noted and every completed
ulcer entry (the baseline inventory, the weekly diaries), folded by the pure rules of ``instruments.ulcers``.

Nothing here is a copy that could drift: the registry is computed from the rows it comes from (the answers as
corrected, the classification each response stored at completion). Numbers are given under a lock of the
patient's row (the completion of an entry, a noted ulcer), so two never get the same one.

Every page of a diary needs the registry, and it changes only when a row it comes from is added: an ulcer entry
completed, a correction, an ulcer noted by the team (those rows are only ever added). So the patient pages read its
version with the visit (`version_columns`: how many entries were completed, corrections made and ulcers noted)
and compute it once per version and patient (`remembered_ulcers`); a write that numbers ulcers
reads it afresh under the patient's lock.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import cached_property
from typing import Any
from zoneinfo import ZoneInfo

from flask_babel import lazy_gettext as _l
from sqlalchemy import Connection, ScalarSelect, func, select
from sqlalchemy.orm import Session, aliased

from proapp.audit.trail import record
from proapp.instruments import Instrument, Registry
from proapp.instruments.ulcers import (
    CLOSED,
    CONFIRMED,
    NEW,
    RELOCATED,
    Course,
    Decision,
    Entry,
    Noted,
    UlcerContext,
    context_of,
    courses,
    decided,
    reports_of,
)
from proapp.patients.models import Occurrence, Patient
from proapp.questionnaire.models import Answer, Correction, NotedUlcer, Response, ResponseStatus, UlcerDecision

HANDS, FINGERS = ("L", "R"), ("1", "2", "3", "4", "5")
ULCER_INSTRUMENTS = ("DU_BASELINE", "DU_DIARY")          # the instruments whose entries the registry is made of


def uses_registry(inst: Instrument) -> bool:
    """An instrument whose repeats are the patient's ulcers (the diary from version 2, the baseline inventory)."""
    return any(g.repeats_from for g in inst.groups)


@dataclass(frozen=True)
class PatientUlcers:
    courses: list[Course]
    anchor: date
    completed_codes: frozenset[str]          # the ulcer instruments completed at least once (any version)
    # who took each of the team's decisions and when, by ulcer (in order), and the treated notes (by, at)
    decided_by: tuple[tuple[int, str, datetime], ...] = ()
    treated_notes: tuple[tuple[str, datetime], ...] = ()
    # the items answered (outside a group) in a completed entry: the diary's first question about the harvest site
    answered_items: frozenset[str] = frozenset()

    @cached_property
    def _context(self) -> UlcerContext:
        return context_of(self.courses, self.anchor)

    def context(self) -> UlcerContext:
        """The registry as an entry opens (computed once per registry: the flow's memo finds it again)."""
        return self._context


def _effective_answers(conn: Connection, response_ids: list[int]) -> dict[int, dict[tuple[str, int], str]]:
    out: dict[int, dict[tuple[str, int], str]] = {rid: {} for rid in response_ids}
    if not response_ids:
        return out
    for rid, code, rep, value in conn.execute(select(Answer.response_id, Answer.item_code, Answer.repeat_index,
                                                     Answer.value).where(Answer.response_id.in_(response_ids))):
        if value is not None:
            out[rid][(code, rep)] = value
    for rid, code, rep, value in conn.execute(select(Correction.response_id, Correction.item_code,
                                                     Correction.repeat_index, Correction.new_value)
                                              .where(Correction.response_id.in_(response_ids))
                                              .order_by(Correction.id)):
        out[rid][(code, rep)] = value
    return out


RegistryVersion = tuple[int, int, int]


def version_columns(occurrence: Any) -> list[ScalarSelect]:
    """The registry's version for the patient of the occurrence ``occurrence`` (a bound parameter) as three columns
    for the visit's query: how many ulcer entries were completed, corrections made and ulcers noted. Counts, not
    the last ids: a row with a smaller id may commit after one with a larger. Each depends on the parameter only,
    so the database computes it once per query (not once per row)."""
    occ, resp = aliased(Occurrence), aliased(Response)
    patient = select(occ.patient_id).where(occ.id == occurrence).scalar_subquery()
    entries = (select(func.count()).select_from(resp).join(occ, occ.id == resp.occurrence_id)
               .where(occ.patient_id == patient, resp.status == ResponseStatus.COMPLETED,
                      resp.instrument_code.in_(ULCER_INSTRUMENTS)))
    corrections = (select(func.count(Correction.id)).join(resp, resp.id == Correction.response_id)
                   .join(occ, occ.id == resp.occurrence_id).where(occ.patient_id == patient))
    # The ulcers noted and the team's decisions on them, counted together (both only ever added).
    noted = select(select(func.count(NotedUlcer.id)).where(NotedUlcer.patient_id == patient).scalar_subquery()
                   + select(func.count(UlcerDecision.id)).where(UlcerDecision.patient_id == patient)
                   .scalar_subquery())
    return [q.correlate(None).scalar_subquery().label(name)
            for q, name in ((entries, "ulcer_entries"), (corrections, "corrections"), (noted, "noted_ulcers"))]


# A patient's registry per version: {(registry, engine, patient, version), by the objects' ids: (registry, engine,
# PatientUlcers)}, the oldest dropped first. The registry and the engine are kept with it and compared: an app has
# its own engine (a test's app on an emptied database gets a new one), and another object may later take an id.
_REMEMBERED: dict[tuple[int, int, int, RegistryVersion], tuple[Registry, Any, PatientUlcers]] = {}
_REMEMBER = 2048


def remembered_ulcers(conn: Connection, patient_id: int, registry: Registry,
                      version: RegistryVersion) -> PatientUlcers:
    """The patient's registry at ``version`` (read with the visit, in the same transaction): computed when this
    version is first seen, then found again. A version is never reused for other rows: each of its counts grows when
    a row is added (none is ever changed or deleted), and the rows are read after the version, so at least as new."""
    key = (id(registry), id(conn.engine), patient_id, version)
    found = _REMEMBERED.get(key)
    if found is not None and found[0] is registry and found[1] is conn.engine:
        return found[2]
    ulcers = patient_ulcers(conn, patient_id, registry)
    if len(_REMEMBERED) >= _REMEMBER:
        _REMEMBERED.pop(next(iter(_REMEMBERED)), None)
    _REMEMBERED[key] = (registry, conn.engine, ulcers)
    return ulcers


def patient_ulcers(conn: Connection, patient_id: int, registry: Registry) -> PatientUlcers:
    """The registry of ``patient_id`` after every entry completed so far."""
    patient = conn.execute(select(Patient.anchor_date, Patient.timezone).where(Patient.id == patient_id)).one()
    zone = ZoneInfo(patient.timezone)
    rows = conn.execute(
        select(Response.id, Response.instrument_code, Response.instrument_version, Response.completed_at,
               Response.scores, Response.corrected_scores, Occurrence.visit_code)
        .join(Occurrence, Occurrence.id == Response.occurrence_id)
        .where(Occurrence.patient_id == patient_id, Response.status == ResponseStatus.COMPLETED,
               Response.instrument_code.in_(ULCER_INSTRUMENTS))
        .order_by(Response.completed_at, Response.id)).all()
    entries_rows = []
    for row in rows:
        try:
            inst = registry.get(row.instrument_code, row.instrument_version)
        except KeyError:
            continue
        if uses_registry(inst):
            entries_rows.append(row)
    answers = _effective_answers(conn, [r.id for r in entries_rows])
    noted: list[Noted] = []
    entries: list[Entry] = []
    for row in entries_rows:
        groups: dict[str, dict[int, dict[str, str]]] = {}
        for (code, rep), value in answers[row.id].items():
            if rep:
                group = registry.get(row.instrument_code, row.instrument_version).item(code).group
                groups.setdefault(group or "", {}).setdefault(rep, {})[code] = value
        reports = reports_of(row.corrected_scores or row.scores)
        on = row.completed_at.astimezone(zone).date()
        for k, (kind, n) in sorted(reports.items()):
            u = groups.get("DU_ULCER", {}).get(k, {})
            if kind == NEW and {"DU_HAND", "DU_FINGER", "DU_SITE"} <= set(u):
                onset = _day(u.get("DU_ONSET"))
                noted.append(Noted(n, u["DU_HAND"], u["DU_FINGER"], u["DU_SITE"], False, False, on, row.visit_code,
                                   onset if onset and onset <= on else None))
        entries.append(Entry(row.visit_code, on, groups, reports))
    marks = set()
    treated_notes = []
    t = NotedUlcer.__table__
    for n in conn.execute(select(t).where(t.c.patient_id == patient_id).order_by(t.c.id)):
        if n.treated:
            treated_notes.append((n.recorded_by, n.recorded_at))
        if n.marks_reported:
            marks.add(n.number)
        else:
            noted.append(Noted(n.number, n.hand, n.finger, n.site, n.treated, True, n.noted_on))
    noted = [Noted(u.number, u.hand, u.finger, u.site, u.treated or u.number in marks, u.staff_noted, u.noted_on,
                   u.visit, u.onset) for u in noted]
    d = UlcerDecision.__table__
    decision_rows = conn.execute(select(d).where(d.c.patient_id == patient_id).order_by(d.c.id)).all()
    decisions = [Decision(r.number, r.action, (r.hand, r.finger, r.site) if r.hand else None, r.closed_on)
                 for r in decision_rows]
    return PatientUlcers(decided(courses(noted, entries), decisions), patient.anchor_date,
                         frozenset(r.instrument_code for r in rows),
                         tuple((r.number, r.decided_by, r.decided_at) for r in decision_rows),
                         tuple(treated_notes),
                         frozenset(code for row in entries_rows for (code, rep) in answers[row.id] if rep == 0))


def _day(value: str | None) -> date | None:
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        return None


def lock_patient(db: Session, patient_id: int) -> None:
    """Hold the patient's row until commit: ulcer numbers are given one at a time (PostgreSQL; SQLite has one
    writer at a time anyway)."""
    db.execute(select(Patient.id).where(Patient.id == patient_id).with_for_update())


class NoteRefused(ValueError):
    def __init__(self, message: object):
        super().__init__(str(message))
        self.message = message


def note_ulcer(db: Session, registry: Registry, patient: Patient, *, hand: str, finger: str, site: str,
               treated: bool, noted_on: date, actor: str, now: datetime) -> NotedUlcer:
    """Record an ulcer the study team saw (or that an ulcer the patient reported was treated). The patient is
    asked to confirm a noted ulcer in their next entry."""
    places = registry.get("DU_BASELINE").item("DU_SITE").allowed_values()
    if hand not in HANDS or finger not in FINGERS or site not in places:
        raise NoteRefused(_l("Choose the hand, the finger and the place of the ulcer."))
    today = now.astimezone(ZoneInfo(patient.timezone)).date()
    if noted_on > today:
        raise NoteRefused(_l("This date is in the future."))
    lock_patient(db, patient.id)
    found = patient_ulcers(db.connection(), patient.id, registry)
    same = [c for c in found.courses if c.ulcer.place == (hand, finger, site) and not c.healed
            and c.closed_on is None]
    if same:
        course = same[0]
        if course.ulcer.staff_noted or not treated or course.ulcer.treated:
            raise NoteRefused(_l("Ulcer %(n)s is already recorded at this place.", n=course.ulcer.number))
        row = NotedUlcer(patient_id=patient.id, number=course.ulcer.number, hand=hand, finger=finger, site=site,
                         treated=True, noted_on=noted_on, recorded_by=actor, recorded_at=now, marks_reported=True)
    else:
        number = max((c.ulcer.number for c in found.courses), default=0) + 1
        row = NotedUlcer(patient_id=patient.id, number=number, hand=hand, finger=finger, site=site,
                         treated=treated, noted_on=noted_on, recorded_by=actor, recorded_at=now)
    db.add(row)
    db.flush()
    record(db, actor=actor, action="ulcer.noted", entity="noted_ulcer", entity_id=row.id, patient_id=patient.id,
           new={"number": row.number, "hand": hand, "finger": finger, "site": site, "treated": row.treated,
                "noted_on": noted_on.isoformat(), "marks_reported": row.marks_reported}, at=now)
    return row


ACTIONS = (CONFIRMED, RELOCATED, CLOSED)


def decide_ulcer(db: Session, registry: Registry, patient: Patient, *, number: int, action: str, reason: str,
                 actor: str, now: datetime, place: tuple[str, str, str] | None = None,
                 closed_on: date | None = None) -> UlcerDecision:
    """The team's decision on ulcer ``number``: resolve the patient's dispute (``confirmed``: the note is right,
    ``relocated``: at ``place``, ``closed``) or close the ulcer (``closed`` on ``closed_on``: followed no more).
    Audited with who, when, why and what changed."""
    reason = reason.strip()
    if action not in ACTIONS:
        raise NoteRefused(_l("Choose what to do with the ulcer."))
    if not reason:
        raise NoteRefused(_l("Please give a reason."))
    lock_patient(db, patient.id)
    found = patient_ulcers(db.connection(), patient.id, registry)
    course = next((c for c in found.courses if c.ulcer.number == number), None)
    if course is None or course.closed_on is not None:
        raise NoteRefused(_l("Ulcer %(n)s is not followed.", n=number))
    disputed = course.disputed is not None and course.resolution is None
    if action in (CONFIRMED, RELOCATED) and not disputed:
        raise NoteRefused(_l("Ulcer %(n)s has no open query.", n=number))
    row = UlcerDecision(patient_id=patient.id, number=number, action=action, reason=reason[:500], decided_by=actor,
                        decided_at=now)
    if action == RELOCATED:
        places = registry.get("DU_BASELINE").item("DU_SITE").allowed_values()
        if place is None or place[0] not in HANDS or place[1] not in FINGERS or place[2] not in places:
            raise NoteRefused(_l("Choose the hand, the finger and the place of the ulcer."))
        if place == course.ulcer.place:
            raise NoteRefused(_l("This is where the ulcer is recorded already."))
        there = next((c for c in found.courses if c.ulcer.place == place and not c.healed and c.closed_on is None),
                     None)
        if there is not None:           # the same ulcer twice: close this one instead (the other keeps its course)
            raise NoteRefused(_l("Ulcer %(n)s is already recorded at this place: if it is this one, record it as "
                                 "treated (Record an ulcer) and close this one.", n=there.ulcer.number))
        row.hand, row.finger, row.site = place
    if action == CLOSED:
        today = now.astimezone(ZoneInfo(patient.timezone)).date()
        if closed_on is None:
            raise NoteRefused(_l("Please enter a date."))
        if closed_on > today:
            raise NoteRefused(_l("This date is in the future."))
        if closed_on < course.ulcer.noted_on:
            raise NoteRefused(_l("This date is before the ulcer was noted."))
        row.closed_on = closed_on
    db.add(row)
    db.flush()
    u = course.ulcer
    record(db, actor=actor, action="ulcer.query_resolved" if disputed else "ulcer.closed", entity="ulcer_decision",
           entity_id=row.id, patient_id=patient.id, reason=row.reason,
           old={"number": number, "hand": u.hand, "finger": u.finger, "site": u.site,
                "disputed_at": course.disputed[0] if course.disputed else None},
           new={"number": number, "action": action, "hand": row.hand or u.hand, "finger": row.finger or u.finger,
                "site": row.site or u.site, "closed_on": closed_on.isoformat() if row.closed_on else None}, at=now)
    return row


def active_count(found: Iterable[Course]) -> int:
    return sum(1 for c in found if not c.healed and c.closed_on is None)


@dataclass(frozen=True)
class UlcerQuery:
    """A query for the site, as a clinical data manager raises one: about one ulcer (the patient said the team's
    note is not right) or about the patient (no treated ulcer noted when the W0 questionnaire opened)."""

    id: str                          # stable: ``NOT-CONFIRMED-<ulcer>`` or ``TREATED-MISSING``
    kind: str                        # not_confirmed, treated_missing
    number: int | None               # the ulcer (None: about the patient)
    opened_on: date                  # the day the patient answered, or the day the W0 window opened
    visit: str | None                # the entry the patient answered in
    patient_answer: str | None       # the patient's answer (DU_CONFIRM_OK: "N", "No, that is not right")
    resolution: str | None           # None: open; confirmed, relocated, closed, or noted (the treated ulcer)
    resolved_by: str | None
    resolved_at: datetime | None

    @property
    def is_open(self) -> bool:
        return self.resolution is None


@dataclass(frozen=True)
class UlcerRow:
    """One ulcer as the study team's patient page lists it (and the registry's export carries it)."""

    number: int
    place: str                       # "Left hand · Index finger · Fingertip", in the reader's language
    calcinosis: bool                 # over a calcinosis: outside the protocol's definition of a digital ulcer
    treated: bool
    noted_by_team: bool
    first_reported: str | None       # the visit of the patient's first report (None: noted by the team)
    noted_on: date
    state: str                       # open, healed, awaiting_confirmation, closed
    healed_on: date | None
    days_to_healing: int | None
    reopened: int
    last_open_on: date | None
    hand: str = ""
    finger: str = ""
    site: str = ""
    noted_by: str | None = None      # who noted it (the team's actor), None: the patient reported it
    closed_on: date | None = None    # closed by the team
    query: UlcerQuery | None = None  # the patient's dispute, open or resolved


@dataclass(frozen=True)
class UlcerList:
    rows: list[UlcerRow]
    anchor: date
    queries: list[UlcerQuery] = field(default_factory=list)
    treated_due: datetime | None = None   # no treated ulcer noted yet: when the W0 questionnaire opens

    @property
    def open_count(self) -> int:
        return sum(1 for r in self.rows if r.state == "open")

    @property
    def open_queries(self) -> list[UlcerQuery]:
        return [q for q in self.queries if q.is_open]


def _first_visit(conn: Connection, patient_id: int) -> tuple[datetime | None, datetime | None]:
    """When the patient's first visit (W0) opens, and when the treated ulcer is due at the latest: when the patient
    began W0's questionnaires, or when its window closed (the injection day's end), whichever came first."""
    first = conn.execute(select(Occurrence.id, Occurrence.window_opens_at, Occurrence.window_closes_at)
                         .where(Occurrence.patient_id == patient_id)
                         .order_by(Occurrence.window_opens_at, Occurrence.id).limit(1)).first()
    if first is None:
        return None, None
    began = conn.scalar(select(func.min(Response.started_at)).where(Response.occurrence_id == first.id))
    return first.window_opens_at, min(filter(None, (began, first.window_closes_at)))


def treated_query(found: PatientUlcers, due: datetime | None, now: datetime | None,
                  zone: ZoneInfo) -> UlcerQuery | None:
    """The missing-data query "treated ulcer not noted", as a data manager raises one: opened when the patient began
    the W0 questionnaire (or its window closed) without a treated ulcer noted, resolved by the first treated note.
    The patient is never kept from answering: their baseline inventory lists every ulcer, and they confirm the
    treated one in their next entry."""
    note = found.treated_notes[0] if found.treated_notes else None
    if due is None or (note is not None and note[1] <= due) or (note is None and now is not None and now < due):
        return None
    return UlcerQuery("TREATED-MISSING", "treated_missing", None, due.astimezone(zone).date(), None, None,
                      "noted" if note else None, note[0] if note else None, note[1] if note else None)


def ulcer_list(conn: Connection, patient_id: int, registry: Registry, language: str,
               now: datetime | None = None) -> UlcerList:
    found = patient_ulcers(conn, patient_id, registry)
    zone = ZoneInfo(conn.scalar(select(Patient.timezone).where(Patient.id == patient_id)) or "UTC")
    inst = registry.get("DU_BASELINE")
    rows, queries = [], []
    opens_at, due = _first_visit(conn, patient_id)
    missing = treated_query(found, due, now, zone)
    if missing is not None:
        queries.append(missing)
    noted_by = {}
    t = NotedUlcer.__table__
    for n in conn.execute(select(t.c.number, t.c.recorded_by).where(t.c.patient_id == patient_id,
                                                                    t.c.marks_reported.is_(False))):
        noted_by[n.number] = n.recorded_by
    for c in found.courses:
        u = c.ulcer
        names = []
        for code, value in (("DU_HAND", u.hand), ("DU_FINGER", u.finger), ("DU_SITE", u.site)):
            try:
                names.append(inst.item(code).option_label(value, language))
            except ValueError:
                names.append(value)
        state = ("closed" if c.closed_on is not None
                 else "awaiting_confirmation" if u.staff_noted and c.confirmed is None
                 else "healed" if c.healed else "open")
        query = None
        if c.disputed is not None:
            by = next(((who, at) for n, who, at in found.decided_by if n == u.number), None) if c.resolution else None
            query = UlcerQuery(f"NOT-CONFIRMED-{u.number}", "not_confirmed", u.number, c.disputed[1], c.disputed[0],
                               "N", c.resolution, by[0] if by else None, by[1] if by else None)
            queries.append(query)
        rows.append(UlcerRow(u.number, " · ".join(names), u.site == "CALC", u.treated, u.staff_noted, u.visit,
                             u.noted_on, state, c.healed_on, c.days_to_healing(found.anchor), c.reopened,
                             c.last_open_on, u.hand, u.finger, u.site, noted_by.get(u.number), c.closed_on, query))
    due = opens_at if not found.treated_notes else None
    return UlcerList(rows, found.anchor, queries, due)
