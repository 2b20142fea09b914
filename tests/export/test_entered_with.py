"""Which control a patient marked a visual analogue scale with (the line drawn by the page's script, or the number
box shown without JavaScript): stored with the answer, audited, and said by every export."""

from __future__ import annotations

import csv
import io

from sqlalchemy import select

from proapp import db
from proapp.audit.models import AuditEvent
from proapp.questionnaire.models import Answer
from tests.export.conftest import auth
from tests.export.odm import validate_odm
from tests.questionnaire.helpers import Patient, enrol_with_open_window

URL = "/api/v1/studies/ADUSE"


def weekly_entry(app, subject: str, control: str) -> None:
    """An ADUSE W1 without ulcers whose pain line is sent with ``control-PAIN_VAS`` set to ``control``."""
    _pid, token = enrol_with_open_window(app, "ADUSE", "W1", subject=subject)
    p = Patient(app.test_client(), token)
    p.open()
    p.start()
    p.diary(pain=None)
    assert 'name="control-PAIN_VAS" value="number"' in p.page.text     # what the page sends without JavaScript
    p.answer(PAIN_VAS="35", **{"control-PAIN_VAS": control})
    assert p.path == "/q/review", p.path
    p.submit()


def test_the_control_is_stored_audited_and_exported(app, key):
    weekly_entry(app, "ADU-TLS-001", "line")
    weekly_entry(app, "ADU-TLS-002", "number")
    weekly_entry(app, "ADU-TLS-003", "slider")         # not a control of the page: nothing is guessed
    with app.app_context():
        s = db.session()
        stored = s.scalars(select(Answer.entered_with).where(Answer.item_code == "PAIN_VAS")
                           .order_by(Answer.id)).all()
        assert stored == ["line", "number", None]
        others = s.scalars(select(Answer.entered_with).where(Answer.item_code != "PAIN_VAS")).all()
        assert others and set(others) == {None}                         # only a scale says it
        audited = [e.new for e in s.scalars(select(AuditEvent).where(AuditEvent.action == "answer.saved",
                                                                     AuditEvent.entity_id.like("%:PAIN_VAS:0"))
                                            .order_by(AuditEvent.id))]
        assert [a.get("entered_with") for a in audited] == ["line", "number", None]
    client = app.test_client()
    items = client.get(f"{URL}/responses?limit=100", headers=auth(key)).get_json()["data"]
    pains = [i for i in items if i["instrument"]["code"] == "PAIN_VAS"]
    assert [(i["subject_id"], i["entered_with"]) for i in pains] == [
        ("ADU-TLS-001", {"PAIN_VAS": "line"}), ("ADU-TLS-002", {"PAIN_VAS": "number"}), ("ADU-TLS-003", {})]
    assert all(i["entered_with"] == {} for i in items if i["instrument"]["code"] == "DU_DIARY")

    rows = list(csv.DictReader(io.StringIO(client.get(f"{URL}/responses?format=csv&limit=100",
                                                      headers=auth(key)).get_data(as_text=True))))
    assert [(r["subject_id"], r["entered_with"]) for r in rows if r["item_code"] == "PAIN_VAS"] == [
        ("ADU-TLS-001", "line"), ("ADU-TLS-002", "number"), ("ADU-TLS-003", "")]
    assert {r["entered_with"] for r in rows if r["item_code"] != "PAIN_VAS"} == {""}

    fhir = client.get(f"{URL}/responses?format=fhir&limit=100", headers=auth(key)).get_json()
    answers = {e["resource"]["subject"]["display"]: e["resource"]["item"][0]["answer"][0]
               for e in fhir["entry"] if e["resource"]["resourceType"] == "QuestionnaireResponse"
               and "PAIN_VAS" in e["resource"]["questionnaire"]}
    assert answers["ADU-TLS-001"]["extension"] == [
        {"url": "https://pro.example.test/fhir/StructureDefinition/entered-with", "valueCode": "line"}]
    assert answers["ADU-TLS-002"]["extension"][0]["valueCode"] == "number"
    assert "extension" not in answers["ADU-TLS-003"] and answers["ADU-TLS-003"]["valueInteger"] == 35

    doc = validate_odm(client.get(f"{URL}/responses?format=odm&limit=100", headers=auth(key)).data)
    sources = [s.text for s in doc.iter("{http://www.cdisc.org/ns/odm/v1.3}SourceID") if "PAIN_VAS 1.0" in s.text]
    assert [("entered with line" in s, "entered with number" in s) for s in sources] == [
        (True, False), (False, True), (False, False)]

    records = client.get(f"{URL}/responses?format=redcap&limit=100", headers=auth(key)).get_json()
    assert [(r["record_id"], r["pain_vas_vas_ctrl"]) for r in records if "pain_vas_vas_ctrl" in r] == [
        ("ADU-TLS-001", "PAIN_VAS[0]: line"), ("ADU-TLS-002", "PAIN_VAS[0]: number"), ("ADU-TLS-003", "")]
