"""Keeping the study and site rows in step with the study files."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from proapp.studies.catalog import StudyCatalog
from proapp.studies.models import Site, Study, StudyClosure


def sync_studies(db: Session, catalog: StudyCatalog, now: datetime) -> list[str]:
    """Create or update a row per study and site; a site removed from its file is deactivated, never deleted.

    Returns one line per change, for the command's output. Existing schedules and responses are untouched.
    """
    changes: list[str] = []
    for loaded in catalog.all():
        d = loaded.definition
        study = db.scalar(select(Study).where(Study.code == d.code))
        if study is None:
            study = Study(code=d.code, title=d.title, subject_id_pattern=d.subject_id_pattern,
                          definition_version=d.version, definition_sha256=loaded.sha256, loaded_at=now)
            db.add(study)
            changes.append(f"study {d.code} version {d.version} loaded")
        elif study.definition_sha256 != loaded.sha256:
            study.title = d.title
            study.subject_id_pattern = d.subject_id_pattern
            study.definition_version = d.version
            study.definition_sha256 = loaded.sha256
            study.loaded_at = now
            changes.append(f"study {d.code} updated to version {d.version}")
        db.flush()
        existing = {s.code: s for s in db.scalars(select(Site).where(Site.study_id == study.id))}
        for sd in d.sites:
            tz = sd.timezone or d.default_timezone
            site = existing.pop(sd.code, None)
            fields = {"name": sd.name, "phone": sd.phone, "on_call_email": sd.on_call_email,
                      "on_call_mobile": sd.on_call_mobile, "timezone": tz, "active": True}
            if site is None:
                db.add(Site(study_id=study.id, code=sd.code, **fields))
                changes.append(f"site {d.code}/{sd.code} added")
            elif any(getattr(site, k) != v for k, v in fields.items()):
                for k, v in fields.items():
                    setattr(site, k, v)
                changes.append(f"site {d.code}/{sd.code} updated")
        for site in existing.values():
            if site.active:
                site.active = False
                changes.append(f"site {d.code}/{site.code} no longer in the study file: deactivated")
    db.flush()
    return changes


def closing(study_id_column: Any) -> Any:
    """SQL: the study named by ``study_id_column`` (``Patient.study_id``) is closed or being closed."""
    return exists().where(StudyClosure.study_id == study_id_column)


def is_closed(db: Session | Any, study_id: int) -> bool:
    """Whether the study is closed or being closed: it takes no patient, no answer, sends no SMS."""
    return bool(db.execute(select(exists().where(StudyClosure.study_id == study_id))).scalar())

