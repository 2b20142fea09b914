"""Each answer keeps how it was given (the web page, a call's keypad or speech, an SMS reply), and every export
format says it, with the remote wording version a response was read aloud or sent with (issue 36). The study's
metadata carries the 0-10 pain rating (PAIN_NRS) wherever a visit has the pain VAS it replaces by voice or SMS."""

from __future__ import annotations

import csv
import io

from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.questionnaire import Questionnaire
from sqlalchemy import select, update

from proapp import db
from proapp.questionnaire.models import Answer, Response
from tests.export.conftest import auth, complete_diary
from tests.export.odm import validate_odm
from tests.export.remote import answer_remotely
from tests.export.test_api import valid_r4
from tests.export.test_redcap import dictionary, part
from tests.questionnaire.helpers import enrol_with_open_window

URL = "/api/v1/studies/ADUSE"
NS = {"odm": "http://www.cdisc.org/ns/odm/v1.3"}
MODE_URL = "https://pro.example.test/fhir/StructureDefinition/answer-mode"


def _voice_and_web(app) -> None:
    """ADU-TLS-101 answers W1 by call (the first question by SMS reply, the pain by speech); ADU-TLS-102 on the web
    page, one of its answers saved before modes were recorded (NULL)."""
    _pid, token = enrol_with_open_window(app, "ADUSE", "W1", subject="ADU-TLS-101")
    answer_remotely(app, token, {"DU_NEW": "sms", "PAIN_NRS": "voice_speech"})
    complete_diary(app, "ADU-TLS-102", ulcers=0)
    with app.app_context():
        s = db.session()
        web = s.scalar(select(Response.id).where(Response.instrument_code == "PAIN_VAS"))
        s.execute(update(Answer).where(Answer.response_id == web).values(mode=None))
        s.commit()


def test_each_answer_keeps_its_mode_and_every_format_says_it(app, key):
    _voice_and_web(app)
    client = app.test_client()
    with app.app_context():
        stored = {(code, mode) for code, mode in db.session().execute(
            select(Answer.item_code, Answer.mode).join(Response).where(Response.instrument_code != "PAIN_VAS"))}
    assert ("DU_NEW", "sms") in stored and ("DU_INFECT", "voice_dtmf") in stored
    assert ("PAIN_NRS", "voice_speech") in stored and ("DU_INFECT", "web") in stored

    # JSON: each answer's mode, the modes in the order used, the remote wording beside the instrument's version
    data = client.get(f"{URL}/responses?format=json", headers=auth(key)).get_json()["data"]
    by = {(r["subject_id"], r["instrument"]["code"]): r for r in data}
    assert set(by) == {("ADU-TLS-101", "DU_DIARY"), ("ADU-TLS-101", "PAIN_NRS"), ("ADU-TLS-102", "DU_DIARY"),
                       ("ADU-TLS-102", "PAIN_VAS")}          # the rating by voice is its own instrument, never a VAS
    diary = by[("ADU-TLS-101", "DU_DIARY")]
    assert diary["instrument"] == {"code": "DU_DIARY", "version": "2.3", "mode_wording": "2.3-R1"}
    assert diary["modes"] == ["sms", "voice_dtmf"]
    assert diary["answer_modes"]["DU_NEW"] == "sms" and diary["answer_modes"]["DU_HARVEST"] == "voice_dtmf"
    nrs = by[("ADU-TLS-101", "PAIN_NRS")]
    assert nrs["instrument"]["mode_wording"] == "1.0-R1" and nrs["answer_modes"] == {"PAIN_NRS": "voice_speech"}
    assert nrs["answers"] == {"PAIN_NRS": "6"} and nrs["scores"]["PAIN_NRS_SCORE"] == 6     # 0-10, not rescaled
    web = by[("ADU-TLS-102", "PAIN_VAS")]
    assert web["modes"] == ["web"] and web["answer_modes"] == {"PAIN_VAS": "web"}     # NULL: the web page
    assert web["instrument"]["mode_wording"] is None
    assert set(by[("ADU-TLS-102", "DU_DIARY")]["answer_modes"].values()) == {"web"}

    # CSV: an answer_mode column, and the remote wording on every row of the response
    rows = list(csv.DictReader(io.StringIO(client.get(f"{URL}/responses?format=csv", headers=auth(key))
                                           .get_data(as_text=True))))
    mine = {(r["subject_id"], r["item_code"], r["row_kind"]): r for r in rows}
    assert mine[("ADU-TLS-101", "DU_NEW", "answer")]["answer_mode"] == "sms"
    assert mine[("ADU-TLS-101", "DU_INFECT", "answer")]["answer_mode"] == "voice_dtmf"
    assert mine[("ADU-TLS-101", "PAIN_NRS", "answer")]["answer_mode"] == "voice_speech"
    assert mine[("ADU-TLS-101", "PAIN_NRS_SCORE", "score")]["answer_mode"] == ""
    assert {r["mode_wording"] for r in rows if r["subject_id"] == "ADU-TLS-101"} == {"2.3-R1", "1.0-R1"}
    assert mine[("ADU-TLS-102", "PAIN_VAS", "answer")]["answer_mode"] == "web"
    assert {r["mode_wording"] for r in rows if r["subject_id"] == "ADU-TLS-102"} == {""}

    # FHIR: an item extension on each answer of a response answered by voice or SMS; the wording on the response
    bundle = client.get(f"{URL}/responses?format=fhir", headers=auth(key)).get_json()
    Bundle.model_validate(bundle)
    valid_r4(bundle)
    qrs = {(e["resource"]["subject"]["display"], e["resource"]["questionnaire"].split("/")[-1]): e["resource"]
           for e in bundle["entry"] if e["resource"]["resourceType"] == "QuestionnaireResponse"}
    qr = qrs[("ADU-TLS-101", "DU_DIARY|2.3")]
    modes = {i["linkId"]: [x["valueCode"] for x in i.get("extension", []) if x["url"] == MODE_URL]
             for i in qr["item"]}
    assert modes["DU_NEW"] == ["sms"] and modes["DU_INFECT"] == ["voice_dtmf"]
    assert {"url": "https://pro.example.test/fhir/StructureDefinition/mode-wording",
            "valueString": "2.3-R1"} in qr["extension"]
    nrs_qr = qrs[("ADU-TLS-101", "PAIN_NRS-digital-ulcers-24h|1.0")]
    assert nrs_qr["item"][0]["extension"] == [{"url": MODE_URL, "valueCode": "voice_speech"}]
    assert nrs_qr["item"][0]["answer"][0]["valueCoding"]["code"] == "6"
    for (subject, _q), resource in qrs.items():
        if subject == "ADU-TLS-102":          # the web page alone: no mode on its items (absent means the web)
            assert not any(x["url"] == MODE_URL for i in resource["item"] for x in i.get("extension", []))
            assert not any("mode-wording" in x["url"] for x in resource["extension"])

    # ODM: the response's AuditRecord names its modes, as it names its languages, and the remote wording
    doc = validate_odm(client.get(f"{URL}/responses?format=odm", headers=auth(key)).data)
    sources = [s.text for s in doc.iterfind(".//odm:SourceID", NS)]
    assert any("DU_DIARY 2.3, fr, by sms+voice_dtmf, remote wording 2.3-R1" in s for s in sources), sources
    assert any("PAIN_NRS 1.0, fr, by voice_speech, remote wording 1.0-R1" in s for s in sources), sources
    # a response all given on the web page says nothing more (as before modes were recorded)
    assert any("PAIN_VAS 1.0, fr" in s and " by " not in s and "remote" not in s for s in sources), sources

    # REDCap: the form's _mode and _mode_wording, fields of the dictionary; PAIN_NRS in its own form
    records = client.get(f"{URL}/responses?format=redcap", headers=auth(key)).get_json()
    names = {r["Variable / Field Name"] for r in dictionary(client, key, "ADUSE")}
    assert {"du_diary_mode", "du_diary_mode_wording", "pain_nrs", "pain_nrs_mode"} <= names
    diary_rows = {r["record_id"]: r for r in records if "du_diary_resp_id" in r}
    assert (diary_rows["ADU-TLS-101"]["du_diary_mode"], diary_rows["ADU-TLS-101"]["du_diary_mode_wording"]) == (
        "sms+voice_dtmf", "2.3-R1")
    assert (diary_rows["ADU-TLS-102"]["du_diary_mode"], diary_rows["ADU-TLS-102"]["du_diary_mode_wording"]) == (
        "web", "")
    nrs_row = next(r for r in records if "pain_nrs_resp_id" in r)
    assert (nrs_row["record_id"], nrs_row["redcap_event_name"], nrs_row["pain_nrs"], nrs_row["pain_nrs_mode"],
            nrs_row["pain_nrs_mode_wording"]) == ("ADU-TLS-101", "w1_arm_1", "6", "voice_speech", "1.0-R1")
    columns = names | {"redcap_event_name", "redcap_repeat_instrument", "redcap_repeat_instance"} | {
        f"{m['form']}_complete" for m in part(client, key, "ADUSE", "mapping")}
    for r in records:
        assert set(r) <= columns | {k for k in r if k.endswith("___1")}, set(r) - columns
    mapped = {(m["unique_event_name"], m["form"]) for m in part(client, key, "ADUSE", "mapping")}
    assert ("w1_arm_1", "pain_nrs") in mapped and ("w1_arm_1", "pain_vas") in mapped


def test_the_metadata_has_the_pain_rating_wherever_the_visit_has_the_pain_vas(app, key):
    client = app.test_client()
    body = client.get(f"{URL}/metadata", headers=auth(key)).get_json()
    for v in body["visits"]:
        assert ("PAIN_NRS" in v["forms"]) == ("PAIN_VAS" in v["instruments"]), v
        assert "PAIN_NRS" not in v["instruments"]            # never asked on the web page
    insts = {i["code"]: i for i in body["instruments"]}
    assert insts["PAIN_VAS"]["remote_as"] == "PAIN_NRS" and "remote" not in insts["PAIN_VAS"]
    assert insts["PAIN_NRS"]["remote"]["version"] == "1.0-R1" and insts["PAIN_NRS"]["remote"]["modes"] == [
        "voice", "sms"]
    diary = insts["DU_DIARY"]["remote"]
    assert diary["version"] == "2.3-R1" and diary["items"]["DU_ONSET"]["asked_as"] == "days_ago"
    assert "remote" not in insts["DLQI"] and "remote_as" not in insts["DLQI"]

    doc = validate_odm(client.get(f"{URL}/metadata?format=odm", headers=auth(key)).data)
    refs = {e.get("OID"): {r.get("FormOID"): r.get("Mandatory") for r in e.iterfind("odm:FormRef", NS)}
            for e in doc.iterfind(".//odm:StudyEventDef", NS)}
    assert refs["SE.W1"] == {"F.DU_DIARY": "Yes", "F.PAIN_VAS": "Yes", "F.PAIN_NRS": "No"}
    assert refs["SE.W16Q"].get("F.PAIN_NRS") == ("No" if "F.PAIN_VAS" in refs["SE.W16Q"] else None)
    assert doc.find(".//odm:FormDef[@OID='F.PAIN_NRS']", NS) is not None

    resp = client.get("/api/v1/fhir/Questionnaire/PAIN_NRS-digital-ulcers-24h", headers=auth(key))
    assert resp.status_code == 200
    q = resp.get_json()
    Questionnaire.model_validate(q)
    valid_r4(q)
    assert q["item"][0]["linkId"] == "PAIN_NRS" and "finger ulcers" in q["item"][0]["text"]

    fields = {r["Variable / Field Name"]: r for r in dictionary(client, key, "ADUSE")}
    assert fields["pain_nrs"]["Form Name"] == "pain_nrs" and fields["pain_nrs"]["Field Type"] == "radio"
    assert fields["du_diary_mode"]["Field Annotation"] == "@READONLY"
    mapping = part(client, key, "ADUSE", "mapping")
    by_event: dict[str, set[str]] = {}
    for m in mapping:
        by_event.setdefault(m["unique_event_name"], set()).add(m["form"])
    assert all(("pain_nrs" in forms) == ("pain_vas" in forms) for forms in by_event.values()), by_event
