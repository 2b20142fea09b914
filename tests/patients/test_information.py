"""The patient is informed and what they agreed to is recorded: the information page (public, and from the
patient's pages), the agreement at enrolment, the acknowledgement of a new information sheet, the exports, the
first SMS, and production refusing a study file without the information."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
import yaml
from sqlalchemy import select

from proapp import db
from proapp.audit.models import AuditEvent
from proapp.patients.models import Agreement
from proapp.studies.catalog import StudyFileError
from tests.conftest import INFORMATION, PRODUCTION_MAIL, PRODUCTION_STUDIES, fresh_app, make_app
from tests.export.conftest import auth, make_key
from tests.questionnaire.helpers import Patient, csrf, enrol_with_open_window, text

pytestmark = pytest.mark.requirement("INFORMED")


def _studies(folder, version: str | None = None, information: bool = True):
    """The production copy of the study files, with the information sheet at ``version`` (or none)."""
    folder.mkdir()
    for path in PRODUCTION_STUDIES.glob("*.yaml"):
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        if not information:
            raw.pop("information")
        elif version:
            raw["information"] = {**INFORMATION, "version": version}
        (folder / path.name).write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    return folder


@pytest.fixture
def informed_app(database_url, instance_dir):
    app = fresh_app(database_url, STUDIES_DIR=str(PRODUCTION_STUDIES))
    yield app
    app.extensions["proapp.engine"].dispose()


def test_the_information_page_says_who_why_what_who_receives_how_long_and_the_rights(informed_app):
    client = informed_app.test_client()
    fr = client.get("/information/ADUSE", headers={"Accept-Language": "fr"})
    assert fr.status_code == 200
    page = text(fr.get_data(as_text=True))
    for phrase in ("Vos données et vos droits", "Notice d'information version 2.1", INFORMATION["sponsor"],
                 "Suivre votre état pendant l'étude", "RGPD article 6.1.e", "Méthodologie de référence : MR-001.",
                 "Vos réponses aux questionnaires", "Votre équipe de l'étude, dans votre hôpital.",
                 "Le prestataire d'envoi des SMS, Twilio Inc.", "hors de l'Union européenne (États-Unis)",
                 "clauses contractuelles types", "archivées 25 ans", "dpo@chu-exemple.example",
                 "réclamation à la CNIL", "Vos réponses ne sont pas lues au moment où vous les envoyez",
                 "15 ou 112"):
        assert phrase in page, phrase
    en = text(client.get("/information/ADUSE", headers={"Accept-Language": "en"}).get_data(as_text=True))
    assert "outside the European Union" in en and "standard contractual clauses" in en and "MR-001" in en
    assert client.get("/information/NOPE").status_code == 404


def test_the_agreement_is_recorded_audited_and_exported_and_a_new_sheet_is_acknowledged_once(
        database_url, instance_dir, tmp_path):
    app = fresh_app(database_url, STUDIES_DIR=str(PRODUCTION_STUDIES))
    pid, token = enrol_with_open_window(app, "ADUSE", "W1", subject="ADU-TLS-301", language="fr")
    with app.app_context():
        s = db.session()
        [agreement] = s.scalars(select(Agreement).where(Agreement.patient_id == pid)).all()
        assert (agreement.kind, agreement.information_version) == ("agreement", "2.1")
        audit = s.scalar(select(AuditEvent).where(AuditEvent.action == "patient.agreed"))
        assert audit.patient_id == pid and audit.new["information_version"] == "2.1"
        assert audit.new["given_on"] == agreement.given_on.isoformat() and audit.new["to"] == ["sms", "online_answers"]
    patient = Patient(app.test_client(), token)
    patient.open()
    welcome = patient.client.get("/q").get_data(as_text=True)
    assert 'href="/q/information"' in welcome                     # linked from every patient page
    assert "a changé" not in welcome                              # the sheet they agreed to is the current one
    app.extensions["proapp.engine"].dispose()

    app = make_app(database_url, STUDIES_DIR=str(_studies(tmp_path / "v22", "2.2")))   # the sponsor's new sheet
    patient.client = app.test_client()
    patient.open()
    welcome = text(patient.client.get("/q").get_data(as_text=True))
    assert "L'information sur l'étude et vos données a changé" in welcome
    html = patient.client.get("/q/information").get_data(as_text=True)
    assert "Notice d'information version 2.2" in text(html) and "J'ai lu cette information" in text(html)
    done = patient.client.post("/q/information", data={"csrf_token": csrf(html), "version": "2.2"})
    assert "votre lecture de cette version est enregistrée" in text(done.get_data(as_text=True))
    again = patient.client.post("/q/information", data={"csrf_token": csrf(html), "version": "2.2"})
    assert "J'ai lu" not in text(again.get_data(as_text=True))
    with app.app_context():
        s = db.session()
        rows = [(a.kind, a.information_version) for a in
                s.scalars(select(Agreement).where(Agreement.patient_id == pid).order_by(Agreement.id))]
        assert rows == [("agreement", "2.1"), ("acknowledgement", "2.2")]           # once, not twice
        [ack] = s.scalars(select(AuditEvent).where(AuditEvent.action == "patient.acknowledged_information")).all()
        assert ack.actor.startswith("patient:link:") and ack.new["information_version"] == "2.2"
        given_on = ack.new["given_on"]
        assert given_on == datetime.now(UTC).astimezone(ZoneInfo("Europe/Paris")).date().isoformat()
    patient.start()
    patient.diary([("R", "2", "TIP")], pain="20")
    patient.submit()
    key = make_key(app)
    items = app.test_client().get("/api/v1/studies/ADUSE/responses", headers=auth(key)).get_json()["data"]
    assert len(items) == 2                                          # the pain scale and the diary
    for item in items:
        assert item["agreements"] == [
            {"kind": "agreement", "information_version": "2.1", "given_on": agreement.given_on.isoformat()},
            {"kind": "acknowledgement", "information_version": "2.2", "given_on": given_on}]
    app.extensions["proapp.engine"].dispose()


def test_production_refuses_a_study_file_without_the_information(database_url, instance_dir, tmp_path):
    production = {"ENV": "production", "SECRET_KEY": "p" * 64, "PUBLIC_URL": "https://pro.example.test",
                  "AUDIT_KEYS": "k1:" + "ab" * 32, "SMS_GATEWAY": "twilio", "TWILIO_ACCOUNT_SID": "AC" + "0" * 32,
                  "TWILIO_AUTH_TOKEN": "t" * 32, **PRODUCTION_MAIL}
    with pytest.raises(StudyFileError, match=r"study file ADUSE.yaml: information: missing \(the sponsor"):
        make_app(database_url, **(production | {"STUDIES_DIR": str(_studies(tmp_path / "none", information=False))}))
    app = make_app(database_url, **production)
    assert app.extensions["proapp.studies"].get("ADUSE").information.methodology == "MR-001"
    app.extensions["proapp.engine"].dispose()


def test_enrolment_without_the_agreement_day_is_refused_and_stores_nothing(informed_app):
    result = informed_app.test_cli_runner().invoke(args=[
        "proapp", "enroll", "--study", "ADUSE", "--site", "TLS", "--subject", "ADU-TLS-302", "--phone",
        "+33612345678", "--anchor-date", "2026-01-05"])
    assert result.exit_code == 2 and "--agreed-on" in result.output
    result = informed_app.test_cli_runner().invoke(args=[
        "proapp", "enroll", "--study", "ADUSE", "--site", "TLS", "--subject", "ADU-TLS-302", "--phone",
        "+33612345678", "--anchor-date", "2026-01-05", "--agreed-on", "2099-01-01"])
    assert result.exit_code == 2 and "agreed_on: The patient's agreement cannot be dated after today." in result.output
    with informed_app.app_context():
        assert db.session().scalar(select(Agreement.id)) is None
