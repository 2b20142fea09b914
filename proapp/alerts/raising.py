"""Raising alerts when answers are saved and when an occurrence ends, telling the patient, acknowledging, and the
queue's reads.

An alert is raised once per (occurrence, rule): urgent and same-day rules in the transaction that saves the screen
holding the answer (a patient told to call today who closes the browser still reaches the team), every rule in
the transaction that completes the occurrence (or closes its window with answers left in progress), so a
"yes, infection" and its alert commit together.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask import current_app
from sqlalchemy import Connection, case, func, select, update
from sqlalchemy.orm import Session

from proapp.alerts.models import AckAction, Alert, AlertState
from proapp.alerts.rules import ITSELF, Earlier, History, Hit, Values, evaluate, tells_patient, values_of
from proapp.audit.trail import record
from proapp.db import dialect_insert
from proapp.instruments import Registry
from proapp.patients.models import Occurrence, Patient
from proapp.patients.signals import occurrence_ended
from proapp.questionnaire.answering import VisitQuestionnaire
from proapp.questionnaire.models import Answer, Response, ResponseStatus
from proapp.questionnaire.signals import answers_saved
from proapp.studies.catalog import StudyCatalog
from proapp.studies.models import Site, Study
from proapp.studies.schema import AlertRule

ACTOR = "system:alerts"
SEVERITY_RANK = case({"urgent": 0, "same_day": 1, "review": 2}, value=Alert.severity, else_=3)
NOTE_MAX = 1000


def _answers(conn: Connection, response_id: int) -> dict[tuple[str, int], str]:
    rows = conn.execute(select(Answer.item_code, Answer.repeat_index, Answer.value)
                        .where(Answer.response_id == response_id, Answer.value.is_not(None)))
    return {(r.item_code, r.repeat_index): r.value for r in rows}


def history(conn: Connection, registry: Registry, patient_id: int, occurrence_id: int,
            opens_at: datetime, *, visit_code: str = "", before_treatment: str | None = None) -> History:
    """The patient's earlier completed responses, read when a change rule asks (once per instrument and kind).
    With a visit before treatment (``before_treatment``, the study file's), the baseline is the response at that
    visit, whenever it was completed (none when it was missed), and that visit's own answers are the reference
    themselves (`ITSELF`)."""
    cache: dict[tuple[str, str], Earlier | None] = {}

    def earlier(instrument: str, which: str) -> Earlier | None:
        if which == "baseline" and before_treatment is not None and visit_code == before_treatment:
            return ITSELF
        if (instrument, which) not in cache:
            q = (select(Response.id, Response.instrument_version, Response.scores, Response.corrected_scores,
                        Occurrence.visit_code)
                 .join(Occurrence, Occurrence.id == Response.occurrence_id)
                 .where(Occurrence.patient_id == patient_id, Occurrence.id != occurrence_id,
                        Response.instrument_code == instrument, Response.status == ResponseStatus.COMPLETED))
            if which == "baseline" and before_treatment is not None:
                q = q.where(Occurrence.visit_code == before_treatment)
            else:
                q = q.where(Occurrence.window_opens_at < opens_at)
            order = Occurrence.window_opens_at.desc() if which == "previous" else Occurrence.window_opens_at
            row = conn.execute(q.order_by(order).limit(1)).first()
            cache[(instrument, which)] = None if row is None else Earlier(row.visit_code, values_of(
                registry.get(instrument, row.instrument_version), _answers(conn, row.id),
                row.corrected_scores or row.scores or {}))
        return cache[(instrument, which)]

    return earlier


def raise_for_occurrence(db: Session, occurrence_id: int, *, how: str, now: datetime, studies: StudyCatalog,
                         registry: Registry) -> list[int]:
    """Evaluate the study's rules on the occurrence's responses; add an alert for each rule met (once: a rule
    already raised for this occurrence is not raised again). Returns the new alerts' ids."""
    conn = db.connection()
    occ = conn.execute(select(Occurrence.id, Occurrence.visit_code, Occurrence.window_opens_at, Patient.id.label(
        "patient_id"), Patient.site_id, Patient.study_id, Study.code.label("study_code"))
        .join(Patient, Patient.id == Occurrence.patient_id).join(Study, Study.id == Patient.study_id)
        .where(Occurrence.id == occurrence_id)).one()
    rules = studies.get(occ.study_code).alerts.rules
    if not rules:
        return []
    current: dict[str, Values] = {}
    for r in conn.execute(select(Response.id, Response.instrument_code, Response.instrument_version,
                                 Response.status, Response.scores).where(Response.occurrence_id == occurrence_id)):
        inst = registry.get(r.instrument_code, r.instrument_version)
        completed = r.status == ResponseStatus.COMPLETED
        current[r.instrument_code] = values_of(inst, _answers(conn, r.id), r.scores if completed else None)
    hits = evaluate(rules, current, history(conn, registry, occ.patient_id, occurrence_id, occ.window_opens_at,
                                            visit_code=occ.visit_code,
                                            before_treatment=studies.get(occ.study_code).visit_before_treatment))
    return _add_alerts(db, hits, how=how, now=now, occurrence_id=occurrence_id, visit_code=occ.visit_code,
                       patient_id=occ.patient_id, site_id=occ.site_id, study_id=occ.study_id)


def _add_alerts(db: Session, hits: list[Hit], *, how: str, now: datetime, occurrence_id: int, visit_code: str,
                patient_id: int, site_id: int, study_id: int) -> list[int]:
    """One alert per rule met, unless that rule was already raised for the occurrence. Returns the new ids."""
    conn = db.connection()
    raised = []
    insert = dialect_insert(conn.dialect.name)
    for hit in hits:
        rule = hit.rule
        alert_id = conn.execute(insert(Alert).values(
            study_id=study_id, site_id=site_id, patient_id=patient_id, occurrence_id=occurrence_id,
            rule_code=rule.code, rule_label={"en": rule.label.en, "fr": rule.label.fr}, severity=rule.severity,
            source=how, evidence=hit.evidence, raised_at=now, state=AlertState.OPEN, escalation_level=0)
            .on_conflict_do_nothing(index_elements=["occurrence_id", "rule_code"]).returning(Alert.id)).scalar()
        if alert_id is None:
            continue
        raised.append(alert_id)
        record(db, actor=ACTOR, action="alert.raised", entity="alert", entity_id=alert_id,
               patient_id=patient_id, at=now,
               new={"rule": rule.code, "severity": rule.severity, "visit": visit_code, "source": how,
                    "evidence": hit.evidence})
    return raised


def raise_on_save(db: Session, visit_q: VisitQuestionnaire, instrument: str, items: tuple[str, ...], *,
                  now: datetime, studies: StudyCatalog, registry: Registry) -> list[int]:
    """The urgent and same-day rules on the answers just saved: an alert the moment the patient (or staff on
    site) saves the screen that holds the answer, not when the questionnaire is sent or its window closes. Review
    rules wait for the end of the occurrence. Only rules reading one of the screen's ``items`` (or a score of its
    instrument) are evaluated, so the other screens' saves cost nothing. Raised once: submitting or saving again
    later finds it raised."""
    rules = [r for r in studies.get(visit_q.visit.study_code).alerts.rules
             if tells_patient(r) and _reads_screen(r, instrument, items)]
    if not rules:
        return []
    conn = db.connection()
    hits = _patient_hits(conn, visit_q, rules, registry)
    if not hits:
        return []
    v = visit_q.visit
    study_id = conn.execute(select(Patient.study_id).where(Patient.id == v.patient_id)).scalar_one()
    return _add_alerts(db, hits, how="answer_saved", now=now, occurrence_id=v.occurrence_id,
                       visit_code=v.visit_code, patient_id=v.patient_id, site_id=v.site_id, study_id=study_id)


def _reads_screen(rule: AlertRule, instrument: str, items: tuple[str, ...]) -> bool:
    return any(inst == instrument and (kind == "score" or code in items)
               for kind, inst, code in (leaf.ref for leaf in rule.when.leaves()))


def connect_signals() -> None:
    """Alerts are raised inside the transaction that ends an occurrence (proapp/patients/occurrences.py) or saves
    a screen's answers (proapp/questionnaire/signals.py)."""
    occurrence_ended.connect(_on_occurrence_ended)
    answers_saved.connect(_on_answers_saved)


def _on_occurrence_ended(occurrence_id: int, *, db: Session, how: str, now: datetime) -> None:
    raise_for_occurrence(db, occurrence_id, how=how, now=now, studies=current_app.extensions["proapp.studies"],
                         registry=current_app.extensions["proapp.instruments"])


def _on_answers_saved(occurrence_id: int, *, db: Session, visit_q: VisitQuestionnaire, instrument: str,
                      items: tuple[str, ...], now: datetime) -> None:
    raise_on_save(db, visit_q, instrument, items, now=now, studies=current_app.extensions["proapp.studies"],
                  registry=current_app.extensions["proapp.instruments"])


# The patient ---------------------------------------------------------------------------------------------------

def _patient_hits(conn: Connection, visit_q: VisitQuestionnaire, rules: list[AlertRule],
                  registry: Registry) -> list[Hit]:
    """The urgent and same-day ``rules`` met by the visit's answers as they stand (in progress or not)."""
    rules = [r for r in rules if tells_patient(r)]
    needed = {code for r in rules for code in r.instruments()}
    if not needed & {inst.code for inst in visit_q.instruments}:
        return []          # every screen's save comes here: nothing to score when no such rule concerns the visit
    current = {inst.code: values_of(inst, visit_q.answers.get(inst.code, {})) for inst in visit_q.instruments
               if inst.code in needed and visit_q.answers.get(inst.code)}
    v = visit_q.visit
    before = visit_q.studies.get(v.study_code).visit_before_treatment if visit_q.studies is not None else None
    return evaluate(rules, current, history(conn, registry, v.patient_id, v.occurrence_id, v.window_opens_at,
                                            visit_code=v.visit_code, before_treatment=before))


def rules_telling_patient(conn: Connection, visit_q: VisitQuestionnaire, rules: list[AlertRule],
                          registry: Registry) -> list[AlertRule]:
    """The urgent and same-day rules the answers given so far meet (the patient is told to call at once)."""
    return [hit.rule for hit in _patient_hits(conn, visit_q, rules, registry)]


def raised_telling_patient(conn: Connection, occurrence_id: int,
                           rules: list[AlertRule]) -> list[tuple[dict[str, str], str]]:
    """(what the patient reads, severity) of the urgent and same-day alerts raised for an occurrence (thank-you
    page, link reopened): the rule's patient wording, or the label it was raised with if the study file no longer
    has the rule."""
    wording = {r.code: {"en": r.patient.en, "fr": r.patient.fr} for r in rules if r.patient}
    rows = conn.execute(select(Alert.rule_code, Alert.rule_label, Alert.severity)
                        .where(Alert.occurrence_id == occurrence_id, Alert.severity.in_(("urgent", "same_day")))
                        .order_by(Alert.id))
    return [(wording.get(r.rule_code, r.rule_label), r.severity) for r in rows]


# The study team ------------------------------------------------------------------------------------------------

class AcknowledgeError(ValueError):
    """Why an acknowledgement was refused (already acknowledged, no action given, note too long)."""


def acknowledge(db: Session, alert_id: int, *, actor: str, action: str, note: str, now: datetime) -> Alert:
    """Close an open alert with what was done. Once: a second acknowledgement is refused."""
    try:
        what = AckAction(action)
    except ValueError:
        raise AcknowledgeError("action") from None
    note = note.strip()
    if len(note) > NOTE_MAX:
        raise AcknowledgeError("note")
    if what == AckAction.NO_ACTION and not note:
        raise AcknowledgeError("note_required")
    done = db.execute(update(Alert).where(Alert.id == alert_id, Alert.state == AlertState.OPEN).values(
        state=AlertState.ACKNOWLEDGED, acknowledged_at=now, acknowledged_by=actor[:160], ack_action=what,
        ack_note=note or None)).rowcount
    alert = db.get(Alert, alert_id, populate_existing=True)
    if not done or alert is None:
        raise AcknowledgeError("already")
    record(db, actor=actor, action="alert.acknowledged", entity="alert", entity_id=alert_id,
           patient_id=alert.patient_id, old={"state": "open"},
           new={"state": "acknowledged", "action": what.value, "note": note or None,
                "minutes_to_acknowledge": minutes_between(alert.raised_at, now)}, at=now)
    return alert


def minutes_between(start: datetime, end: datetime | None) -> int | None:
    return None if end is None else int((end - start).total_seconds() // 60)


@dataclass(frozen=True)
class OpenCounts:
    by_study: dict[int, int]
    by_patient: dict[int, int]


def open_counts(db: Session, where: Any) -> OpenCounts:
    """Open alerts per study and per patient, among the patients ``where`` (the viewer's scope) selects."""
    rows = db.execute(select(Alert.study_id, Alert.patient_id, func.count())
                      .join(Patient, Patient.id == Alert.patient_id)
                      .where(Alert.state == AlertState.OPEN, where)
                      .group_by(Alert.study_id, Alert.patient_id)).all()
    by_study: dict[int, int] = {}
    for study_id, _pid, n in rows:
        by_study[study_id] = by_study.get(study_id, 0) + n
    return OpenCounts(by_study, {pid: n for _s, pid, n in rows})


def alerts_page(db: Session, where: Any, *, study: str | None = None, site: str | None = None,
                state: str | None = "open", severity: str | None = None, limit: int = 200) -> list[Any]:
    """Alerts with their patient, study and site, most severe and oldest open first."""
    q = (select(Alert, Patient.subject_id, Study.code.label("study_code"), Site.code.label("site_code"),
                Occurrence.visit_code)
         .join(Patient, Patient.id == Alert.patient_id).join(Study, Study.id == Alert.study_id)
         .join(Site, Site.id == Alert.site_id).join(Occurrence, Occurrence.id == Alert.occurrence_id)
         .where(where))
    if study:
        q = q.where(Study.code == study)
    if site:
        q = q.where(Site.code == site)
    if state in ("open", "acknowledged"):
        q = q.where(Alert.state == AlertState(state))
    if severity in ("urgent", "same_day", "review"):
        q = q.where(Alert.severity == severity)
    open_first = case((Alert.state == AlertState.OPEN, 0), else_=1)
    return db.execute(q.order_by(open_first, SEVERITY_RANK, Alert.raised_at, Alert.id).limit(limit)).all()


def open_alerts_of(db: Session, patient_id: int) -> list[Alert]:
    """A patient's open alerts, most severe first (the banner of the patient page)."""
    return list(db.scalars(select(Alert).where(Alert.patient_id == patient_id, Alert.state == AlertState.OPEN)
                           .order_by(SEVERITY_RANK, Alert.raised_at)))
