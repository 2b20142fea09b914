"""Corrections after completion: a new record by authorised staff with a reason, beside the original (which
never changes); scores recomputed; the corrected response comes again through the export API and the push."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
import yaml
from sqlalchemy import select

from proapp import db
from proapp.accounts.models import Role
from proapp.accounts.staff import create_user
from proapp.questionnaire.models import Answer, Correction, Response
from proapp.studies.catalog import DATA_DIR as SHIPPED_STUDIES
from tests.conftest import fresh_app
from tests.dashboard.conftest import PASSWORD, Staff, text_of
from tests.export.conftest import auth, complete_diary, make_key
from tests.export.odm import validate_odm

pytestmark = pytest.mark.requirement("CORRECTION")

URL = "/api/v1/studies/ADUSE"


def _nurse(app) -> Staff:
    with app.app_context():
        s = db.session()
        create_user(s, email="nurse@chu.test", password=PASSWORD, role=Role.COORDINATOR, now=datetime.now(UTC),
                    study_code="ADUSE", language="en")
        s.commit()
    staff = Staff(app, None)
    staff.login("nurse@chu.test", PASSWORD, expect=303)
    return staff


def _today() -> str:
    return datetime.now(UTC).astimezone(ZoneInfo("Europe/Paris")).date().isoformat()


def _response(app, instrument: str) -> int:
    with app.app_context():
        return db.session().scalar(select(Response.id).where(Response.instrument_code == instrument))


def test_a_correction_is_recorded_beside_the_original(app):
    pid = complete_diary(app, "ADU-TLS-001")
    staff = _nurse(app)
    rid = _response(app, "PAIN_VAS")
    url = f"/staff/patients/{pid}/responses/{rid}"
    assert "35 out of 100" in text_of(staff.get(url))
    asked = {"source": "patient_request", "request_method": "phone", "requested_on": _today()}
    unsigned = staff.post(f"{url}/correct", {"item": "PAIN_VAS", "repeat": "0", "value": "40", **asked,
                                             "reason": "patient called: meant 40", "signature_password": "wrong"})
    assert unsigned.status_code == 422 and "the change is not signed" in text_of(unsigned)
    # The form comes back with the corrected value typed, never the original: signing again records 40.
    assert 'id="value-PAIN_VAS:0" name="value" inputmode="numeric" value="40"' in unsigned.get_data(as_text=True)
    resp = staff.post(f"{url}/correct", {"item": "PAIN_VAS", "repeat": "0", "value": "40", **asked,
                                         "reason": "patient called: meant 40", "signature_password": PASSWORD})
    assert resp.status_code == 303
    page = text_of(staff.get(url))
    assert "35 out of 100" in page and "40 out of 100" in page and "patient called: meant 40" in page
    assert "Pain (0-100) 35 → 40 (after the corrections)" in page          # the scores, as completed and now
    with app.app_context():
        s = db.session()
        assert s.scalar(select(Answer.value).where(Answer.response_id == rid)) == "35"      # never changed
        r = s.get(Response, rid)
        assert r.scores["pain"] == 35 and r.corrected_scores["pain"] == 40
        c = s.scalar(select(Correction))
        assert (c.old_value, c.new_value, c.corrected_by) == ("35", "40", "user:nurse@chu.test")
        assert (c.signature_meaning, c.signature_method) == ("I am correcting this answer for the reason given.",
                                                             "password")
        from proapp.audit.models import AuditEvent

        assert (c.source, c.requested_on.isoformat(), c.request_method) == ("patient_request", _today(), "phone")
        entry = s.scalar(select(AuditEvent).where(AuditEvent.action == "answer.corrected"))
        assert (entry.old, entry.new["value"], entry.reason) == ({"value": "35"}, "40", "patient called: meant 40")
        assert entry.new["source"] == {"kind": "patient_request", "requested_on": _today(), "method": "phone"}
        assert entry.new["signature"]["signer"] == "nurse@chu.test" and entry.new["signature"]["method"] == "password"
    assert "Answers: Pain scale" in text_of(staff.get(f"/staff/patients/{pid}"))      # the name, not the code


def test_refused_corrections_store_nothing(app):
    pid = complete_diary(app, "ADU-TLS-001")
    staff = _nurse(app)
    pain, diary = _response(app, "PAIN_VAS"), _response(app, "DU_DIARY")
    cases = [
        (pain, {"item": "PAIN_VAS", "repeat": "0", "value": "40", "reason": " "}, "Give the reason"),
        (pain, {"item": "PAIN_VAS", "repeat": "0", "value": "150", "reason": "x"}, "not one the question allows"),
        (pain, {"item": "PAIN_VAS", "repeat": "0", "value": "35", "reason": "x"}, "already the recorded answer"),
        (pain, {"item": "DLQI01", "repeat": "0", "value": "1", "reason": "x"}, "not part of this questionnaire"),
        (diary, {"item": "DU_HAND", "repeat": "5", "value": "L", "reason": "x"}, "was not asked"),
        (diary, {"item": "DU_HAND", "repeat": "abc", "value": "L", "reason": "x"}, "was not asked"),
    ]
    for rid, form, message in cases:
        resp = staff.post(f"/staff/patients/{pid}/responses/{rid}/correct",
                          {"source": "other", **form, "signature_password": PASSWORD})
        assert resp.status_code == 422, form
        assert message in text_of(resp), (form, text_of(resp)[:300])
    with app.app_context():
        assert db.session().scalar(select(Correction.id)) is None
    assert staff.get(f"/staff/patients/{pid}/responses/999999").status_code == 404


def test_the_edc_receives_the_corrected_response_with_both_values(app):
    pid = complete_diary(app, "ADU-TLS-001")
    key = make_key(app)
    client = app.test_client()
    first = client.get(f"{URL}/responses", headers=auth(key)).get_json()
    staff = _nurse(app)
    diary = _response(app, "DU_DIARY")
    staff.post(f"/staff/patients/{pid}/responses/{diary}/correct",
               {"item": "DU_HAND", "repeat": "2", "value": "R", "reason": "both ulcers were on the right hand",
                "source": "other", "signature_password": PASSWORD})
    again = client.get(f"{URL}/responses?cursor={first['next_cursor']}", headers=auth(key)).get_json()
    [item] = again["data"]
    assert item["id"] == diary and item["revision"] == 1
    assert item["answers"]["DU_HAND"] == ["R", "R"]
    [fix] = item["corrections"]
    assert (fix["item"], fix["repeat"], fix["old_value"], fix["new_value"]) == ("DU_HAND", 2, "L", "R")
    assert fix["by"] == "user:nurse@chu.test" and fix["reason"] == "both ulcers were on the right hand"
    assert fix["signature"] == {"meaning": "I am correcting this answer for the reason given.", "method": "password"}
    rows = list(csv.DictReader(io.StringIO(client.get(f"{URL}/responses?format=csv", headers=auth(key))
                                           .get_data(as_text=True))))
    hand2 = next(r for r in rows if r["item_code"] == "DU_HAND" and r["repeat"] == "2")
    assert (hand2["value"], hand2["original_value"], hand2["correction_reason"]) == (
        "R", "L", "both ulcers were on the right hand")
    with app.app_context():                                        # the patient's time, beside the correction's
        given = db.session().scalar(select(Answer.answered_at).where(Answer.response_id == diary,
                                                                     Answer.item_code == "DU_HAND",
                                                                     Answer.repeat_index == 2))
    assert hand2["answered_at"] == given.replace(tzinfo=UTC).strftime("%Y-%m-%dT%H:%M:%SZ") <= hand2["corrected_at"]
    hand1 = next(r for r in rows if r["item_code"] == "DU_HAND" and r["repeat"] == "1")
    assert hand1["answered_at"] and hand1["corrected_at"] == ""
    ns = {"o": "http://www.cdisc.org/ns/odm/v1.3"}
    # From the start, the corrected response is an Update of its form (the pain scale, never corrected, an
    # Insert); after the first pull's cursor, only the Update comes.
    inserted = validate_odm(client.get(f"{URL}/responses?format=odm", headers=auth(key)).data)
    assert inserted.get("FileType") == "Transactional"
    forms = {f.get("FormOID"): f.get("TransactionType") for f in inserted.iterfind(".//o:FormData", ns)}
    assert forms == {"F.DU_DIARY": "Update", "F.PAIN_VAS": "Insert"}
    doc = validate_odm(client.get(f"{URL}/responses?format=odm&cursor={first['next_cursor']}",
                                  headers=auth(key)).data)
    [form] = doc.iterfind(".//o:FormData", ns)
    assert form.get("TransactionType") == "Update"
    hand = doc.find(".//o:ItemGroupData[@ItemGroupRepeatKey='2']/o:ItemData[@ItemOID='I.DU_DIARY.DU_HAND']", ns)
    assert (hand.get("TransactionType"), hand.get("Value")) == ("Update", "R")
    reason = hand.find("o:AuditRecord/o:ReasonForChange", ns)
    assert reason.text == "both ulcers were on the right hand"
    assert "prior value: L" in hand.find("o:AuditRecord/o:SourceID", ns).text
    unchanged = doc.find(".//o:ItemGroupData[@ItemGroupRepeatKey='1']/o:ItemData[@ItemOID='I.DU_DIARY.DU_HAND']", ns)
    assert unchanged.get("TransactionType") == "Upsert"
    assert doc.find(".//o:SubjectData", ns).get("TransactionType") == "Upsert"
    from fhir.resources.R4B.bundle import Bundle

    bundle = client.get(f"{URL}/responses?format=fhir", headers=auth(key)).get_json()
    Bundle.model_validate(bundle)
    statuses = {e["resource"]["identifier"]["value"]: e["resource"]["status"] for e in bundle["entry"]
                if e["resource"]["resourceType"] == "QuestionnaireResponse"}
    assert statuses[str(diary)] == "amended"
    url = next(e["fullUrl"] for e in bundle["entry"] if e["resource"]["resourceType"] == "QuestionnaireResponse"
               and e["resource"]["identifier"]["value"] == str(diary))
    derived = [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Observation"
               and e["resource"]["derivedFrom"] == [{"reference": url}]]
    assert derived and {o["status"] for o in derived} == {"amended"}
    fingers = next(o for o in derived if o["code"]["coding"][0]["code"] == "DU_DIARY.FINGERS_AFFECTED")
    assert fingers["valueString"] == "R2 R3"                             # scored again from the corrected answer


def test_acknowledgements_name_the_revision_and_the_patient_page_flags_a_correction_not_received(app):
    pid = complete_diary(app, "ADU-TLS-001")
    key = make_key(app)
    client = app.test_client()
    pain = _response(app, "PAIN_VAS")
    diary = _response(app, "DU_DIARY")
    assert len(client.get(f"{URL}/responses", headers=auth(key)).get_json()["data"]) == 2     # the EDC pulls
    first = client.post(f"{URL}/acknowledgements", headers=auth(key),
                        json={"responses": [{"id": pain, "revision": 0}, {"id": diary, "revision": 0}]}).get_json()
    assert first["acknowledged"] == sorted([{"id": pain, "revision": 0}, {"id": diary, "revision": 0}],
                                           key=lambda a: a["id"])
    staff = _nurse(app)
    assert "a correction is not received yet" not in text_of(staff.get(f"/staff/patients/{pid}"))
    staff.post(f"/staff/patients/{pid}/responses/{pain}/correct",
               {"item": "PAIN_VAS", "repeat": "0", "value": "40", "reason": "patient called",
                "source": "other", "signature_password": PASSWORD})
    assert "a correction is not received yet" in text_of(staff.get(f"/staff/patients/{pid}"))
    again = client.post(f"{URL}/acknowledgements", headers=auth(key),
                        json={"responses": [{"id": pain, "revision": 0}, {"id": pain, "revision": 2}]}).get_json()
    assert again == {"acknowledged": [], "already_acknowledged": [{"id": pain, "revision": 0}],
                     "unknown": [{"id": pain, "revision": 2}]}       # revision 0 again says nothing of the fix
    assert "a correction is not received yet" in text_of(staff.get(f"/staff/patients/{pid}"))
    page = text_of(staff.get(f"/staff/patients/{pid}/responses/{pain}"))
    assert "The EDC holds revision 0" in page and "Revision 1, after a correction, is not received yet." in page
    fixed = client.post(f"{URL}/acknowledgements", headers=auth(key),
                        json={"responses": [{"id": pain, "revision": 1}]}).get_json()
    assert fixed["acknowledged"] == [{"id": pain, "revision": 1}]
    assert "a correction is not received yet" not in text_of(staff.get(f"/staff/patients/{pid}"))
    page = text_of(staff.get(f"/staff/patients/{pid}/responses/{pain}"))
    assert "The EDC holds revision 1" in page and "not received yet" not in page
    bad = client.post(f"{URL}/acknowledgements", headers=auth(key), json={"responses": [{"id": pain}]})
    assert bad.status_code == 400 and bad.mimetype == "application/problem+json"


def _restricted_studies(folder):
    """The shipped study files, ADUSE allowing corrections only at the patient's request or for a transcription
    error (what a monitor expects)."""
    folder.mkdir()
    for path in SHIPPED_STUDIES.glob("*.yaml"):
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        if raw["code"] == "ADUSE":
            raw["corrections"] = {"sources": ["patient_request", "transcription_error"]}
        (folder / path.name).write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    return folder


def test_the_study_restricts_corrections_to_documented_sources_and_the_exports_carry_the_source(
        database_url, instance_dir, tmp_path):
    app = fresh_app(database_url, STUDIES_DIR=str(_restricted_studies(tmp_path / "studies")))
    try:
        pid = complete_diary(app, "ADU-TLS-001")          # answered on the patient's phone, not on site
        staff = _nurse(app)
        pain = _response(app, "PAIN_VAS")
        url = f"/staff/patients/{pid}/responses/{pain}"
        page = text_of(staff.get(url))
        assert "The patient's request" in page and "A transcription error" in page and "Another reason" not in page
        base = {"item": "PAIN_VAS", "repeat": "0", "value": "40", "reason": "x", "signature_password": PASSWORD}
        for form, message in [
            ({}, "Choose where the correction comes from."),
            ({"source": "other"}, "This study does not allow corrections from this source."),
            ({"source": "transcription_error"}, "A transcription error concerns a paper form entered on site"),
            ({"source": "patient_request", "requested_on": _today()}, "Say how the patient asked"),
            ({"source": "patient_request", "request_method": "phone"}, "Give the day the patient asked"),
            ({"source": "patient_request", "request_method": "phone", "requested_on": "2099-01-01"},
             "Give the day the patient asked"),
            ({"source": "patient_request", "request_method": "phone", "requested_on": "01/02/2026"},
             "Give the day the patient asked"),
            ({"source": "patient_request", "request_method": "pigeon", "requested_on": _today()},
             "Say how the patient asked"),
        ]:
            resp = staff.post(f"{url}/correct", {**base, **form})
            assert resp.status_code == 422 and message in text_of(resp), (form, text_of(resp)[:300])
        with app.app_context():
            assert db.session().scalar(select(Correction.id)) is None          # nothing stored from refusals
        resp = staff.post(f"{url}/correct", {**base, "source": "patient_request", "request_method": "visit",
                                             "requested_on": _today()})
        assert resp.status_code == 303
        page = text_of(staff.get(url))
        assert "The patient's request (" in page and "at a visit)" in page
        item = next(i for i in app.test_client().get(f"{URL}/responses", headers=auth(make_key(app))).get_json()[
            "data"] if i["id"] == pain)
        assert item["corrections"][0]["source"] == {"kind": "patient_request", "requested_on": _today(),
                                                    "method": "visit"}
        _every_format_carries_the_source(app, pain, _today())
    finally:
        app.extensions["proapp.engine"].dispose()


def _every_format_carries_the_source(app, pain: int, day: str) -> None:
    """The correction's source, as the JSON has it, in CSV (columns), ODM (the AuditRecord's SourceID, schema
    valid), FHIR (a complex extension, R4B valid) and REDCap (the form's ``_corr_src``)."""
    from fhir.resources.R4B.bundle import Bundle

    client, key = app.test_client(), make_key(app)
    rows = list(csv.DictReader(io.StringIO(client.get(f"{URL}/responses?format=csv", headers=auth(key))
                                           .get_data(as_text=True))))
    row = next(r for r in rows if r["response_id"] == str(pain) and r["item_code"] == "PAIN_VAS")
    assert (row["correction_source"], row["correction_requested_on"], row["correction_request_method"]) == (
        "patient_request", day, "visit")
    score = next(r for r in rows if r["response_id"] == str(pain) and r["row_kind"] == "score")
    assert score["correction_source"] == ""
    doc = validate_odm(client.get(f"{URL}/responses?format=odm", headers=auth(key)).data)
    ns = {"o": "http://www.cdisc.org/ns/odm/v1.3"}
    item = doc.find(".//o:ItemData[@ItemOID='I.PAIN_VAS.PAIN_VAS']", ns)
    assert item.find("o:AuditRecord/o:SourceID", ns).text.endswith(f"; source: patient_request on {day} by visit")
    bundle = client.get(f"{URL}/responses?format=fhir", headers=auth(key)).get_json()
    Bundle.model_validate(bundle)
    response = next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "QuestionnaireResponse"
                    and e["resource"]["identifier"]["value"] == str(pain))
    [fix] = [x for x in response["extension"] if x["url"].endswith("/fhir/StructureDefinition/correction")]
    parts = {p["url"]: next(v for k, v in p.items() if k.startswith("value")) for p in fix["extension"]}
    assert parts == {"item": "PAIN_VAS", "repeat": 0, "at": parts["at"], "reason": "x", "source": "patient_request",
                     "requestedOn": day, "requestMethod": "visit"}
    records = client.get(f"{URL}/responses?format=redcap", headers=auth(key)).get_json()
    pain_row = next(r for r in records if r.get("pain_vas_resp_id") == str(pain))
    assert pain_row["pain_vas_corr_src"] == f"PAIN_VAS[0]: patient_request on {day} by visit"
    diary_row = next(r for r in records if r.get("du_diary_resp_id"))
    assert diary_row["du_diary_corr_src"] == ""                      # never corrected
