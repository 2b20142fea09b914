"""What the dashboard pages show, read with a fixed number of SQL statements per page (the count does not grow
with the number of patients): aggregates are computed by the database, per-page details for one page only."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import and_, case, exists, func, literal_column, or_, select
from sqlalchemy.orm import Session, aliased

from proapp.accounts.access import Viewer
from proapp.alerts.models import Alert, AlertState
from proapp.export.data import acknowledged
from proapp.export.models import PushDelivery
from proapp.patients.models import Occurrence, OccurrenceStatus, Patient, PatientContact, PatientEvent, PatientStatus
from proapp.questionnaire.models import (
    AccessLink,
    Answer,
    Correction,
    NotedUlcer,
    Response,
    ResponseStatus,
    UlcerDecision,
)
from proapp.remote.models import Conversation
from proapp.sms.models import PROBLEMS, SmsMessage, SmsStatus
from proapp.studies.catalog import StudyCatalog
from proapp.studies.models import Site, Study

PER_PAGE = 50
DUE_SOON = timedelta(days=2)
FLAGS = ("open_alert", "overdue", "missed", "sms_problem", "sms_stopped", "treated_missing", "ulcer_query")


# Completion ------------------------------------------------------------------------------------------------

@dataclass
class Counts:
    expected: int = 0      # windows opened so far (cancelled ones excluded)
    completed: int = 0
    missed: int = 0
    open: int = 0

    def add(self, other: Counts) -> None:
        self.expected += other.expected
        self.completed += other.completed
        self.missed += other.missed
        self.open += other.open

    @property
    def decided(self) -> int:
        """The windows whose outcome is known: completed (even if still open), or closed."""
        return self.completed + self.missed

    @property
    def percent(self) -> int | None:
        """Completed among the windows that are decided (completed or closed); None before any."""
        return None if self.decided == 0 else round(100 * self.completed / self.decided)


def _missed(now: datetime):
    return or_(Occurrence.status == OccurrenceStatus.MISSED,
               and_(Occurrence.status == OccurrenceStatus.SCHEDULED, Occurrence.window_closes_at <= now))


def _is_open(now: datetime):
    return and_(Occurrence.status == OccurrenceStatus.SCHEDULED, Occurrence.window_opens_at <= now,
                Occurrence.window_closes_at > now)


def _count(cond) -> Any:
    return func.sum(case((cond, 1), else_=0))


@dataclass
class StudyOverview:
    study: Study
    visits: list[tuple[str, str]]                  # (code, label) in schedule order
    sites: list[Site]
    cells: dict[tuple[str, int], Counts]
    by_site: dict[int, Counts]
    by_visit: dict[str, Counts]
    total: Counts
    patients: dict[int, dict[str, int]]            # site id -> {status: count}
    behind: set[int] = field(default_factory=set)  # site ids under the threshold

    def cell(self, visit: str, site_id: int) -> Counts:
        return self.cells.get((visit, site_id), Counts())


def visible_studies(db: Session, viewer: Viewer) -> list[Study]:
    q = select(Study).order_by(Study.code)
    if not viewer.is_admin:
        q = q.where(Study.id.in_({s for s, _ in viewer.scopes} or {-1}))
    return list(db.scalars(q))


def visible_sites(db: Session, viewer: Viewer, study_ids: list[int]) -> list[Site]:
    return list(db.scalars(select(Site).where(Site.study_id.in_(study_ids or [-1]),
                                              viewer.sites_clause(Site.study_id, Site.id))
                           .order_by(Site.study_id, Site.code)))


def overview(db: Session, viewer: Viewer, catalog: StudyCatalog, now: datetime, language: str,
             threshold: int) -> list[StudyOverview]:
    """The completion matrix (visit x site) of every study the viewer sees: four statements in all."""
    studies = visible_studies(db, viewer)
    sites = visible_sites(db, viewer, [s.id for s in studies])
    opened = Occurrence.window_opens_at
    if db.get_bind().dialect.name == "sqlite":
        # Most windows have opened: a plain scan is twice as fast as the window_opens_at index SQLite would pick
        # (a unary + keeps it from using the index).
        opened = literal_column("+occurrence.window_opens_at", type_=Occurrence.window_opens_at.type)
    rows = db.execute(
        select(Patient.study_id, Patient.site_id, Occurrence.visit_code, func.count(),
               _count(Occurrence.status == OccurrenceStatus.COMPLETED), _count(_missed(now)), _count(_is_open(now)))
        .join(Patient, Patient.id == Occurrence.patient_id)
        .where(viewer.patients(), opened <= now, Occurrence.status != OccurrenceStatus.CANCELLED)
        .group_by(Patient.study_id, Patient.site_id, Occurrence.visit_code)).all()
    patient_rows = db.execute(select(Patient.study_id, Patient.site_id, Patient.status, func.count())
                              .where(viewer.patients())
                              .group_by(Patient.study_id, Patient.site_id, Patient.status)).all()
    out = []
    for study in studies:
        try:
            visit_defs = catalog.get(study.code).all_visits()
        except KeyError:
            visit_defs = []
        visits = [(v.code, getattr(v.label, language)) for v in visit_defs]
        ov = StudyOverview(study=study, visits=visits, sites=[s for s in sites if s.study_id == study.id],
                           cells={}, by_site=defaultdict(Counts), by_visit=defaultdict(Counts), total=Counts(),
                           patients=defaultdict(lambda: defaultdict(int)))
        known = {code for code, _ in visits}
        for study_id, site_id, visit, expected, completed, missed, open_ in rows:
            if study_id != study.id:
                continue
            c = Counts(int(expected), int(completed or 0), int(missed or 0), int(open_ or 0))
            ov.cells[(visit, site_id)] = c
            ov.by_site[site_id].add(c)
            ov.by_visit[visit].add(c)
            ov.total.add(c)
            if visit not in known:                 # a visit removed from the study file: still counted
                ov.visits.append((visit, visit))
                known.add(visit)
        for study_id, site_id, status, n in patient_rows:
            if study_id == study.id:
                ov.patients[site_id][status.value] += n
                ov.patients[site_id]["all"] += n
        ov.behind = {sid for sid, c in ov.by_site.items() if c.percent is not None and c.percent < threshold}
        out.append(ov)
    return out


# Patients list ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PatientFilters:
    study: str | None = None
    site: str | None = None
    status: str | None = None
    flag: str | None = None
    q: str | None = None
    page: int = 1


@dataclass
class PatientRow:
    id: int
    subject_id: str
    study: str
    site: str
    language: str
    status: str
    next_window: tuple[str, date, date] | None = None
    last_completed: datetime | None = None
    counts: Counts = field(default_factory=Counts)
    flags: list[str] = field(default_factory=list)


def _sms_problem(now: datetime):
    """SQL: the number is unusable, or an SMS failed and none was delivered after it."""
    later = aliased(SmsMessage)
    failed = exists().where(
        SmsMessage.patient_id == Patient.id, SmsMessage.status.in_(PROBLEMS),
        ~exists().where(later.patient_id == Patient.id, later.status == SmsStatus.DELIVERED, later.id > SmsMessage.id))
    return or_(PatientContact.usable.is_(False), failed)


def _open_alert():
    return exists().where(Alert.patient_id == Patient.id, Alert.state == AlertState.OPEN)


def _sms_stopped():
    return or_(PatientContact.sms_paused_at.is_not(None), PatientContact.opted_out_at.is_not(None))


def _overdue(now: datetime):
    """SQL: a window is open, not completed, and its target day has passed."""
    return exists().where(Occurrence.patient_id == Patient.id, _is_open(now), Occurrence.due_on < now.date())


def _has_missed(now: datetime):
    return exists().where(Occurrence.patient_id == Patient.id, _missed(now))


def _treated_missing(registry_studies: tuple[str, ...]):
    """SQL: a patient of a study with an ulcer registry (ADUSE) without a treated ulcer noted (the healing
    endpoint's ulcers, required before W0)."""
    return and_(Study.code.in_(registry_studies or ("",)), ~exists().where(
        NotedUlcer.patient_id == Patient.id, NotedUlcer.treated.is_(True)))


def _ulcer_query_open():
    """SQL: the patient answered "No, that is not right" to an ulcer the team noted (as corrected, if it was) and
    the team has not decided on that ulcer yet: the query the registry shows on the patient page is open."""
    ans, resp, occ = aliased(Answer), aliased(Response), aliased(Occurrence)
    latest = (select(Correction.new_value).where(Correction.response_id == ans.response_id,
                                                  Correction.item_code == ans.item_code,
                                                  Correction.repeat_index == ans.repeat_index)
              .order_by(Correction.id.desc()).limit(1).scalar_subquery())
    return (select(ans.id).join(resp, resp.id == ans.response_id).join(occ, occ.id == resp.occurrence_id)
            .where(occ.patient_id == Patient.id, resp.status == ResponseStatus.COMPLETED,
                   ans.item_code == "DU_CONFIRM_OK", func.coalesce(latest, ans.value) == "N",
                   ~exists().where(UlcerDecision.patient_id == Patient.id,
                                   UlcerDecision.number == ans.repeat_index)).exists())


def ulcer_counts(db: Session, viewer: Viewer, registry_studies: tuple[str, ...]) -> dict[int, tuple[int, int]]:
    """Per study with an ulcer registry: how many of the viewer's active patients need a treated ulcer noted, and how
    many have an ulcer query open (one statement)."""
    if not registry_studies:
        return {}
    rows = db.execute(
        select(Patient.study_id,
               func.sum(case((and_(_treated_missing(registry_studies), Patient.status == PatientStatus.ACTIVE), 1),
                             else_=0)),
               func.sum(case((_ulcer_query_open(), 1), else_=0)))
        .join(Study, Study.id == Patient.study_id)
        .where(viewer.patients(), Study.code.in_(registry_studies)).group_by(Patient.study_id)).all()
    return {sid: (int(missing or 0), int(open_ or 0)) for sid, missing, open_ in rows}


def patient_list(db: Session, viewer: Viewer, f: PatientFilters, now: datetime,
                 registry_studies: tuple[str, ...] = ()) -> tuple[list[PatientRow], int]:
    """One page of patients (and the total matching): five statements whatever the page or the filters.
    ``registry_studies``: the studies with an ulcer registry, whose patients need a treated ulcer noted."""
    conds = [viewer.patients()]
    if f.study:
        conds.append(Study.code == f.study)
    if f.site:
        conds.append(Site.code == f.site)
    if f.status in {s.value for s in PatientStatus}:
        conds.append(Patient.status == PatientStatus(f.status))
    if f.q:
        conds.append(func.upper(Patient.subject_id).contains(f.q.strip().upper(), autoescape=True))
    flag_conds = {"open_alert": _open_alert(), "overdue": _overdue(now), "missed": _has_missed(now),
                  "sms_problem": _sms_problem(now),
                  "sms_stopped": _sms_stopped(), "treated_missing": _treated_missing(registry_studies),
                  "ulcer_query": _ulcer_query_open()}
    if f.flag in flag_conds:
        conds.append(flag_conds[f.flag])
    base = (select(Patient.id).join(Study, Study.id == Patient.study_id).join(Site, Site.id == Patient.site_id)
            .outerjoin(PatientContact, PatientContact.patient_id == Patient.id).where(*conds))
    total = db.scalar(select(func.count()).select_from(base.subquery())) or 0
    # The page's patients first (ids only), then their details and flags: the flags' subqueries run for one
    # page of patients, not for every patient skipped by the offset.
    page_ids = list(db.scalars(base.order_by(Study.code, Patient.subject_id)
                               .limit(PER_PAGE).offset((max(f.page, 1) - 1) * PER_PAGE)))
    page_rows = db.execute(
        select(Patient.id, Patient.subject_id, Study.code, Site.code, Patient.language, Patient.status,
               _sms_stopped(), _sms_problem(now), _open_alert(), _treated_missing(registry_studies),
               _ulcer_query_open())
        .join(Study, Study.id == Patient.study_id).join(Site, Site.id == Patient.site_id)
        .outerjoin(PatientContact, PatientContact.patient_id == Patient.id)
        .where(Patient.id.in_(page_ids or [-1]))).all()
    order = {pid: i for i, pid in enumerate(page_ids)}
    page_rows.sort(key=lambda r: order[r[0]])
    rows = {pid: PatientRow(pid, subject, study, site, lang, status.value)
            for pid, subject, study, site, lang, status, *_flags in page_rows}
    for pid, *_rest, stopped, problem, alert, treated_missing, ulcer_query in page_rows:
        if treated_missing and rows[pid].status == PatientStatus.ACTIVE.value:
            rows[pid].flags.append("treated_missing")
        if ulcer_query:
            rows[pid].flags.append("ulcer_query")
        if alert:
            rows[pid].flags.append("open_alert")
        if problem:
            rows[pid].flags.append("sms_problem")
        if stopped:
            rows[pid].flags.append("sms_stopped")
    occurrences = db.execute(
        select(Occurrence.patient_id, Occurrence.visit_code, Occurrence.status, Occurrence.window_opens_at,
               Occurrence.window_closes_at, Occurrence.window_opens_on, Occurrence.window_closes_on,
               Occurrence.due_on, Occurrence.completed_at)
        .where(Occurrence.patient_id.in_(list(rows) or [-1]), Occurrence.status != OccurrenceStatus.CANCELLED)
        .order_by(Occurrence.patient_id, Occurrence.window_opens_at)).all()
    for pid, visit, status, opens_at, closes_at, opens_on, closes_on, due_on, completed_at in occurrences:
        row = rows[pid]
        if status == OccurrenceStatus.COMPLETED:
            row.counts.completed += 1
            row.last_completed = max(filter(None, (row.last_completed, completed_at)), default=None)
        elif status == OccurrenceStatus.MISSED or (status == OccurrenceStatus.SCHEDULED and closes_at <= now):
            row.counts.missed += 1
        elif row.next_window is None:
            row.next_window = (visit, opens_on, closes_on)
            if opens_at <= now and due_on < now.date() and "overdue" not in row.flags:
                row.flags.insert(0, "overdue")
    for row in rows.values():
        if "open_alert" in row.flags:           # first, whatever the order the others were found in
            row.flags.remove("open_alert")
            row.flags.insert(0, "open_alert")
        if row.counts.missed and "missed" not in row.flags:
            row.flags.append("missed")
    return list(rows.values()), total


# The patient page ------------------------------------------------------------------------------------------

TIMELINE_STATES = ("upcoming", "open", "invited", "delivered", "opened", "in_progress", "completed", "missed",
                   "cancelled")
SENT = (SmsStatus.ACCEPTED, SmsStatus.SENT, SmsStatus.DELIVERED)


@dataclass
class TimelineEntry:
    occurrence: Occurrence
    state: str
    label: str
    sms: list[SmsMessage]
    why: tuple[str, datetime | None] | None = None      # a cancelled visit's reason (``cancel_reason``)


def cancel_reason(occ: Occurrence, enrolled_at: datetime,
                  withdrawn_at: datetime | None) -> tuple[str, datetime | None] | None:
    """Why a visit is cancelled: ("before_enrolment", None), its window closed before the patient was enrolled;
    ("withdrawn", when), the patient was withdrawn while it was not yet closed; None when neither says (the page
    then shows the state alone)."""
    if occ.status != OccurrenceStatus.CANCELLED:
        return None
    if occ.window_closes_at <= enrolled_at:
        return "before_enrolment", None
    if withdrawn_at is not None and occ.window_closes_at > withdrawn_at:
        return "withdrawn", withdrawn_at
    return None


@dataclass
class PatientView:
    patient: Patient
    study: Study
    site: Site
    contact: PatientContact | None
    timeline: list[TimelineEntry]
    sms: list[SmsMessage]
    events: list[PatientEvent]
    responses: list[Response]
    # occurrence id -> (when the EDC had it all, whether a correction made since is not acknowledged yet)
    edc_received: dict[int, tuple[datetime, bool]] = field(default_factory=dict)
    # The voice calls and SMS conversations with the patient (newest first), each with its visit's code
    conversations: list[tuple[Conversation, str]] = field(default_factory=list)
    # response id -> the modes its answers were given in, first used first (["web"] for the web page alone)
    response_modes: dict[int, list[str]] = field(default_factory=dict)

    @property
    def counts(self) -> Counts:
        c = Counts()
        for e in self.timeline:
            if e.state == "completed":
                c.completed += 1
            elif e.state == "missed":
                c.missed += 1
        return c


def occurrence_state(occ: Occurrence, now: datetime, sms: list[SmsMessage], opened: bool, started: bool) -> str:
    if occ.status == OccurrenceStatus.COMPLETED:
        return "completed"
    if occ.status == OccurrenceStatus.CANCELLED:
        return "cancelled"
    if occ.status == OccurrenceStatus.MISSED or now >= occ.window_closes_at:
        return "missed"
    if now < occ.window_opens_at:
        return "upcoming"
    if started:
        return "in_progress"
    if opened:
        return "opened"
    if any(m.status == SmsStatus.DELIVERED for m in sms):
        return "delivered"
    if any(m.status in SENT for m in sms):
        return "invited"
    return "open"


def patient_view(db: Session, patient: Patient, catalog: StudyCatalog, now: datetime, language: str) -> PatientView:
    study, site = db.get(Study, patient.study_id), db.get(Site, patient.site_id)
    occurrences = list(db.scalars(select(Occurrence).where(Occurrence.patient_id == patient.id)
                                  .order_by(Occurrence.window_opens_at, Occurrence.visit_code)))
    messages = list(db.scalars(select(SmsMessage).where(SmsMessage.patient_id == patient.id)
                               .order_by(SmsMessage.created_at.desc(), SmsMessage.id.desc())))
    responses = list(db.scalars(select(Response).join(Occurrence, Occurrence.id == Response.occurrence_id)
                                .where(Occurrence.patient_id == patient.id).order_by(Response.id)))
    opened = set(db.scalars(select(AccessLink.occurrence_id).join(Occurrence, Occurrence.id == AccessLink.occurrence_id)
                            .where(Occurrence.patient_id == patient.id, AccessLink.first_opened_at.is_not(None))))
    events = list(db.scalars(select(PatientEvent).where(PatientEvent.patient_id == patient.id)
                             .order_by(PatientEvent.at.desc(), PatientEvent.id.desc())))
    try:
        labels = {v.code: getattr(v.label, language) for v in catalog.get(study.code).all_visits()}
    except KeyError:
        labels = {}
    sms_by_occ: dict[int, list[SmsMessage]] = defaultdict(list)
    for m in messages:
        sms_by_occ[m.occurrence_id].append(m)
    started = {r.occurrence_id for r in responses if r.status == ResponseStatus.IN_PROGRESS}
    withdrawn_at = next((e.at for e in events if e.action == "withdrawn"), None)
    timeline = [TimelineEntry(o, occurrence_state(o, now, [m for m in sms_by_occ[o.id] if m.round == o.sms_round],
                                                  o.id in opened, o.id in started),
                              labels.get(o.visit_code, o.visit_code), sms_by_occ[o.id],
                              cancel_reason(o, patient.enrolled_at, withdrawn_at))
                for o in occurrences]
    contact = db.get(PatientContact, patient.id)

    acks = acknowledged(db, [r.id for r in responses if r.status == ResponseStatus.COMPLETED])
    by_occ: dict[int, list[Any]] = defaultdict(list)
    for r in responses:
        if r.status == ResponseStatus.COMPLETED:
            by_occ[r.occurrence_id].append(acks.get(r.id))
    # An occurrence is received when the EDC acknowledged every response of it; "behind" when it has not yet
    # acknowledged a correction made since.
    received = {occ: (max(a.at for a in got), any(a.behind for a in got))
                for occ, got in by_occ.items() if all(got)}
    conversations = [(c, code) for c, code in db.execute(
        select(Conversation, Occurrence.visit_code).join(Occurrence, Occurrence.id == Conversation.occurrence_id)
        .where(Conversation.patient_id == patient.id)
        .order_by(Conversation.started_at.desc(), Conversation.id.desc()))]
    return PatientView(patient, study, site, contact, timeline, messages, events, responses, received,
                       conversations, response_modes(db, [r.id for r in responses
                                                          if r.status == ResponseStatus.COMPLETED]))


def response_modes(db: Session, response_ids: list[int]) -> dict[int, list[str]]:
    """How each response's answers were given: its modes, first used first (an answer saved before modes were
    recorded counts as the web page)."""
    out: dict[int, list[str]] = {}
    for rid, mode in db.execute(select(Answer.response_id, Answer.mode)
                                .where(Answer.response_id.in_(response_ids or [-1]))
                                .order_by(Answer.response_id, Answer.answered_at, Answer.id)):
        modes = out.setdefault(rid, [])
        if (mode or "web") not in modes:
            modes.append(mode or "web")
    return out


# Score trends ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Measure:
    key: str
    instrument: str
    low: float
    high: float

    def value(self, scores: dict[str, Any] | None) -> float | None:
        if not scores:
            return None
        v = scores.get(self.key)
        return None if v is None else float(v)


# One chart per measure: the diary's open ulcers (after each entry, version 2.0 on) beside its new ones, and the
# tolerance checklist's worst grade.
MEASURES = (Measure("total", "DLQI", 0, 30), Measure("haq_di", "HAQ", 0, 3), Measure("pain", "PAIN_VAS", 0, 100),
            Measure("active_ulcer_count", "DU_DIARY", 0, 10), Measure("new_ulcer_count", "DU_DIARY", 0, 10),
            Measure("worst", "TOLERANCE", 0, 4))


@dataclass
class TrendPoint:
    visit: str
    opens_on: date
    closes_on: date
    completed_at: datetime
    value: float


def trends(view: PatientView) -> dict[Measure, list[TrendPoint]]:
    by_occ = {e.occurrence.id: e.occurrence for e in view.timeline}
    out: dict[Measure, list[TrendPoint]] = {m: [] for m in MEASURES}
    for r in view.responses:
        if r.status != ResponseStatus.COMPLETED or r.completed_at is None:
            continue
        for m in MEASURES:
            value = m.value(r.scores) if m.instrument == r.instrument_code else None
            if value is not None:
                occ = by_occ[r.occurrence_id]
                out[m].append(TrendPoint(occ.visit_code, occ.window_opens_on, occ.window_closes_on,
                                                    r.completed_at, value))
    for points in out.values():
        points.sort(key=lambda p: p.completed_at)
    return out


# Completion CSV --------------------------------------------------------------------------------------------

CSV_COLUMNS = ("study", "site", "subject_id", "patient_status", "visit", "target_day", "window_opens_on",
               "window_closes_on", "state", "completed_at_utc", "completed_on_site", "invitation_sms")


def completion_rows(db: Session, viewer: Viewer, study_id: int, study_code: str, site_code: str | None,
                    now: datetime) -> Iterator[tuple[Any, ...]]:
    """One row per occurrence of the viewer's patients in ``study``, streamed from the database."""
    inv = aliased(SmsMessage)
    q = (select(Site.code, Patient.subject_id, Patient.status, Occurrence.visit_code, Occurrence.due_on,
                Occurrence.window_opens_on, Occurrence.window_closes_on, Occurrence.status,
                Occurrence.window_opens_at, Occurrence.window_closes_at, Occurrence.completed_at,
                Occurrence.completed_on_site, inv.status)
         .join(Patient, Patient.id == Occurrence.patient_id).join(Site, Site.id == Patient.site_id)
         .outerjoin(inv, and_(inv.occurrence_id == Occurrence.id, inv.round == Occurrence.sms_round,
                              inv.kind == "invitation"))
         .where(Patient.study_id == study_id, viewer.patients())
         .order_by(Site.code, Patient.subject_id, Occurrence.window_opens_at, Occurrence.visit_code))
    if site_code:
        q = q.where(Site.code == site_code)
    for (site, subject, pstatus, visit, due, opens_on, closes_on, status, opens_at, closes_at, completed_at,
         on_site, inv_status) in db.execute(q.execution_options(yield_per=1000)):
        if status == OccurrenceStatus.SCHEDULED:
            state = "upcoming" if now < opens_at else "open" if now < closes_at else "missed"
        else:
            state = status.value
        yield (study_code, site, subject, pstatus.value, visit, due.isoformat(), opens_on.isoformat(),
               closes_on.isoformat(), state,
               completed_at.strftime("%Y-%m-%dT%H:%M:%SZ") if completed_at else "",
               "" if on_site is None else ("yes" if on_site else "no"), inv_status.value if inv_status else "")


# Small reads of the patient and response pages, the downloads and the administration pages -----------------

def occurrence_of(db: Session, patient_id: int, occurrence_id: int) -> Occurrence | None:
    return db.scalar(select(Occurrence).where(Occurrence.id == occurrence_id, Occurrence.patient_id == patient_id))


def response_of(db: Session, patient_id: int, response_id: int) -> Response | None:
    return db.scalar(select(Response).join(Occurrence, Occurrence.id == Response.occurrence_id)
                     .where(Response.id == response_id, Occurrence.patient_id == patient_id))


def original_answers(db: Session, response_id: int) -> dict[tuple[str, int], str | None]:
    """The answers as the patient gave them (corrections are kept beside them)."""
    return {(code, rep): value for code, rep, value in db.execute(
        select(Answer.item_code, Answer.repeat_index, Answer.value).where(Answer.response_id == response_id))}


def answer_modes(db: Session, response_id: int) -> dict[tuple[str, int], str]:
    """How the patient gave each answer (``ANSWER_MODES``; "web" for one saved before modes were recorded)."""
    return {(code, rep): mode or "web" for code, rep, mode in db.execute(
        select(Answer.item_code, Answer.repeat_index, Answer.mode).where(Answer.response_id == response_id))}


def study_by_code(db: Session, code: str) -> Study | None:
    return db.scalar(select(Study).where(Study.code == code))


def has_site(db: Session, study_id: int, site_code: str) -> bool:
    return db.scalar(select(Site.id).where(Site.study_id == study_id, Site.code == site_code)) is not None


def deliveries(db: Session, status: str | None, limit: int = 200) -> list[Any]:
    """The newest pushes to the EDC endpoints, with their study's code."""
    q = (select(PushDelivery, Study.code).join(Study, Study.id == PushDelivery.study_id)
         .order_by(PushDelivery.id.desc()).limit(limit))
    if status:
        q = q.where(PushDelivery.status == status)
    return list(db.execute(q).all())
