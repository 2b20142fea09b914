"""Loading an edited study file updates the study and its sites, never existing schedules or responses."""

import shutil
from datetime import UTC, date, datetime

import yaml
from sqlalchemy import select

from proapp.models import Occurrence, Response, ResponseStatus, Site, Study
from proapp.patients.enrolment import EnrolmentRequest, enroll_patient
from proapp.studies.catalog import DATA_DIR, DEMO_CONTACTS, load_studies
from proapp.studies.sync import sync_studies
from tests.helpers import agreed


def test_edited_study_file_leaves_schedules_and_responses_alone(app, session, tmp_path):
    now = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
    catalog = app.extensions["proapp.studies"]
    patient = enroll_patient(session, catalog, app.extensions["proapp.phones"],
                             EnrolmentRequest("IMATINIB-SSC", "TLS", "IMA-TLS-001", "+33612345678", "fr",
                                              date(2026, 10, 20), agreed_on=agreed(now)), now=now)
    m1 = session.scalar(select(Occurrence).where(Occurrence.patient_id == patient.id,
                                                 Occurrence.visit_code == "M1"))
    session.add(Response(occurrence_id=m1.id, instrument_code="DLQI", instrument_version="1.0", language="fr",
                         status=ResponseStatus.COMPLETED, started_at=now, last_saved_at=now, completed_at=now,
                         scores={"total": 4}))
    session.commit()
    before = [(o.visit_code, o.window_opens_at, o.window_closes_at, o.instruments)
              for o in session.scalars(select(Occurrence).order_by(Occurrence.id))]

    folder = tmp_path / "studies"
    shutil.copytree(DATA_DIR, folder)
    path = folder / "IMATINIB-SSC.yaml"
    data = yaml.safe_load(path.read_text())
    shipped = str(data["version"])
    data["version"] = str(int(shipped) + 1)
    data["visits"][0]["window"] = {"before": 3, "after": 3}
    data["sites"] = [s for s in data["sites"] if s["code"] != "LIB"] + [{"code": "MTP", "name": "CHU de Montpellier",
                                                                    "phone": "+33199000299"}]
    path.write_text(yaml.safe_dump(data, allow_unicode=True))

    changes = sync_studies(session, load_studies(folder, app.extensions["proapp.instruments"], DEMO_CONTACTS,
                                                 demo_contacts=True), now)
    session.commit()
    assert f"study IMATINIB-SSC updated to version {data['version']}" in changes
    assert "site IMATINIB-SSC/MTP added" in changes
    assert "site IMATINIB-SSC/LIB no longer in the study file: deactivated" in changes
    session.rollback()               # a fresh snapshot of the database
    after = [(o.visit_code, o.window_opens_at, o.window_closes_at, o.instruments)
             for o in session.scalars(select(Occurrence).order_by(Occurrence.id))]
    assert after == before
    response = session.scalar(select(Response))
    assert (response.status, response.scores, response.instrument_version) == (
        ResponseStatus.COMPLETED, {"total": 4}, "1.0")
    assert session.scalar(select(Study.definition_version).where(Study.code == "IMATINIB-SSC")) == data["version"]
    lib = session.scalar(select(Site).join(Study).where(Study.code == "IMATINIB-SSC", Site.code == "LIB"))
    assert lib.active is False
    assert patient.schedule_version == shipped
