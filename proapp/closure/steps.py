"""Closing a study, step by step, each step audited and recorded on the closure's row, so that a closure
interrupted continues where it stopped (run it again) and never does a step twice:

1. ``begin``: refused while visits are open or to come, unless forced with a reason. The study is closed to
   patients at once: no new enrolment, its SMS links say the study is closed (in the patient's language; the
   links are revoked and their hashes kept in ``closed_link``), the SMS waiting are cancelled and no other is
   queued. Closing it first means the final export holds everything the patients will ever have sent.
2. ``archive``: a checkpoint of the audit trail, then one zip file signed with the audit key
   (``proapp/closure/archive.py``): the final export in every format, every patient's certified audit copy, the
   study and instrument files with their versions, the checkpoints; written, then verified.
3. ``erase_contacts``: every patient's phone number erased (the archive verified first).
4. ``settle_live_data``: per the study file's ``closure.live_data``, the study's patients and everything recorded
   about them removed from the live tables (the archive verified again first), or kept. The audit trail stays.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, cast

from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import Table, delete, func, or_, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from proapp import csvfiles, runtime
from proapp import db as database
from proapp.audit.checkpoints import HeadsNotSigned, as_line, write
from proapp.audit.copies import certified_copy
from proapp.audit.keys import AuditKeys
from proapp.audit.models import AuditCheckpoint
from proapp.audit.trail import record
from proapp.closure import archive as archives
from proapp.db import Base, dialect_insert
from proapp.export import data, feed
from proapp.export.alerts import CSV_COLUMNS as ALERT_COLUMNS
from proapp.export.alerts import alert_items
from proapp.export.alerts import csv_row as alert_row
from proapp.export.dictionary import data_dictionary
from proapp.export.formats import common, csv_format, fhir, json_format, odm, redcap
from proapp.instruments import Registry
from proapp.instruments.registry import DATA_DIR as INSTRUMENTS
from proapp.patients import occurrences
from proapp.patients.contacts import erase
from proapp.patients.models import Occurrence, OccurrenceStatus, Patient, PatientContact, PatientStatus
from proapp.patients.signals import sms_must_stop
from proapp.questionnaire.models import AccessLink
from proapp.refusals import Refused
from proapp.studies.catalog import DATA_DIR as STUDIES
from proapp.studies.catalog import StudyCatalog
from proapp.studies.models import ClosedLink, Site, Study, StudyClosure


class ClosureRefused(Refused):
    """The study was not closed (or a step not taken); ``message`` says why."""


@dataclass(frozen=True)
class Sources:
    """Where the definitions were loaded from (the archive keeps their files), and the public URL (FHIR)."""

    studies_dir: Path
    instruments_dir: Path
    public_url: str


@dataclass(frozen=True)
class StudyScope:
    """The whole study, as an API key for all its sites would see it (the export's readers take a key)."""

    study_id: int
    site_ids: list[int] | None = None


def archive_dir() -> Path:
    """Where archives go: PROAPP_ARCHIVE_DIR, or ``archives`` in the instance folder."""
    configured = current_app.config.get("ARCHIVE_DIR")
    return Path(configured) if configured else Path(current_app.instance_path) / "archives"


def sources() -> Sources:
    cfg = current_app.config
    return Sources(Path(cfg["STUDIES_DIR"]) if cfg.get("STUDIES_DIR") else STUDIES,
                   Path(cfg["INSTRUMENTS_DIR"]) if cfg.get("INSTRUMENTS_DIR") else INSTRUMENTS, cfg["PUBLIC_URL"])


def find_study(db: Session, code: str) -> Study:
    study = db.scalar(select(Study).where(Study.code == code))
    if study is None or code not in runtime.studies().codes():      # loaded, and its study file still there
        raise ClosureRefused(_l("There is no study %(study)s.", study=code))
    return study


def closure_of(db: Session, study_id: int, *, lock: bool = False) -> StudyClosure | None:
    """The study's closure; ``lock``: its row locked to the transaction's end, so two runs never do a step at once
    (PostgreSQL; SQLite's writers take turns anyway)."""
    q = select(StudyClosure).where(StudyClosure.study_id == study_id)
    return db.scalar(q.with_for_update() if lock else q)


def open_visits(db: Session, study_id: int, now: datetime) -> int:
    """Visits of the study's patients in follow-up (active or paused) whose window is open or still to come."""
    return db.scalar(select(func.count(Occurrence.id)).join(Patient, Patient.id == Occurrence.patient_id)
                     .where(Patient.study_id == study_id,
                            Patient.status.in_([PatientStatus.ACTIVE, PatientStatus.PAUSED]),
                            Occurrence.status == OccurrenceStatus.SCHEDULED,
                            Occurrence.window_closes_at > now)) or 0


def begin(db: Session, study: Study, catalog: StudyCatalog, now: datetime, actor: str, *,
          force_reason: str | None = None, signature: dict[str, Any] | None = None) -> StudyClosure:
    """Start closing ``study`` (step 1), or return the closure already started (a run that continues)."""
    existing = closure_of(db, study.id)
    if existing is not None:
        return existing
    reason = (force_reason or "").strip()[:500] or None
    still_open = open_visits(db, study.id, now)
    if still_open and reason is None:
        raise ClosureRefused(_l("%(count)d visit(s) of %(study)s are still open or to come: close the study after "
                                "the last visit, or force the closure and give the reason.",
                                count=still_open, study=study.code))
    closure = StudyClosure(study_id=study.id, started_at=now, started_by=actor[:160],
                           forced_reason=reason if still_open else None,
                           signature=signature, live_data=catalog.get(study.code).closure.live_data)
    db.add(closure)
    db.flush()
    in_study = select(Occurrence.id).join(Patient, Patient.id == Occurrence.patient_id).where(
        Patient.study_id == study.id)
    links = [{"token_sha256": token, "study_id": study.id, "language": language} for token, language in db.execute(
        select(AccessLink.token_sha256, Patient.language).join(Occurrence, Occurrence.id == AccessLink.occurrence_id)
        .join(Patient, Patient.id == Occurrence.patient_id).where(Patient.study_id == study.id))]
    if links:
        db.execute(dialect_insert(db.get_bind().dialect.name)(ClosedLink).on_conflict_do_nothing(), links)
    revoked = db.execute(update(AccessLink).where(AccessLink.occurrence_id.in_(in_study),
                                                  AccessLink.revoked_at.is_(None)).values(revoked_at=now)).rowcount
    patients = list(db.scalars(select(Patient.id).where(Patient.study_id == study.id)))
    for patient_id in patients:                   # the SMS feature cancels what waits, in this transaction
        sms_must_stop.send(patient_id, db=db, why="study_closed", now=now)
    cancelled = _end_follow_up(db, study.id, now, actor)
    record(db, actor=actor, action="study.closing", entity="study", entity_id=study.id, reason=reason,
           new={"study": study.code, "open_visits": still_open, "forced": closure.forced_reason is not None,
                "links_disabled": revoked, "patients": len(patients), "visits_cancelled": cancelled,
                "live_data": closure.live_data, "signature": signature}, at=now)
    db.flush()
    return closure


def _end_follow_up(db: Session, study_id: int, now: datetime, actor: str) -> int:
    """The follow-up of the study's patients ends with it, as a withdrawal ends one patient's: windows not yet
    closed are cancelled (answers already given in an open window still reach the alert rules), patients in
    follow-up are marked as having ended it; each change audited in the patient's chain. Returns the visits
    cancelled."""
    ended = occurrences.cancel(db, select(Patient.id).where(Patient.study_id == study_id), how="study_closed",
                               now=now, actor=actor, reason="study closed")
    following = db.execute(update(Patient).where(
        Patient.study_id == study_id, Patient.status.in_([PatientStatus.ACTIVE, PatientStatus.PAUSED]))
        .values(status=PatientStatus.COMPLETED, updated_at=now).returning(Patient.id, Patient.status)).all()
    for patient_id, _status in following:
        record(db, actor=actor, action="patient.follow_up_ended", entity="patient", entity_id=patient_id,
               patient_id=patient_id, new={"status": PatientStatus.COMPLETED.value}, reason="study closed", at=now)
    return len(ended)


# The archive -----------------------------------------------------------------------------------------------

def archive_path(directory: Path, study: Study, closure: StudyClosure) -> Path:
    return directory / f"{study.code}-archive-{closure.started_at:%Y%m%dT%H%M%SZ}.zip"


def archive(db: Session, study: Study, closure: StudyClosure, catalog: StudyCatalog, registry: Registry,
            keys: AuditKeys, directory: Path, sources: Sources, now: datetime, actor: str) -> Path:
    """Step 2: write and verify the signed archive; once recorded, a run that continues checks it instead. The
    export reads the feed: every completed response must have its place in it (``run`` sequences them first)."""
    if closure.archive_sha256 is not None:
        return checked_archive(study, closure, keys, directory)

    try:
        write(db, keys, now)                       # where every chain ends now, signed, into the archive
    except HeadsNotSigned as exc:
        raise ClosureRefused(f"{exc}: run proapp audit verify") from None
    checkpoints = "".join(as_line(c) + "\n" for c in db.scalars(select(AuditCheckpoint).order_by(AuditCheckpoint.id)))
    path = archive_path(directory, study, closure)
    summary: dict[str, Any] = {}

    def members() -> Iterator[tuple[str, bytes]]:
        yield from _export_members(db, study, catalog, registry, sources, now)
        copies = {}
        for pid, subject in db.execute(select(Patient.id, Patient.subject_id).where(Patient.study_id == study.id)
                                       .order_by(Patient.subject_id)):
            copy = certified_copy(db, pid)
            copies[subject] = {"entries_verified": copy.verified, "chain_intact": not copy.findings,
                               "findings": [str(f) for f in copy.findings[:20]],
                               "sha256": hashlib.sha256(copy.body).hexdigest()}
            yield f"audit/patients/{subject}.csv", copy.body
        yield "audit/checkpoints.jsonl", checkpoints.encode()
        yield from _definition_members(study, catalog, registry, sources)
        summary.update(_summary(db, study, closure, catalog, keys, now, copies))
        yield "archive.json", json.dumps(summary, indent=1, ensure_ascii=False, sort_keys=True).encode()

    try:
        directory.mkdir(parents=True, exist_ok=True)
        sha = archives.write(path, members(), keys, now)
    except OSError as exc:                   # a folder that cannot be written, a disk full: nothing is recorded
        with contextlib.suppress(OSError):
            path.with_name(path.name + ".partial").unlink(missing_ok=True)
        raise ClosureRefused(_l("The archive cannot be written in %(folder)s: %(error)s", folder=str(directory),
                                error=exc.strerror or str(exc))) from None
    verdict = archives.verify(path, keys)
    if not verdict.intact:
        raise ClosureRefused(f"the archive written does not verify: {verdict.problems[0]}")
    closure.archive_name, closure.archive_sha256, closure.archived_at = path.name, sha, now
    record(db, actor=actor, action="study.archived", entity="study", entity_id=study.id,
           new={"archive": path.name, "sha256": sha, "members": verdict.members, "key_id": verdict.key_id,
                "patients": len(summary.get("patients", [])),
                "chains_intact": all(c["chain_intact"] for c in summary.get("audit_copies", {}).values())}, at=now)
    db.flush()
    return path


def checked_archive(study: Study, closure: StudyClosure, keys: AuditKeys, directory: Path) -> Path:
    """The recorded archive, still there, the same file, and intact; else ClosureRefused (nothing is erased or
    removed without it)."""
    if closure.archive_name is None or closure.archive_sha256 is None:
        raise ClosureRefused(_l("The archive of %(study)s is not written yet.", study=study.code))
    path = directory / closure.archive_name
    if not path.is_file():
        raise ClosureRefused(_l("The archive %(name)s is not in %(folder)s: put it back (or give its folder) before "
                                "the closure continues.", name=closure.archive_name, folder=str(directory)))
    if archives.sha256_file(path) != closure.archive_sha256:
        raise ClosureRefused(_l("The archive %(name)s is not the file written at the closure (its SHA-256 differs).",
                                name=closure.archive_name))
    verdict = archives.verify(path, keys)
    if not verdict.intact:
        raise ClosureRefused(_l("The archive %(name)s does not verify: %(problem)s", name=closure.archive_name,
                                problem=verdict.problems[0]))
    return path


def _export_members(db: Session, study: Study, catalog: StudyCatalog, registry: Registry, sources: Sources,
                    now: datetime) -> Iterator[tuple[str, bytes]]:
    """The final export, in every format of the export API, of every completed response of the study."""
    study_def = catalog.get(study.code)
    scope = cast(Any, StudyScope(study.id))
    upto, _more = data.page_bounds(db, scope, 0, 2**62)
    upto = upto or 0

    def responses() -> Iterator[Any]:
        return data.iter_responses(db, scope, 0, upto)

    items = [json_format.json_item(e, registry.get(e.instrument, e.version), n)
             for n, e in enumerate(responses(), 1)]
    yield "export/responses.json", _json({"data": items})
    for lang in ("en", "fr"):
        out = io.StringIO()
        writer = csvfiles.writer(out)
        writer.writerow(csv_format.CSV_COLUMNS)
        for n, e in enumerate(responses(), 1):
            use = study_def.instruments.get(e.instrument)
            writer.writerows(csv_format.csv_rows(e, registry.get(e.instrument, e.version), lang,
                                                 use.variant if use else None, n))
        yield f"export/responses-{lang}.csv", (csvfiles.BOM + out.getvalue()).encode()
    clinical = "".join(odm.odm_clinical(data.iter_by_subject(db, scope, 0, upto), study_def, registry))
    yield "export/responses-odm.xml", (odm.odm_header(f"proapp.{study.code}.closure", None, now,
                                                      f"{study.code}: every response, at the study's closure",
                                                      file_type="Transactional") + clinical + "</ODM>\n").encode()
    yield "export/metadata-odm.xml", odm.odm_metadata(study_def, registry, data.study_sites(db, study.id),
                                                      now).encode()
    entries: list[dict[str, Any]] = []
    for e in responses():
        inst = registry.get(e.instrument, e.version)
        url = fhir.full_url(study.code, e)
        entries.append({"fullUrl": url, "resource": fhir.fhir_response(e, inst, study_def, sources.public_url)})
        entries += [{"resource": o} for o in fhir.fhir_observations(e, inst, study_def, url)]
    yield "export/responses-fhir.json", _json({"resourceType": "Bundle", "type": "collection",
                                               "timestamp": common.iso(now), "entry": entries})
    project = redcap.Project(study_def, registry)
    yield "export/redcap-records.json", _json(list(redcap.records(
        project, ((e, registry.get(e.instrument, e.version)) for e in responses()))))
    yield "export/redcap-dictionary.csv", project.dictionary("en").encode()
    yield "export/data-dictionary.json", _json(data_dictionary(study_def, registry, db, study.id, None))
    alerts = list(alert_items(db, scope, None))
    yield "export/alerts.json", _json({"data": alerts})
    out = io.StringIO()
    writer = csvfiles.writer(out)
    writer.writerow(ALERT_COLUMNS)
    writer.writerows(alert_row(a) for a in alerts)
    yield "export/alerts.csv", (csvfiles.BOM + out.getvalue()).encode()


def _json(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, indent=1, default=str).encode()


def _definition_members(study: Study, catalog: StudyCatalog, registry: Registry,
                        sources: Sources) -> Iterator[tuple[str, bytes]]:
    """The study file as loaded (its SHA-256 is the study row's) and the file of every instrument version the
    study's responses may name."""
    loaded = catalog.loaded(study.code)
    yield f"definitions/studies/{loaded.filename}", (sources.studies_dir / loaded.filename).read_bytes()
    for code in sorted(loaded.definition.instruments):
        for inst in registry.all():
            if inst.code == code:
                name = f"{inst.code}-{inst.version}.yaml"
                yield f"definitions/instruments/{name}", (sources.instruments_dir / name).read_bytes()


def _summary(db: Session, study: Study, closure: StudyClosure, catalog: StudyCatalog, keys: AuditKeys,
             now: datetime, copies: dict[str, Any]) -> dict[str, Any]:
    d = catalog.get(study.code)
    patients = [{"subject_id": subject, "site": site, "status": str(status), "enrolled_at": enrolled.isoformat(),
                 "schedule_version": version}
                for subject, site, status, enrolled, version in db.execute(
                    select(Patient.subject_id, Site.code, Patient.status, Patient.enrolled_at,
                           Patient.schedule_version).join(Site, Site.id == Patient.site_id)
                    .where(Patient.study_id == study.id).order_by(Patient.subject_id))]
    return {
        "format": archives.FORMAT, "created_at": now.isoformat(), "signed_with_key": keys.newest,
        "study": {"code": study.code, "title": d.title, "registry_id": d.registry_id,
                  "definition_version": study.definition_version, "definition_sha256": study.definition_sha256,
                  "information_version": d.information.version if d.information else None,
                  "instruments": {c: u.version for c, u in sorted(d.instruments.items())}},
        "closure": {"started_at": closure.started_at.isoformat(), "started_by": closure.started_by,
                    "forced_reason": closure.forced_reason, "signature": closure.signature,
                    "live_data": closure.live_data, "archive_years": d.closure.archive_years},
        "patients": patients, "audit_copies": copies,
        "verify": "proapp study verify-archive FILE (with PROAPP_AUDIT_KEYS holding the key named above)",
    }


# After the archive ------------------------------------------------------------------------------------------

def erase_contacts(db: Session, study: Study, closure: StudyClosure, keys: AuditKeys, directory: Path,
                   now: datetime, actor: str) -> int:
    """Step 3: erase every patient's phone number, once the archive is there and intact. Returns how many."""
    if closure.contacts_erased_at is not None:
        return 0
    checked_archive(study, closure, keys, directory)

    contacts = list(db.scalars(select(PatientContact).join(Patient, Patient.id == PatientContact.patient_id)
                               .where(Patient.study_id == study.id, PatientContact.phone_ciphertext.is_not(None))))
    for contact in contacts:
        erase(db, contact, now, actor, why="study closed", note="erased at the study's closure")
    closure.contacts_erased_at = now
    record(db, actor=actor, action="study.contacts_erased", entity="study", entity_id=study.id,
           new={"erased": len(contacts)}, at=now)
    db.flush()
    return len(contacts)


class OwnerNeeded(ClosureRefused):
    """The database refused the removal to the app's role (PostgreSQL: ``agreement`` is append-only for it)."""


def settle_live_data(db: Session, study: Study, closure: StudyClosure, keys: AuditKeys, directory: Path,
                     now: datetime, actor: str) -> dict[str, int]:
    """Step 4: remove the study's patients and every row recorded about them from the live tables (rows per
    table), or keep them, as the study file says; only once the archive is there and intact, the numbers
    erased. The audit trail stays (append-only: its entries and the archive's certified copies)."""
    if closure.live_data_done_at is not None:
        return {}
    if closure.contacts_erased_at is None:
        raise ClosureRefused(_l("The phone numbers of %(study)s are not erased yet.", study=study.code))
    checked_archive(study, closure, keys, directory)
    removed: dict[str, int] = {}
    if closure.live_data == "remove":
        try:
            with db.begin_nested():
                removed = _remove(db, study.id)
        except DBAPIError as exc:
            if "permission denied" not in str(exc.orig).lower():
                raise
            raise OwnerNeeded(_l("The app's database role may not remove the live data (the agreements are "
                                 "append-only for it): run proapp study close %(study)s with the tables' owner's "
                                 "database URL, as proapp init.", study=study.code)) from None
    closure.live_data_done_at = now
    record(db, actor=actor, action="study.live_data_removed" if closure.live_data == "remove" else
           "study.live_data_kept", entity="study", entity_id=study.id, new={"rows": removed} if removed else None,
           at=now)
    db.flush()
    return removed


def _remove(db: Session, study_id: int) -> dict[str, int]:
    """Delete the study's patients and, children first, every row that depends on them through foreign keys
    (responses, answers, corrections, occurrences, links, SMS, alerts, agreements ...), whatever tables the
    features add: the dependency graph is SQLAlchemy's metadata. Returns the rows deleted per table."""
    patient = cast(Table, Patient.__table__)
    conditions: dict[str, Any] = {"patient": patient.c.study_id == study_id}
    tables = Base.metadata.sorted_tables                  # parents before children
    for table in tables:
        if table.name in conditions:
            continue
        links = [table.c[fk.parent.name].in_(select(fk.column).where(conditions[fk.column.table.name]))
                 for fk in table.foreign_keys if fk.column.table.name in conditions]
        if links:
            conditions[table.name] = or_(*links)
    removed: dict[str, int] = {}
    for table in reversed(tables):                        # children first
        if table.name in conditions:
            count = db.execute(delete(table).where(conditions[table.name])).rowcount
            if count:
                removed[table.name] = count
    return removed



def run(code: str, keys: AuditKeys, directory: Path, sources: Sources, *, actor: str,
        force_reason: str | None = None, signature: dict[str, Any] | None = None) -> Iterator[str]:
    """Every step still to do, each in a transaction of its own, one line of what it did each (for the command
    and the page). Raises ClosureRefused where it must stop; what was done before stays done."""
    catalog, registry = runtime.studies(), runtime.instruments()
    with database.transaction() as s:
        study = find_study(s, code)
        earlier = closure_of(s, study.id)
        closure = begin(s, study, catalog, runtime.now(), actor, force_reason=force_reason, signature=signature)
        started = (closure.started_at, closure.started_by)
    yield (f"continuing the closure of {code} started at {started[0]:%Y-%m-%d %H:%M} UTC by {started[1]}"
           if earlier is not None else f"{code} is closed to patients: no enrolment, its links say so, no SMS")

    with database.transaction() as s:        # a response completed just before the closure gets its place in the feed
        feed.sequence_pending(s)
    with database.transaction() as s:
        study = find_study(s, code)
        closure = closure_of(s, study.id, lock=True)
        assert closure is not None
        done = closure.archive_sha256 is not None
        path = archive(s, study, closure, catalog, registry, keys, directory, sources, runtime.now(), actor)
        sha = closure.archive_sha256
    yield f"archive {'present and intact' if done else 'written and verified'}: {path} (SHA-256 {sha})"
    with database.transaction() as s:
        study = find_study(s, code)
        closure = closure_of(s, study.id, lock=True)
        assert closure is not None
        done = closure.contacts_erased_at is not None
        erased = erase_contacts(s, study, closure, keys, directory, runtime.now(), actor)
    yield "phone numbers erased before" if done else f"{erased} phone number(s) erased"
    with database.transaction() as s:
        study = find_study(s, code)
        closure = closure_of(s, study.id, lock=True)
        assert closure is not None
        done, live = closure.live_data_done_at is not None, closure.live_data
        removed = settle_live_data(s, study, closure, keys, directory, runtime.now(), actor)
    if done:
        yield "live data settled before"
    elif live == "remove":
        yield "live data removed: " + (", ".join(f"{n} {t}" for t, n in sorted(removed.items())) or "nothing left")
    else:
        yield "live data kept, as the study file says (closure.live_data: keep)"
    yield f"{code} is closed"
