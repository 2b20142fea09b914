"""Reading the feed for one API key: completed responses with their answers, in batches (constant memory)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import exists, func, select
from sqlalchemy.orm import Session

from proapp.audit.trail import record
from proapp.db import dialect_insert
from proapp.export.models import Acknowledgement, ApiKey
from proapp.patients.models import Agreement, Occurrence, Patient
from proapp.questionnaire.models import Answer, Correction, Response, ResponseStatus
from proapp.studies.models import Site

BATCH = 500


@dataclass
class Exported:
    id: int
    seq: int
    occurrence_id: int
    subject_id: str
    site: str
    visit: str
    due_on: date
    opens_on: date
    closes_on: date
    instrument: str
    version: str
    language: str
    completed_at: datetime
    on_site: bool
    scores: dict[str, Any] | None
    corrected_scores: dict[str, Any] | None = None
    answers: list[tuple[str, int, str | None, datetime]] = field(default_factory=list)
    # (item, repeat, old value, new value, reason, by, when, signature meaning, signature method, source, day the
    # patient asked, how they asked), in order; empty for an uncorrected response
    corrections: list[tuple[str, int, str | None, str, str, str, datetime, str | None, str | None, str | None,
                            date | None, str | None]] = field(default_factory=list)
    # The wording the patient read where it depended on their situation: {item code: situation} ("first_entry")
    wording: dict[str, str] = field(default_factory=dict)
    # The patient's agreement to SMS and to answering online, then their acknowledgements of later information
    # sheets: (kind, information sheet version, the day given), oldest first
    agreements: list[tuple[str, str | None, date]] = field(default_factory=list)
    patient_id: int = 0
    # The language each answer was given in ({(item, repeat): "fr"}): a patient may switch language midway; answers
    # given before migration 0024 have none (the response's ``language`` is the one it was completed in).
    answer_languages: dict[tuple[str, int], str] = field(default_factory=dict)

    @property
    def languages(self) -> list[str]:
        """Every language the patient answered this response in, in the order first used (the response's own when
        no answer says)."""
        by_time = sorted((at, self.answer_languages[(code, rep)]) for code, rep, _v, at in self.answers
                         if (code, rep) in self.answer_languages)
        return list(dict.fromkeys(lang for _at, lang in by_time)) or [self.language]

    def language_of(self, code: str, repeat: int) -> str:
        """The language the patient read this question in (the response's, for an answer that does not say)."""
        return self.answer_languages.get((code, repeat), self.language)
    # A visual analogue scale's control each value was given with: {(item, repeat): "line" or "number"}
    entered_with: dict[tuple[str, int], str] = field(default_factory=dict)
    # How each stored answer was given ({(item, repeat): "voice_dtmf"}, ``ANSWER_MODES``): every answer the patient
    # gave has one, "web" for those saved before migration 0028 (the web page was the only way then).
    answer_modes: dict[tuple[str, int], str] = field(default_factory=dict)
    # The remote wording version the questions were read or sent with ("2.2-R1"), for a response answered by voice
    # or SMS (the response's ``flow_state``); None for the web page's wording.
    mode_wording: str | None = None

    @property
    def modes(self) -> list[str]:
        """Every mode the patient answered this response in, in the order first used ("web" when none says)."""
        by_time = sorted((at, self.answer_modes[(code, rep)]) for code, rep, _v, at in self.answers
                         if (code, rep) in self.answer_modes)
        return list(dict.fromkeys(mode for _at, mode in by_time)) or ["web"]

    def effective(self) -> list[tuple[str, int, str | None, datetime]]:
        """The answers as corrected: a corrected value replaces the original (kept in ``corrections``)."""
        if not self.corrections:
            return self.answers
        latest = {(c[0], c[1]): (c[3], c[6]) for c in self.corrections}
        out = [(code, rep, *latest.pop((code, rep), (value, at))) for code, rep, value, at in self.answers]
        out += [(code, rep, value, at) for (code, rep), (value, at) in latest.items()]
        return out

    @property
    def current_scores(self) -> dict[str, Any] | None:
        return self.corrected_scores if self.corrections and self.corrected_scores else self.scores


def _scope(key: ApiKey) -> list:
    conds = [Patient.study_id == key.study_id, Response.status == ResponseStatus.COMPLETED,
             Response.export_seq.is_not(None)]
    if key.site_ids:
        conds.append(Patient.site_id.in_(key.site_ids))
    return conds


def _joined(stmt):
    return (stmt.join(Occurrence, Occurrence.id == Response.occurrence_id)
            .join(Patient, Patient.id == Occurrence.patient_id))


def page_bounds(db: Session, key: ApiKey, after: int, limit: int) -> tuple[int | None, bool]:
    """The last sequence number of the page (None: nothing new) and whether more follow it."""
    page = (_joined(select(Response.export_seq.label("seq"))).where(*_scope(key), Response.export_seq > after)
            .order_by(Response.export_seq).limit(limit).subquery())
    last = db.scalar(select(func.max(page.c.seq)))
    if last is None:
        return None, False
    more = db.scalar(select(exists(_joined(select(Response.id)).where(*_scope(key), Response.export_seq > last))))
    return last, bool(more)


def page_size(db: Session, key: ApiKey, after: int, upto: int) -> int:
    return db.scalar(_joined(select(func.count(Response.id)))
                     .where(*_scope(key), Response.export_seq > after, Response.export_seq <= upto)) or 0


def load(db: Session, key: ApiKey | None, *conds, order=None, limit: int | None = None) -> list[Exported]:
    """Responses matching ``conds`` within the key's scope (``key`` None: ``conds`` name ids already in scope;
    a bare id list lets the database go straight to the rows)."""
    stmt = (_joined(select(Response.id, Response.export_seq, Response.occurrence_id, Patient.subject_id, Site.code,
                           Occurrence.visit_code, Occurrence.due_on, Occurrence.window_opens_on,
                           Occurrence.window_closes_on, Response.instrument_code, Response.instrument_version,
                           Response.language, Response.completed_at, Response.completed_on_site, Response.scores,
                           Response.corrected_scores, Response.flow_state, Patient.id))
            .join(Site, Site.id == Patient.site_id).where(*(_scope(key) if key else ()), *conds))
    if order is not None:
        stmt = stmt.order_by(order)
    if limit is not None:
        stmt = stmt.limit(limit)
    items = [Exported(*r[:13], bool(r[13]), r[14], r[15], wording=dict((r[16] or {}).get("wording") or {}),
                      patient_id=r[17], mode_wording=(r[16] or {}).get("mode_wording")) for r in db.execute(stmt)]
    by_id = {e.id: e for e in items}
    if by_id:
        for rid, code, repeat, value, at, lang, control, mode in db.execute(
                select(Answer.response_id, Answer.item_code, Answer.repeat_index, Answer.value, Answer.answered_at,
                       Answer.language, Answer.entered_with, Answer.mode)
                .where(Answer.response_id.in_(list(by_id)))
                .order_by(Answer.response_id, Answer.repeat_index, Answer.id)):
            by_id[rid].answers.append((code, repeat, value, at))
            if lang:
                by_id[rid].answer_languages[(code, repeat)] = lang
            if control is not None:
                by_id[rid].entered_with[(code, repeat)] = control
            by_id[rid].answer_modes[(code, repeat)] = mode or "web"
        for c in db.scalars(select(Correction).where(Correction.response_id.in_(list(by_id)))
                            .order_by(Correction.id)):
            by_id[c.response_id].corrections.append((c.item_code, c.repeat_index, c.old_value, c.new_value,
                                                     c.reason, c.corrected_by, c.corrected_at,
                                                     c.signature_meaning, c.signature_method, c.source,
                                                     c.requested_on, c.request_method))
        by_patient: dict[int, list[tuple[str, str | None, date]]] = {}
        for a in db.scalars(select(Agreement).where(Agreement.patient_id.in_({e.patient_id for e in items}))
                            .order_by(Agreement.id)):
            by_patient.setdefault(a.patient_id, []).append((a.kind, a.information_version, a.given_on))
        for e in items:
            e.agreements = by_patient.get(e.patient_id, [])
    return items


def iter_responses(db: Session, key: ApiKey, after: int, upto: int, batch: int = BATCH) -> Iterator[Exported]:
    """The key's responses with after < seq <= upto, in feed order, read ``batch`` at a time."""
    cursor = after
    while cursor < upto:
        items = load(db, key, Response.export_seq > cursor, Response.export_seq <= upto,
                      order=Response.export_seq, limit=batch)
        if not items:
            return
        yield from items
        cursor = items[-1].seq


def iter_by_subject(db: Session, key: ApiKey, after: int, upto: int, batch: int = BATCH) -> Iterator[Exported]:
    """The same responses ordered by subject, visit and instrument (for ODM: one SubjectData per subject)."""
    ids = list(db.scalars(_joined(select(Response.id))
                          .where(*_scope(key), Response.export_seq > after, Response.export_seq <= upto)
                          .order_by(Patient.subject_id, Occurrence.window_opens_at, Occurrence.visit_code,
                                    Response.instrument_code)))
    for start in range(0, len(ids), batch):
        chunk = ids[start:start + batch]
        by_id = {e.id: e for e in load(db, None, Response.id.in_(chunk))}
        yield from (by_id[i] for i in chunk)


@dataclass(frozen=True)
class Received:
    """What the EDC holds of a response: the newest revision it acknowledged, when, and the response's own."""

    revision: int
    at: datetime
    current: int

    @property
    def behind(self) -> bool:
        """A correction the EDC has not acknowledged yet."""
        return self.revision < self.current


def revisions(db: Session, response_ids: list[int]) -> dict[int, int]:
    """Each response's revision: the number of its corrections."""
    counts = dict(db.execute(select(Correction.response_id, func.count()).where(
        Correction.response_id.in_(response_ids or [-1])).group_by(Correction.response_id)).all())
    return {rid: counts.get(rid, 0) for rid in response_ids}


def acknowledged(db: Session, response_ids: list[int]) -> dict[int, Received]:
    """The newest revision the EDC acknowledged of each of these responses (absent: none yet)."""
    current = revisions(db, response_ids)
    out: dict[int, Received] = {}
    for rid, revision, at in db.execute(select(Acknowledgement.response_id, Acknowledgement.revision,
                                               Acknowledgement.at)
                                        .where(Acknowledgement.response_id.in_(response_ids or [-1]))
                                        .order_by(Acknowledgement.revision, Acknowledgement.at)):
        out[rid] = Received(revision, at, current[rid])
    return out


def responses_in_scope(db: Session, key: ApiKey, ids: list[int]) -> set[int]:
    """The completed responses of the key's study and sites among ``ids`` (a corrected one too, while it waits
    for its new place in the feed: its earlier revision can still be acknowledged)."""
    conds = [Patient.study_id == key.study_id, Response.status == ResponseStatus.COMPLETED]
    if key.site_ids:
        conds.append(Patient.site_id.in_(key.site_ids))
    return set(db.scalars(_joined(select(Response.id)).where(*conds, Response.id.in_(ids or [-1]))))


def study_sites(db: Session, study_id: int, site_ids: list[int] | None = None) -> list[tuple[str, str]]:
    """(code, name) of a study's sites, for the ODM AdminData (``site_ids``: only those of a restricted key)."""
    q = select(Site).where(Site.study_id == study_id).order_by(Site.code)
    return [(site.code, site.name) for site in db.scalars(q.where(Site.id.in_(site_ids)) if site_ids else q)]


def acknowledge(db: Session, key: ApiKey, wanted: list[tuple[int, int]],
                now: datetime) -> tuple[set[tuple[int, int]], set[tuple[int, int]]]:
    """Record that the EDC behind ``key`` imported these (response id, revision). Returns (those known: in the
    key's scope and a revision the response has had, those acknowledged before); the others change nothing.
    Each new acknowledgement is audited."""
    in_scope = responses_in_scope(db, key, [rid for rid, _rev in wanted])
    current = revisions(db, sorted(in_scope))
    known = {(rid, rev) for rid, rev in wanted if rid in in_scope and 0 <= rev <= current[rid]}
    already = {(rid, rev) for rid, rev in db.execute(select(Acknowledgement.response_id, Acknowledgement.revision)
                                                      .where(Acknowledgement.api_key_id == key.id,
                                                             Acknowledgement.response_id.in_(in_scope or {-1})))
               if (rid, rev) in known}
    new = [{"response_id": rid, "api_key_id": key.id, "revision": rev, "at": now}
           for rid, rev in dict.fromkeys(wanted) if (rid, rev) in known and (rid, rev) not in already]
    if new:
        insert = dialect_insert(db.get_bind().dialect.name)
        done = db.execute(insert(Acknowledgement).on_conflict_do_nothing()   # a concurrent request did it first
                          .returning(Acknowledgement.response_id, Acknowledgement.revision), new).all()
        for rid, rev in done:
            record(db, actor=f"api:pk_{key.prefix}", action="response.acknowledged", entity="response",
                   entity_id=rid, new={"api_key": key.id, "revision": rev}, at=now)
    return known, already
