"""Reading the ulcer registry of a study's patients for the export API (the key's sites only): each patient's
ulcers and queries as the study team's patient page shows them, computed from the rows they come from."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from proapp.accounts.models import User
from proapp.export.formats.ulcer_registry import Staff, SubjectRegistry
from proapp.export.models import ApiKey
from proapp.instruments import Registry
from proapp.patients.models import Patient
from proapp.questionnaire import ulcers
from proapp.studies.models import Site


def subjects(db: Session, key: ApiKey, registry: Registry, now: datetime) -> list[SubjectRegistry]:
    """Every patient of the key's study (and sites), by subject ID, with their registry as it stands ``now``."""
    q = (select(Patient.id, Patient.subject_id, Site.code, Patient.harvest_date).join(Site, Site.id == Patient.site_id)
         .where(Patient.study_id == key.study_id).order_by(Patient.subject_id))
    if key.site_ids:
        q = q.where(Patient.site_id.in_(key.site_ids))
    out = []
    conn = db.connection()
    for pid, subject_id, site, harvest in db.execute(q).all():
        found = ulcers.ulcer_list(conn, pid, registry, "en", now)
        treated = next((x for x in found.queries if x.kind == "treated_missing"), None)
        out.append(SubjectRegistry(subject_id, site, found.anchor, found.rows, treated, harvest))
    return out


def staff_ids(db: Session) -> Staff:
    """An actor (``user:<e-mail>``) as a pseudonymous staff id, ``staff-<account id>``; another actor as it is."""
    ids = {f"user:{email}": f"staff-{uid}" for uid, email in db.execute(select(User.id, User.email))}

    def staff(actor: str | None) -> str | None:
        return None if actor is None else ids.get(actor, actor if not actor.startswith("user:") else "staff-unknown")

    return staff

