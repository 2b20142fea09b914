"""Seeding completed responses directly (the questionnaire itself is tested in tests/questionnaire)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from proapp import db
from proapp.patients.enrolment import EnrolmentRequest, enroll_patient
from proapp.patients.models import Occurrence, OccurrenceStatus
from proapp.questionnaire.models import Response, ResponseStatus
from tests.helpers import agreed


def enrol_at(app, subject: str, when: datetime, *, study: str = "IMATINIB-SSC", site: str = "PSL",
             language: str = "fr") -> int:
    """Enrol with anchor date and enrolment both at ``when`` (so later windows are not cancelled)."""
    with app.app_context():
        s = db.session()
        p = enroll_patient(s, app.extensions["proapp.studies"], app.extensions["proapp.phones"],
                           EnrolmentRequest(study, site, subject, "+33612345678", language, when.date(),
                                            "Europe/Paris", agreed_on=agreed(when)), now=when)
        s.commit()
        return p.id


def complete(app, patient_id: int, visit: str, scores: dict[str, dict[str, Any]], *, on_site: bool = False) -> None:
    """Mark ``visit`` completed at the end of its window's first day, with a response per instrument."""
    with app.app_context():
        s = db.session()
        occ = s.scalar(select(Occurrence).where(Occurrence.patient_id == patient_id, Occurrence.visit_code == visit))
        when = occ.window_opens_at + timedelta(hours=12)
        occ.status, occ.completed_at, occ.completed_on_site = OccurrenceStatus.COMPLETED, when, on_site
        for code in occ.instruments:
            s.add(Response(occurrence_id=occ.id, instrument_code=code, instrument_version="1.0", language="fr",
                           status=ResponseStatus.COMPLETED, started_at=when, last_saved_at=when, completed_at=when,
                           completed_on_site=on_site, scores=scores.get(code, {"status": "scored"})))
        s.commit()
