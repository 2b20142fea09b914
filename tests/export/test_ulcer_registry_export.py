"""Issue 30: the ulcer registry in every export format (JSON, CSV, ODM, FHIR, REDCap) and the data dictionaries:
each ulcer (number, place, treated, when and by whom noted, status, closing day) with the query the patient's
"not right" opened, and the patient's treated-ulcer query; the team's resolution follows in every format."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from proapp import db
from proapp.accounts.models import Role, User
from proapp.accounts.staff import create_user
from proapp.models import Patient as PatientRow
from proapp.questionnaire import ulcers
from tests.export.conftest import auth, make_key
from tests.export.odm import validate_odm
from tests.export.test_api import valid_r4
from tests.export.test_redcap import dictionary, part
from tests.questionnaire.helpers import Patient, enrol_with_open_window
from tests.questionnaire.test_flow import answer_dlqi, answer_haq
from tests.questionnaire.test_ulcer_flow import DLQI_NONE

URL = "/api/v1/studies/ADUSE/ulcers"
NS = {"odm": "http://www.cdisc.org/ns/odm/v1.3"}


def _staff(app) -> tuple[str, int]:
    with app.app_context():
        s = db.session()
        create_user(s, email="nurse@chu.test", password="A long enough pass phrase 42", role=Role.COORDINATOR,
                    now=datetime.now(UTC), study_code="ADUSE", site_code="TLS", language="fr")
        s.commit()
        return "user:nurse@chu.test", s.scalar(select(User.id).where(User.email == "nurse@chu.test"))


def _with(app, pid: int, action) -> None:
    with app.app_context():
        s = db.session()
        patient = s.get(PatientRow, pid)
        action(s, app.extensions["proapp.instruments"], patient, datetime.now(UTC))
        s.commit()


def _story(app) -> tuple[int, int, int]:
    """A: the treated ulcer noted, the patient says it is not right and reports another at W0. B: began W0 with no
    treated ulcer noted."""
    actor, staff_id = _staff(app)
    a, token = enrol_with_open_window(app, "ADUSE", "W0", subject="ADU-TLS-301")
    today = datetime.now(UTC).astimezone(ZoneInfo("Europe/Paris")).date()
    _with(app, a, lambda s, reg, p, now: ulcers.note_ulcer(s, reg, p, hand="L", finger="2", site="TIP", treated=True,
                                                           noted_on=today, actor=actor, now=now))
    p = Patient(app.test_client(), token)
    p.open()
    p.start()
    p.answer(DU_CONFIRM_OK="N")
    p.answer(DU_BL_ANY="Y", DU_HAND="R", DU_FINGER="3", DU_SITE="TIP")
    p.answer(more="N", PAIN_VAS="60")
    answer_dlqi(p, DLQI_NONE)
    answer_haq(p, activity="0")
    p.submit()
    b, token = enrol_with_open_window(app, "ADUSE", "W0", subject="ADU-TLS-302")
    p = Patient(app.test_client(), token)
    p.open()
    p.start()
    p.answer(DU_BL_ANY="N")                                # W0 begun: the treated ulcer was due
    return a, b, staff_id


def test_the_registry_and_its_queries_in_every_format(app):
    a, b, staff_id = _story(app)
    client, key = app.test_client(), make_key(app)
    staff = f"staff-{staff_id}"

    doc = client.get(URL, headers=auth(key)).get_json()
    by = {s["subject_id"]: s for s in doc["subjects"]}
    first, second = by["ADU-TLS-301"]["ulcers"]
    assert (first["number"], first["hand"], first["finger"], first["site"], first["treated"], first["source"],
            first["noted_by"], first["status"]) == (1, "L", "2", "TIP", True, "team", staff, "open")
    assert first["query"] | {"opened_on": None} == {
        "id": "NOT-CONFIRMED-1", "kind": "not_confirmed", "status": "open", "opened_on": None, "visit": "W0",
        "patient_answer": "N", "resolution": None, "resolved_by": None, "resolved_at": None}
    assert (second["number"], second["source"], second["first_visit"], second["treated"], second["noted_by"],
            second["query"]) == (2, "patient", "W0", False, None, None)
    assert by["ADU-TLS-301"]["open_queries"] == ["NOT-CONFIRMED-1"] and by["ADU-TLS-301"]["treated_query"] is None
    assert by["ADU-TLS-302"]["ulcers"] == [] and by["ADU-TLS-302"]["open_queries"] == ["TREATED-MISSING"]
    assert "nurse@chu.test" not in client.get(URL + "?format=csv", headers=auth(key)).get_data(as_text=True)

    rows = list(csv.DictReader(io.StringIO(client.get(URL + "?format=csv", headers=auth(key)).get_data(as_text=True))))
    assert [(r["subject_id"], r["row_kind"], r["number"], r["treated"], r["query_status"]) for r in rows] == [
        ("ADU-TLS-301", "ulcer", "1", "yes", "open"), ("ADU-TLS-301", "ulcer", "2", "no", ""),
        ("ADU-TLS-302", "treated_query", "", "", "open")]

    odm = validate_odm(client.get(URL + "?format=odm", headers=auth(key)).data)
    groups = odm.findall(".//odm:SubjectData[@SubjectKey='ADU-TLS-301']//odm:ItemGroupData", NS)
    assert [(g.get("ItemGroupOID"), g.get("ItemGroupRepeatKey")) for g in groups] == [
        ("IG.ULCER_REGISTRY.ULCER", "1"), ("IG.ULCER_REGISTRY.ULCER", "2")]
    items = {i.get("ItemOID"): i.get("Value") for i in groups[0]}
    assert (items["I.ULCER_REGISTRY.TREATED"], items["I.ULCER_REGISTRY.QUERY_STATUS"],
            items["I.ULCER_REGISTRY.NOTED_BY"]) == ("1", "open", staff)
    assert odm.find(".//odm:SubjectData[@SubjectKey='ADU-TLS-302']//odm:ItemGroupData", NS).get(
        "ItemGroupOID") == "IG.ULCER_REGISTRY.TREATED_QUERY"
    # The metadata defines what the clinical data names, and stays valid.
    meta = validate_odm(client.get("/api/v1/studies/ADUSE/metadata?format=odm", headers=auth(key)).data)
    defined = {d.get("OID") for d in meta.iter() if d.get("OID")}
    assert {e.get(a) for e in odm.iter() for a in ("FormOID", "ItemGroupOID", "ItemOID") if e.get(a)} <= defined

    from fhir.resources.R4B.bundle import Bundle

    bundle = client.get(URL + "?format=fhir", headers=auth(key)).get_json()
    Bundle.model_validate(bundle)
    valid_r4(bundle)
    conditions = [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Condition"]
    tasks = [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Task"]
    assert [c["verificationStatus"]["coding"][0]["code"] for c in conditions] == ["unconfirmed", "confirmed"]
    assert [(t["code"]["coding"][0]["code"], t["status"]) for t in tasks] == [
        ("not_confirmed", "requested"), ("treated_missing", "requested")]
    urls = {e["fullUrl"]: e["resource"]["id"] for e in bundle["entry"]}
    assert urls[tasks[0]["focus"]["reference"]] == conditions[0]["id"] == "proapp-aduse-adu-tls-301-ulcer-1"

    records = client.get(URL + "?format=redcap", headers=auth(key)).get_json()
    names = {r["Variable / Field Name"]: r for r in dictionary(client, key, "ADUSE")}
    columns = set(names) | {"record_id", "redcap_event_name", "redcap_repeat_instrument", "redcap_repeat_instance",
                            "ulcer_registry_complete", "ulcer_registry_check_complete"}
    assert all(set(r) <= columns for r in records)
    assert names["ureg_treated"]["Field Type"] == "yesno" and names["ureg_status"]["Field Type"] == "radio"
    assert ("w0_arm_1", "ulcer_registry") in {(r["event_name"], r["form_name"])
                                              for r in part(client, key, "ADUSE", "repeating")}
    registry_rows = [r for r in records if r["redcap_repeat_instrument"] == "ulcer_registry"]
    assert [(r["record_id"], r["redcap_repeat_instance"], r["ureg_treated"], r["ureg_q_status"])
            for r in registry_rows] == [("ADU-TLS-301", "1", "1", "open"), ("ADU-TLS-301", "2", "0", "")]
    assert next(r for r in records if r["record_id"] == "ADU-TLS-302")["ureg_tq_status"] == "open"
    assert "ulcer_registry" in client.get("/api/v1/studies/ADUSE/metadata", headers=auth(key)).get_json()

    # The team closes ulcer 1 (resolving the query) and notes B's treated ulcer: every format follows. Moving it
    # where the patient reported their own (ulcer 2) would make one ulcer two: refused.
    today = datetime.now(UTC).astimezone(ZoneInfo("Europe/Paris")).date()
    with pytest.raises(ulcers.NoteRefused, match="L'ulcère 2 est déjà enregistré à cet endroit : s'il s'agit"):
        _with(app, a, lambda s, reg, p, now: ulcers.decide_ulcer(s, reg, p, number=1, action="relocated",
                                                                 place=("R", "3", "TIP"), reason="Moved",
                                                                 actor="user:nurse@chu.test", now=now))
    _with(app, a, lambda s, reg, p, now: ulcers.decide_ulcer(s, reg, p, number=1, action="closed", closed_on=today,
                                                             reason="Seen at the visit: no ulcer there",
                                                             actor="user:nurse@chu.test", now=now))
    _with(app, b, lambda s, reg, p, now: ulcers.note_ulcer(s, reg, p, hand="R", finger="4", site="TIP", treated=True,
                                                           noted_on=today, actor="user:nurse@chu.test", now=now))
    doc = client.get(URL, headers=auth(key)).get_json()
    by = {s["subject_id"]: s for s in doc["subjects"]}
    first = by["ADU-TLS-301"]["ulcers"][0]
    assert (first["status"], first["closed_on"], first["query"]["status"], first["query"]["resolution"],
            first["query"]["resolved_by"]) == ("closed", today.isoformat(), "resolved", "closed", staff)
    assert by["ADU-TLS-302"]["treated_query"]["resolution"] == "noted" and by["ADU-TLS-302"]["open_queries"] == []
    bundle = client.get(URL + "?format=fhir", headers=auth(key)).get_json()
    Bundle.model_validate(bundle)
    assert [e["resource"]["status"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Task"] == [
        "completed", "completed"]
    validate_odm(client.get(URL + "?format=odm", headers=auth(key)).data)


def test_a_study_without_a_registry_and_a_site_restricted_key(app):
    resp = app.test_client().get("/api/v1/studies/IMATINIB-SSC/ulcers", headers=auth(make_key(app, "IMATINIB-SSC")))
    assert resp.status_code == 404 and resp.mimetype == "application/problem+json"
    enrol_with_open_window(app, "ADUSE", "W0", subject="ADU-TLS-303")
    other = make_key(app, "ADUSE", sites=("TLS",))
    assert [s["subject_id"] for s in app.test_client().get(URL, headers=auth(other)).get_json()["subjects"]] == [
        "ADU-TLS-303"]
    bad = app.test_client().get(URL + "?format=xls", headers=auth(other))
    assert bad.status_code == 400
