"""The patient a command names: by subject ID, with the study's code when the ID is not unique. Every feature's
commands use it (``proapp link``, ``proapp sms log``, ...); a patient who cannot be told apart stops the command."""

from __future__ import annotations

from sqlalchemy import select

from proapp import db
from proapp.cli import fail
from proapp.patients.models import Patient
from proapp.studies.models import Study


def find_patient(subject: str, study: str | None) -> Patient:
    """The one patient with this subject ID (in this study when given), or the command fails with a message."""
    q = select(Patient).where(Patient.subject_id == subject)
    if study:
        q = q.join(Study, Study.id == Patient.study_id).where(Study.code == study)
    found = list(db.session().scalars(q))
    if not found:
        fail(f"no patient {subject}")
    if len(found) > 1:
        fail(f"{subject} is enrolled in several studies: add --study")
    return found[0]
