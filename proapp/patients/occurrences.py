"""A visit's life: the one module that changes an occurrence's status (and its window and SMS round), and the one
that announces it.

scheduled --complete--> completed
scheduled --mark_missed (its window closed)--> missed
scheduled --cancel (withdrawal, study closed)--> cancelled
missed/cancelled --reopen (a reschedule gave it a window still to come)--> scheduled

``occurrence_ended`` (proapp/patients/signals.py) is sent from here when a visit ends: completed (once its
responses are, ``announce_completion``), missed, or cancelled with its window already open (answers already
given still reach the alert rules). Every function only flushes, in the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import Select, update
from sqlalchemy.orm import Session

from proapp.audit.trail import record
from proapp.patients.models import Occurrence, OccurrenceStatus
from proapp.patients.signals import occurrence_ended
from proapp.studies.schedule import PlannedOccurrence, local_midnight_utc


def _ended(db: Session, occurrence_id: int, how: str, now: datetime) -> None:
    occurrence_ended.send(occurrence_id, db=db, how=how, now=now)


def schedule(db: Session, patient_id: int, planned: Iterable[PlannedOccurrence], now: datetime) -> None:
    """A new patient's visits; a window that closed before ``now`` is cancelled at once (enrolled late)."""
    for p in planned:
        db.add(Occurrence(
            patient_id=patient_id, visit_code=p.visit_code, visit_day=p.day, instruments=list(p.instruments),
            due_on=p.due_on, window_opens_on=p.opens_on, window_closes_on=p.closes_on,
            window_opens_at=p.opens_at, window_closes_at=p.closes_at,
            status=OccurrenceStatus.CANCELLED if p.closes_at <= now else OccurrenceStatus.SCHEDULED,
        ))
    db.flush()


def complete(db: Session, occurrence_id: int, *, now: datetime, on_site: bool) -> bool:
    """Mark the visit completed, if it is still scheduled. False: another request completed (or closed) it first.
    The caller completes the responses, then calls ``announce_completion``."""
    return bool(db.execute(update(Occurrence).where(Occurrence.id == occurrence_id,
                                                    Occurrence.status == OccurrenceStatus.SCHEDULED)
                           .values(status=OccurrenceStatus.COMPLETED, completed_at=now,
                                   completed_on_site=on_site)).rowcount)


def announce_completion(db: Session, occurrence_id: int, *, now: datetime) -> None:
    """The completed visit's responses are scored: its alerts are raised (same transaction)."""
    _ended(db, occurrence_id, "completed", now)


def mark_missed(db: Session, now: datetime) -> int:
    """Occurrences whose window closed before completion become missed (answers left in progress count too)."""
    missed = db.execute(update(Occurrence)
                        .where(Occurrence.status == OccurrenceStatus.SCHEDULED, Occurrence.window_closes_at <= now)
                        .values(status=OccurrenceStatus.MISSED)
                        .returning(Occurrence.id, Occurrence.patient_id, Occurrence.visit_code)).all()
    for occ_id, patient_id, visit in missed:
        record(db, actor="system:schedule", action="occurrence.missed", entity="occurrence", entity_id=occ_id,
               patient_id=patient_id, old={"status": "scheduled"}, new={"status": "missed", "visit": visit}, at=now)
        _ended(db, occ_id, "window_closed", now)
    return len(missed)


@dataclass(frozen=True)
class Cancelled:
    occurrence_id: int
    patient_id: int
    visit_code: str


def cancel(db: Session, patient_ids: Select[tuple[int]] | list[int], *, how: str, now: datetime, actor: str,
           reason: str | None = None) -> list[Cancelled]:
    """Cancel the visits of ``patient_ids`` (the ids, or a select of them) whose window has not closed yet: ``how``
    says why ("withdrawn", "study_closed"). A visit whose window is open ends (``occurrence_ended``). ``reason``
    given: each visit's cancellation is audited with it (a withdrawal's own entry counts them instead)."""
    rows = db.execute(update(Occurrence).where(
        Occurrence.patient_id.in_(patient_ids), Occurrence.status == OccurrenceStatus.SCHEDULED,
        Occurrence.window_closes_at > now)
        .values(status=OccurrenceStatus.CANCELLED)
        .returning(Occurrence.id, Occurrence.patient_id, Occurrence.visit_code, Occurrence.window_opens_at)).all()
    for occurrence_id, patient_id, visit, opens_at in rows:
        if opens_at <= now:             # answers already given in an open window still count for the alerts
            _ended(db, occurrence_id, how, now)
        if reason is not None:
            record(db, actor=actor, action="occurrence.cancelled", entity="occurrence", entity_id=occurrence_id,
                   patient_id=patient_id, old={"status": "scheduled"}, new={"status": "cancelled", "visit": visit},
                   reason=reason, at=now)
    return [Cancelled(occurrence_id, patient_id, visit) for occurrence_id, patient_id, visit, _o in rows]


def move(occ: Occurrence, opens_on: date, closes_on: date, shift: timedelta, zone: ZoneInfo) -> None:
    """The visit's window moves to [opens_on, closes_on] (local days in ``zone``), its target day by ``shift``."""
    occ.due_on = occ.due_on + shift
    occ.window_opens_on, occ.window_closes_on = opens_on, closes_on
    occ.window_opens_at = local_midnight_utc(opens_on, zone)
    occ.window_closes_at = local_midnight_utc(closes_on + timedelta(days=1), zone)


def reopen(occ: Occurrence, now: datetime) -> OccurrenceStatus | None:
    """A missed or cancelled visit whose (moved) window has not closed is scheduled again: it was missed for the old
    date. Returns the status it had, or None when it stays as it is."""
    if occ.status in (OccurrenceStatus.MISSED, OccurrenceStatus.CANCELLED) and occ.window_closes_at > now:
        old, occ.status = occ.status, OccurrenceStatus.SCHEDULED
        return old
    return None


def new_sms_round(db: Session, occ: Occurrence, *, now: datetime) -> None:
    """The visit's SMS start again (its window moved after they were queued): a new invitation and reminders."""
    record(db, actor="system:sms", action="occurrence.sms_round", entity="occurrence", entity_id=occ.id,
           patient_id=occ.patient_id, old={"sms_round": occ.sms_round}, new={"sms_round": occ.sms_round + 1,
                                                                             "visit": occ.visit_code}, at=now)
    occ.sms_round += 1
