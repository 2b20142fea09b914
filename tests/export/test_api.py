"""The export API as the EDC's integration job uses it: keys, metadata, the cursor feed, formats, errors."""

from __future__ import annotations

import csv
import gzip
import io
import json
import re
from datetime import UTC, datetime

import pytest
from lxml import etree
from sqlalchemy import select

from proapp import db
from proapp.export.models import Acknowledgement, ApiKey, ApiPull
from tests.export.conftest import auth, complete_diary, make_key
from tests.export.odm import validate_odm

URL = "/api/v1/studies/ADUSE"


def pull_all(client, key: str, limit: int = 1, cursor: str | None = None, fmt: str = "json"):
    """Follow the cursor to the end; return (items, last cursor)."""
    items = []
    while True:
        query = f"?limit={limit}&format={fmt}" + (f"&cursor={cursor}" if cursor else "")
        resp = client.get(f"{URL}/responses{query}", headers=auth(key))
        assert resp.status_code == 200, resp.get_data(as_text=True)
        body = resp.get_json()
        items += body["data"]
        assert body["next_cursor"] == resp.headers["X-Next-Cursor"]
        cursor = body["next_cursor"]
        if not body["has_more"]:
            return items, cursor


def test_key_is_shown_once_and_only_its_hash_is_stored(app, runner):
    result = runner.invoke(args=["proapp", "api-key", "create", "--study", "ADUSE", "--name", "EDC nightly"])
    assert result.exit_code == 0, result.output
    key = result.output.strip().splitlines()[-1]
    assert key.startswith("pk_")
    with app.app_context():
        row = db.session().scalar(select(ApiKey))
        assert key not in (row.secret_sha256, row.prefix) and len(row.secret_sha256) == 64
        prefix = row.prefix
    client = app.test_client()
    assert client.get(f"{URL}/metadata", headers=auth(key)).status_code == 200
    listing = runner.invoke(args=["proapp", "api-key", "list"]).output
    assert f"pk_{prefix}" in listing and key not in listing and "live" in listing
    assert runner.invoke(args=["proapp", "api-key", "revoke", f"pk_{prefix}"]).exit_code == 0
    resp = client.get(f"{URL}/metadata", headers=auth(key))
    assert resp.status_code == 401 and resp.mimetype == "application/problem+json"
    bad = runner.invoke(args=["proapp", "api-key", "create", "--study", "NOPE", "--name", "x"])
    assert bad.exit_code == 2 and "unknown study NOPE" in bad.output


@pytest.mark.requirement("ACCESS")
def test_missing_wrong_or_other_study_keys(app, key):
    client = app.test_client()
    for headers in ({}, {"Authorization": "Basic abc"}, {"Authorization": "Bearer pk_nope.nope"},
                    {"Authorization": f"Bearer {key}x"}, {"Authorization": "Bearer " + "x" * 500}):
        resp = client.get(f"{URL}/responses", headers=headers)
        assert resp.status_code == 401, headers
        assert resp.headers["WWW-Authenticate"].startswith("Bearer")
        assert resp.get_json()["status"] == 401
    other = make_key(app, "IMATINIB-SSC")
    resp = client.get(f"{URL}/responses", headers=auth(other))
    assert resp.status_code == 404 and resp.get_json()["title"] == "Not Found"


def test_metadata_is_the_data_dictionary(app, key):
    body = app.test_client().get(f"{URL}/metadata", headers=auth(key)).get_json()
    assert body["study"]["code"] == "ADUSE" and [s["code"] for s in body["sites"]] == ["TLS"]
    w1 = next(v for v in body["visits"] if v["code"] == "W1")
    assert w1 == {"code": "W1", "label": {"en": "Week 1", "fr": "Semaine 1"}, "day": 7,
                  "window": {"days_before": 0, "days_after": 3}, "instruments": ["DU_DIARY", "PAIN_VAS"],
                  "forms": ["DU_DIARY", "PAIN_VAS", "PAIN_NRS"]}     # the pain rating asked by voice or SMS
    dlqi = next(i for i in body["instruments"] if i["code"] == "DLQI")
    q1 = dlqi["items"][0]
    assert q1["code"] == "DLQI01" and q1["type"] == "choice" and set(q1["text"]) == {"en", "fr"}
    assert [v["value"] for v in q1["allowed_values"]] == ["3", "2", "1", "0"]
    assert {d["code"] for d in dlqi["derived"]} == {"DLQI_TOTAL", "DLQI_BAND"}
    du = next(i for i in body["instruments"] if i["code"] == "DU_DIARY")
    groups = {g["code"]: g for g in du["groups"]}
    assert groups["DU_ULCER"]["max_repeats"] == 10 and "repeated_by" not in groups["DU_ULCER"]
    assert groups["DU_KNOWN"]["repeated_by"] == "followed_ulcers"          # keyed by the ulcer's number
    new = next(i for i in du["items"] if i["code"] == "DU_NEW")
    assert new["text_when"]["first_entry"]["en"].startswith("Since your questionnaire before the injection")
    assert du["features"] == ["fat_harvest_site"]
    harvest = next(i for i in du["items"] if i["code"] == "DU_HARVEST")
    assert harvest["asked_when_study_enables"] == "fat_harvest_site"
    derived = {d["code"]: d for d in du["derived"]}
    assert derived["DAYS_TO_HEALING"]["group"] == "DU_KNOWN" and "group" not in derived["ACTIVE_ULCER_COUNT"]


@pytest.mark.requirement("EXPORT")
def test_odm_metadata_validates_against_the_official_schema(app, key):
    resp = app.test_client().get(f"{URL}/metadata?format=odm", headers=auth(key))
    doc = validate_odm(resp.data)
    ns = {"o": "http://www.cdisc.org/ns/odm/v1.3"}
    assert len(doc.findall(".//o:StudyEventDef", ns)) == 18
    assert doc.find(".//o:ItemGroupDef[@OID='IG.DU_DIARY.DU_ULCER']", ns).get("Repeating") == "Yes"
    texts = doc.findall(".//o:ItemDef[@OID='I.DLQI.DLQI01']/o:Question/o:TranslatedText", ns)
    assert {t.get("{http://www.w3.org/XML/1998/namespace}lang") for t in texts} == {"en", "fr"}


@pytest.mark.requirement("EXPORT")
def test_following_the_cursor_returns_every_response_once(app, key):
    client = app.test_client()
    complete_diary(app, "ADU-TLS-001")
    complete_diary(app, "ADU-TLS-002", ulcers=0)
    items, cursor = pull_all(client, key, limit=1)
    assert [(i["subject_id"], i["instrument"]["code"]) for i in items] == [
        ("ADU-TLS-001", "DU_DIARY"), ("ADU-TLS-001", "PAIN_VAS"), ("ADU-TLS-002", "DU_DIARY"),
        ("ADU-TLS-002", "PAIN_VAS")]
    assert [i["sequence"] for i in items] == [1, 2, 3, 4]
    # Nothing new: the same cursor comes back, with nothing.
    again = client.get(f"{URL}/responses?cursor={cursor}", headers=auth(key)).get_json()
    assert again == {"data": [], "next_cursor": cursor, "has_more": False}
    complete_diary(app, "ADU-TLS-003")
    new, _ = pull_all(client, key, limit=100, cursor=cursor)
    assert [i["subject_id"] for i in new] == ["ADU-TLS-003", "ADU-TLS-003"]


@pytest.mark.requirement("EXPORT")
def test_a_response_carries_what_the_edc_needs(app, key):
    complete_diary(app, "ADU-TLS-001")
    items = app.test_client().get(f"{URL}/responses", headers=auth(key)).get_json()["data"]
    diary = next(i for i in items if i["instrument"]["code"] == "DU_DIARY")
    assert diary["instrument"] == {"code": "DU_DIARY", "version": "2.3", "mode_wording": None}   # the web page
    assert diary["language"] == "fr" and diary["completed_on_site"] is False
    assert diary["completed_at"].endswith("Z") and diary["visit"] == "W1" and diary["site"] == "TLS"
    assert diary["answers"]["DU_HAND"] == ["R", "L"] and diary["answers"]["DU_FINGER"] == ["2", "3"]
    assert diary["answers"]["DU_NEW"] == "Y" and diary["wording"]["DU_NEW"] == "first_entry"
    assert diary["scores"]["NEW_ULCER_COUNT"] == 2 and diary["scores"]["ACTIVE_ULCER_COUNT"] == 2
    assert diary["group_scores"] == {"DU_ULCER": {"1": {"ULCER_NUMBER": 1, "REPORT_KIND": "new"},
                                                  "2": {"ULCER_NUMBER": 2, "REPORT_KIND": "new"}}}
    pain = next(i for i in items if i["instrument"]["code"] == "PAIN_VAS")
    assert pain["answers"] == {"PAIN_VAS": "35"} and pain["scores"] == {"PAIN": 35}
    assert set(diary["window"]) == {"target_day", "opens_on", "closes_on"}


@pytest.mark.requirement("EXPORT")
def test_csv_has_one_row_per_answer_with_labels(app, key):
    complete_diary(app, "ADU-TLS-001")
    resp = app.test_client().get(f"{URL}/responses?format=csv&labels=fr", headers=auth(key))
    assert resp.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(resp.get_data(as_text=True))))
    answers = [r for r in rows if r["row_kind"] == "answer"]
    assert len(answers) == 1 + 12 + 2 * 4                  # pain; diary: 12 items + 2 ulcers x 4 items
    scores = {(r["instrument"], r["item_code"], r["repeat"]): (r["value"], r["item_label"])
              for r in rows if r["row_kind"] == "score"}
    assert scores[("PAIN_VAS", "PAIN", "0")][0] == "35"
    assert scores[("DU_DIARY", "NEW_ULCER_COUNT", "0")] == ("2", "Nouveaux ulcères (là où aucun ulcère n'était connu)")
    assert scores[("DU_DIARY", "ULCER_NUMBER", "2")][0] == "2" and scores[("DU_DIARY", "REPORT_KIND", "1")][0] == "new"
    assert all(r["answered_at"] == "" and r["value_label"] == "" for r in rows if r["row_kind"] == "score")
    assert {r["sequence"] for r in rows} == {"1", "2"}      # the key's first two responses
    hand = [r for r in rows if r["item_code"] == "DU_HAND"]
    assert [(r["repeat"], r["value"], r["value_label"]) for r in hand] == [("1", "R", "Main droite"),
                                                                            ("2", "L", "Main gauche")]
    assert hand[0]["item_label"] == "Sur quelle main ?"
    new = next(r for r in rows if r["item_code"] == "DU_NEW")
    assert new["item_label"].startswith("Depuis votre questionnaire d'avant l'injection")   # the first entry's, as read


@pytest.mark.requirement("EXPORT")
def test_odm_clinical_data_validates_with_repeat_keys_and_audit_records(app, key):
    complete_diary(app, "ADU-TLS-001")
    complete_diary(app, "ADU-TLS-002", ulcers=0)
    resp = app.test_client().get(f"{URL}/responses?format=odm", headers=auth(key))
    doc = validate_odm(resp.data)
    ns = {"o": "http://www.cdisc.org/ns/odm/v1.3"}
    subjects = doc.findall(".//o:SubjectData", ns)
    assert [s.get("SubjectKey") for s in subjects] == ["ADU-TLS-001", "ADU-TLS-002"]
    forms = subjects[0].findall("o:StudyEventData[@StudyEventOID='SE.W1']/o:FormData", ns)
    assert sorted(f.get("FormOID") for f in forms) == ["F.DU_DIARY", "F.PAIN_VAS"]
    assert {f.get("TransactionType") for f in forms} == {"Insert"}           # first revisions
    assert {i.get("TransactionType") for i in forms[0].iterfind(".//o:ItemData", ns)} == {"Insert"}
    repeats = subjects[0].findall(".//o:ItemGroupData[@ItemGroupOID='IG.DU_DIARY.DU_ULCER']", ns)
    assert [r.get("ItemGroupRepeatKey") for r in repeats] == ["1", "2"]
    numbers = [r.find("o:ItemData[@ItemOID='I.DU_DIARY.ULCER_NUMBER']", ns).get("Value") for r in repeats]
    assert numbers == ["1", "2"]                          # each report's ulcer in the patient's registry
    stamp = forms[0].find("o:AuditRecord/o:DateTimeStamp", ns).text
    assert stamp.endswith("Z")


def test_odm_oids_follow_the_study_file(database_url, instance_dir, tmp_path):
    from pathlib import Path

    from proapp.studies.catalog import DATA_DIR
    from tests.conftest import fresh_app

    text = (Path(DATA_DIR) / "ADUSE.yaml").read_text()
    text = text.replace("\nedc:\n", "\nedc:\n  odm:\n    study_oid: ADUSE_EDC\n    metadata_version_oid: MDV_V3\n"
                        "    oids: {SE.W1: VISIT_WEEK1, F.PAIN_VAS: FORM_PAIN, I.PAIN_VAS.PAIN_VAS: PAIN_SCORE}\n", 1)
    (tmp_path / "ADUSE.yaml").write_text(text)
    app = fresh_app(database_url, STUDIES_DIR=str(tmp_path))
    try:
        key = make_key(app)
        complete_diary(app, "ADU-TLS-001")
        doc = validate_odm(app.test_client().get(f"{URL}/responses?format=odm", headers=auth(key)).data)
        ns = {"o": "http://www.cdisc.org/ns/odm/v1.3"}
        data = doc.find("o:ClinicalData", ns)
        assert (data.get("StudyOID"), data.get("MetaDataVersionOID")) == ("ADUSE_EDC", "MDV_V3")
        assert doc.find(".//o:StudyEventData", ns).get("StudyEventOID") == "VISIT_WEEK1"
        assert doc.find(".//o:FormData[@FormOID='FORM_PAIN']//o:ItemData", ns).get("ItemOID") == "PAIN_SCORE"
        meta = validate_odm(app.test_client().get(f"{URL}/metadata?format=odm", headers=auth(key)).data)
        assert meta.find(".//o:ItemDef[@OID='PAIN_SCORE']", ns) is not None
    finally:
        app.extensions["proapp.engine"].dispose()


@pytest.mark.parametrize("oids, message", [
    ("{F.PAIN_VAS: F.DU_DIARY}", "F.PAIN_VAS and F.DU_DIARY would both be the FormDef F.DU_DIARY"),
    ("{I.PAIN_VAS.PAIN_VAS: SAME, I.DLQI.DLQI01: SAME}", "would both be the ItemDef SAME"),
    ("{SE.W99: VISIT_99}", "SE.W99 is not an OID of this study"),
])
def test_odm_oid_renames_that_would_make_invalid_odm_stop_the_start(database_url, instance_dir, tmp_path, oids,
                                                                     message):
    from pathlib import Path

    from proapp.studies.catalog import DATA_DIR, StudyFileError
    from tests.conftest import make_app

    text = (Path(DATA_DIR) / "ADUSE.yaml").read_text().replace("\nedc:\n", f"\nedc:\n  odm:\n    oids: {oids}\n", 1)
    (tmp_path / "ADUSE.yaml").write_text(text)
    with pytest.raises(StudyFileError) as exc:
        make_app(database_url, STUDIES_DIR=str(tmp_path))
    assert str(exc.value).startswith("study file ADUSE.yaml: edc.odm.oids: ") and message in str(exc.value)


def valid_r4(resource: dict) -> None:
    """Strict FHIR R4 (4.0.1) validation by the SMART on FHIR client's models: types, cardinality, nested resources."""
    from fhirclient.models.fhirelementfactory import FHIRElementFactory

    FHIRElementFactory.instantiate(resource["resourceType"], resource)


@pytest.mark.requirement("EXPORT")
def test_fhir_resources_are_valid(app, key):
    from fhir.resources.R4B.bundle import Bundle
    from fhir.resources.R4B.observation import Observation
    from fhir.resources.R4B.questionnaire import Questionnaire
    from fhir.resources.R4B.questionnaireresponse import QuestionnaireResponse

    complete_diary(app, "ADU-TLS-001")
    client = app.test_client()
    resp = client.get(f"{URL}/responses?format=fhir", headers=auth(key))
    assert resp.mimetype == "application/fhir+json"
    body = resp.get_json()
    Bundle.model_validate(body)                                          # R4B
    valid_r4(body)                                                       # and R4 (models generated from 4.0.1)
    responses = [e for e in body["entry"] if e["resource"]["resourceType"] == "QuestionnaireResponse"]
    assert len(responses) == 2
    uuid5 = r"urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"
    assert all(re.fullmatch(uuid5, e["fullUrl"]) for e in responses)
    diary_entry = next(e for e in responses if "DU_DIARY" in e["resource"]["questionnaire"])
    diary = QuestionnaireResponse.model_validate(diary_entry["resource"])
    ulcers = [i for i in diary.item if i.linkId == "DU_ULCER"]
    assert len(ulcers) == 2 and ulcers[0].item[0].answer[0].valueCoding.code == "R"
    # The derived scores as Observations derived from their response.
    observations = {(o["code"]["coding"][0]["code"], o.get("component", [{}])[0].get("valueInteger")): o
                    for o in (e["resource"] for e in body["entry"]) if o["resourceType"] == "Observation"}
    for o in observations.values():
        Observation.model_validate(o)
    new = observations[("DU_DIARY.NEW_ULCER_COUNT", None)]
    assert new["valueInteger"] == 2 and new["derivedFrom"] == [{"reference": diary_entry["fullUrl"]}]
    assert new["subject"]["identifier"]["value"] == "ADU-TLS-001" and new["status"] == "final"
    assert observations[("DU_DIARY.ULCER_NUMBER", 2)]["valueInteger"] == 2
    assert observations[("DU_DIARY.REPORT_KIND", 1)]["valueString"] == "new"
    assert observations[("PAIN_VAS.PAIN", None)]["valueInteger"] == 35
    # The same response and revision keep their fullUrl from one pull to the next.
    again = client.get(f"{URL}/responses?format=fhir", headers=auth(key)).get_json()
    assert [e.get("fullUrl") for e in again["entry"]] == [e.get("fullUrl") for e in body["entry"]]
    for code, version in (("DLQI", "1.0"), ("HAQ", "1.1"), ("PAIN_VAS", "1.0"), ("DU_DIARY", "2.3"),
                          ("DU_BASELINE", "1.0")):
        q = client.get(f"{URL}/questionnaires/{code}", headers=auth(key))
        assert q.status_code == 200, code
        parsed = Questionnaire.model_validate(q.get_json())            # the version the study uses
        valid_r4(q.get_json())
        assert parsed.version == version and f"/Questionnaire/{code}" in parsed.url
        # The canonical URL resolves, to the same Questionnaire.
        path = parsed.url.removeprefix("https://pro.example.test")
        assert client.get(path, headers=auth(key)).get_json() == q.get_json(), path
    assert diary.questionnaire == "https://pro.example.test/api/v1/fhir/Questionnaire/DU_DIARY|2.3"
    pain = next(e["resource"] for e in responses if "PAIN_VAS" in e["resource"]["questionnaire"])
    assert pain["questionnaire"].endswith("/Questionnaire/PAIN_VAS-digital-ulcers-24h|1.0")   # ADUSE's wording
    older = client.get("/api/v1/fhir/Questionnaire/DU_DIARY?version=1.0", headers=auth(key)).get_json()
    assert older["version"] == "1.0" and any(i["linkId"] == "DU_PAIN" for i in older["item"])
    for path in ("/api/v1/fhir/Questionnaire/TOLERANCE", "/api/v1/fhir/Questionnaire/DLQI?version=9",
                 "/api/v1/fhir/Questionnaire/PAIN_VAS-nope"):
        assert client.get(path, headers=auth(key)).status_code == 404, path       # not this study's, no such
    assert client.get("/api/v1/fhir/Questionnaire/DLQI").status_code == 401
    assert diary.item[0].text.startswith("Depuis votre questionnaire d'avant l'injection")
    assert client.get(f"{URL}/questionnaires/NOPE", headers=auth(key)).status_code == 404


def test_accept_header_and_gzip(app, key):
    complete_diary(app, "ADU-TLS-001")
    client = app.test_client()
    assert client.get(f"{URL}/responses", headers={**auth(key), "Accept": "text/csv"}).mimetype == "text/csv"
    odm_type = "application/vnd.cdisc.odm+xml"
    assert client.get(f"{URL}/responses", headers={**auth(key), "Accept": odm_type}).mimetype == odm_type
    assert client.get(f"{URL}/responses?format=odm", headers=auth(key)).mimetype == "application/xml"
    plain = client.get(f"{URL}/responses", headers=auth(key)).data
    zipped = client.get(f"{URL}/responses", headers={**auth(key), "Accept-Encoding": "gzip"})
    assert zipped.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(zipped.data) == plain


def test_bad_parameters_get_a_problem_document_and_never_a_500(app, key):
    client = app.test_client()
    complete_diary(app, "ADU-TLS-001")
    good = client.get(f"{URL}/responses?limit=1", headers=auth(key)).get_json()["next_cursor"]
    tampered = good[:-2] + ("AA" if not good.endswith("AA") else "BB")
    for query in ("limit=0", "limit=10001", "limit=abc", "limit=-1", "format=xls", "cursor=abc", f"cursor={tampered}",
                  "cursor=" + "A" * 300, "labels=de", "colour=blue", "cursor=%00"):
        resp = client.get(f"{URL}/responses?{query}", headers=auth(key))
        assert resp.status_code == 400, query
        assert resp.mimetype == "application/problem+json"
        problem = resp.get_json()
        assert set(problem) >= {"type", "title", "status", "detail"} and "Traceback" not in problem["detail"]
    assert client.get("/api/v1/nothing/here", headers=auth(key)).mimetype == "application/problem+json"
    refused = client.delete(f"{URL}/responses", headers=auth(key))
    assert refused.status_code == 405 and refused.mimetype == "application/problem+json"
    assert set(refused.headers["Allow"].split(", ")) >= {"GET", "HEAD"}


def test_acknowledgements_and_the_pull_log(app, key):
    client = app.test_client()
    complete_diary(app, "ADU-TLS-001")
    items = client.get(f"{URL}/responses", headers=auth(key)).get_json()["data"]
    ids = [i["id"] for i in items]
    resp = client.post(f"{URL}/acknowledgements", json={"response_ids": [*ids, 999999]}, headers=auth(key))
    assert resp.status_code == 200
    assert resp.get_json() == {"acknowledged": sorted(ids), "already_acknowledged": [], "unknown": [999999]}
    again = client.post(f"{URL}/acknowledgements", json={"response_ids": ids[:1]}, headers=auth(key)).get_json()
    assert again == {"acknowledged": [], "already_acknowledged": ids[:1], "unknown": []}
    for body in ({}, {"response_ids": []}, {"response_ids": ["1"]}, {"response_ids": [True]}, [1, 2], None):
        bad = client.post(f"{URL}/acknowledgements", json=body, headers=auth(key))
        assert bad.status_code == 400, body
    other = make_key(app, "IMATINIB-SSC")
    resp = client.post("/api/v1/studies/IMATINIB-SSC/acknowledgements", json={"response_ids": ids}, headers=auth(other))
    assert resp.get_json()["unknown"] == ids                 # another study's responses are not its to acknowledge
    with app.app_context():
        s = db.session()
        assert s.query(Acknowledgement).count() == 2
        pulls = s.execute(select(ApiPull.endpoint, ApiPull.status, ApiPull.items).order_by(ApiPull.id)).all()
        assert pulls[0] == ("api.responses", 200, 2)
        assert ("api.acknowledgements", 400, None) in pulls
        assert s.scalar(select(ApiKey.last_used_at).where(ApiKey.prefix == key[3:11])) is not None


def test_the_documented_ten_thousand_acknowledgements_fit_and_whole_floats_are_ids(app, key):
    client = app.test_client()
    complete_diary(app, "ADU-TLS-001")
    ids = [i["id"] for i in client.get(f"{URL}/responses", headers=auth(key)).get_json()["data"]]
    # 10,000 items at their widest, as a JSON library with spaces writes them: well over the 64 KiB pages take.
    widest = [{"id": 2**31 - 1 - n, "revision": 2**31 - 1} for n in range(9_998)]
    body = json.dumps({"responses": [{"id": float(ids[0]), "revision": 0.0}, {"id": ids[1], "revision": 0},
                                     *widest]})
    assert len(body) > 400_000
    resp = client.post(f"{URL}/acknowledgements", data=body, content_type="application/json", headers=auth(key))
    assert resp.status_code == 200, resp.get_data(as_text=True)[:300]
    answer = resp.get_json()
    assert answer["acknowledged"] == [{"id": i, "revision": 0} for i in sorted(ids)]
    assert len(answer["unknown"]) == 9_998
    huge = client.post(f"{URL}/acknowledgements", data=" " * (800 * 1024) + "{}", content_type="application/json",
                       headers=auth(key))
    assert huge.status_code == 413 and huge.mimetype == "application/problem+json"
    spec = client.get("/api/v1/openapi.json").get_json()
    assert "413" in spec["paths"]["/api/v1/studies/{study}/acknowledgements"]["post"]["responses"]
    for bad in (1.5, "1", True):
        refused = client.post(f"{URL}/acknowledgements", json={"responses": [{"id": ids[0], "revision": bad}]},
                              headers=auth(key))
        assert refused.status_code == 400, bad


@pytest.mark.requirement("ACCESS")
def test_a_site_restricted_key_sees_only_its_sites(app):
    from tests.questionnaire.helpers import enrol_with_open_window

    key = make_key(app, "IMATINIB-SSC", sites=("PSL",))
    enrol_with_open_window(app, "IMATINIB-SSC", "M1", subject="IMA-TLS-001")
    resp = app.test_client().get("/api/v1/studies/IMATINIB-SSC/responses", headers=auth(key))
    assert resp.status_code == 200 and resp.get_json()["data"] == []


def test_the_openapi_document_describes_every_api_route(app):
    spec = app.test_client().get("/api/v1/openapi.json").get_json()
    assert spec["openapi"] == "3.1.0"
    documented = set(spec["paths"])
    routes = {rule.rule.replace("<", "{").replace(">", "}") for rule in app.url_map.iter_rules()
              if rule.endpoint.startswith("api.") and rule.endpoint != "api.openapi"}
    assert routes == documented


def test_odm_xml_is_well_formed_even_with_markup_in_values(app, key):
    complete_diary(app, "ADU-TLS-001")
    body = app.test_client().get(f"{URL}/responses?format=odm", headers=auth(key)).data
    etree.fromstring(body)
    assert json.loads(app.test_client().get(f"{URL}/responses", headers=auth(key)).data)


def test_the_patient_page_shows_what_the_edc_has(app, key):
    from proapp.accounts.models import Role
    from proapp.accounts.staff import create_user
    from tests.dashboard.conftest import PASSWORD, Staff

    with app.app_context():
        s = db.session()
        create_user(s, email="nurse@chu.test", password=PASSWORD, role=Role.COORDINATOR, now=datetime.now(UTC),
                    study_code="ADUSE", language="en")
        s.commit()
    pid = complete_diary(app, "ADU-TLS-001")
    client = app.test_client()
    items = client.get(f"{URL}/responses", headers=auth(key)).get_json()["data"]
    nurse = Staff(app, None)
    nurse.login("nurse@chu.test", PASSWORD, expect=303)

    def edc_cell():
        page = nurse.get(f"/staff/patients/{pid}").get_data(as_text=True)
        row = re.search(r'<tr class="state-completed">.*?</tr>', page, re.S).group(0)
        return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", row))

    assert "not yet" in edc_cell() and "received" not in edc_cell()
    client.post(f"{URL}/acknowledgements", json={"response_ids": [items[0]["id"]]}, headers=auth(key))
    assert "not yet" in edc_cell()                          # one of the two forms only
    client.post(f"{URL}/acknowledgements", json={"response_ids": [items[1]["id"]]}, headers=auth(key))
    assert "received" in edc_cell() and "not yet" not in edc_cell()


def test_a_cursor_is_bound_to_its_study_and_sites(app):
    from tests.export.conftest import complete_diary

    complete_diary(app, "ADU-TLS-001", ulcers=0)
    whole, one_site, other_study = make_key(app), make_key(app, sites=("TLS",)), make_key(app, "IMATINIB-SSC")
    client = app.test_client()
    cursor = client.get(f"{URL}/responses?limit=1", headers=auth(whole)).get_json()["next_cursor"]
    assert client.get(f"{URL}/responses", query_string={"cursor": cursor}, headers=auth(whole)).status_code == 200
    for key, url in ((one_site, URL), (other_study, "/api/v1/studies/IMATINIB-SSC")):
        refused = client.get(f"{url}/responses", query_string={"cursor": cursor}, headers=auth(key))
        assert refused.status_code == 400 and refused.mimetype == "application/problem+json"
        assert "another study or other sites" in refused.get_json()["detail"]


@pytest.mark.requirement("EXPORT")
def test_every_export_says_what_the_patient_read(app, key):
    """ADUSE asks the pain scale about the finger ulcers, and the HAQ's stem opens each activity: the metadata, ODM,
    FHIR and CSV say exactly that, not the instrument's generic wording."""
    complete_diary(app, "ADU-TLS-001")
    client = app.test_client()
    ulcers_en = "How much pain have your finger ulcers caused you over the last 24 hours?"
    ulcers_fr = "Quelle douleur vos ulcères des doigts vous ont-ils causée au cours des dernières 24 heures ?"
    generic = "How much pain have you had over the last 24 hours?"
    meta = client.get(f"{URL}/metadata", headers=auth(key)).get_json()
    pain = next(i for i in meta["instruments"] if i["code"] == "PAIN_VAS")
    assert pain["items"][0]["text"] == {"en": ulcers_en, "fr": ulcers_fr} and pain["variant"] == "digital_ulcers_24h"
    haq = next(i for i in meta["instruments"] if i["code"] == "HAQ")
    dress = next(i for i in haq["items"] if i["code"] == "HAQ_DRESS1")
    assert dress["text"]["en"].startswith("Are you able to: Dress yourself")
    assert dress["section_title"]["fr"] == "S'habiller et se préparer" and "PAST WEEK" in haq["instructions"]["en"]
    odm = client.get(f"{URL}/metadata?format=odm", headers=auth(key)).get_data(as_text=True)
    assert ulcers_en in odm and generic not in odm and "Êtes-vous capable de : Vous habiller" in odm
    questionnaire = client.get(f"{URL}/questionnaires/PAIN_VAS", headers=auth(key)).get_json()
    assert questionnaire["item"][0]["text"] == ulcers_en
    fhir_bundle = client.get(f"{URL}/responses?format=fhir", headers=auth(key)).get_json()
    texts = [i["text"] for e in fhir_bundle["entry"] for i in e["resource"].get("item", [])
             if i.get("linkId") == "PAIN_VAS"]
    assert texts == [ulcers_fr]                                           # the patient answered in French
    rows = list(csv.DictReader(io.StringIO(client.get(f"{URL}/responses?format=csv&labels=en",
                                                      headers=auth(key)).get_data(as_text=True))))
    assert {r["item_label"] for r in rows if r["item_code"] == "PAIN_VAS"} == {ulcers_en}


def test_the_metadata_version_oid_changes_with_the_metadata_only(app):
    from proapp.export.formats.odm import Oids
    from proapp.studies.schema import SiteDef

    study = app.extensions["proapp.studies"].get("ADUSE")
    more_sites = study.model_copy(update={"version": "9", "sites": [*study.sites, SiteDef(
        code="BDX", name="CHU de Bordeaux", phone="+33199000102")]})
    other_pain = study.model_copy(update={"instruments": {**study.instruments, "PAIN_VAS": study.instruments[
        "PAIN_VAS"].model_copy(update={"variant": "last_24h"})}})
    assert Oids(more_sites).mdv == Oids(study).mdv                # a site and a version bump: same metadata
    assert Oids(other_pain).mdv != Oids(study).mdv                # another wording of the pain scale: new metadata
    assert Oids(study).mdv.startswith("MDV.ADUSE.")


def test_an_error_inside_a_stream_is_a_problem_or_a_cut_and_the_log_says_500(app, key, monkeypatch):
    """Before the first block went, a 500 problem document (never gunicorn's HTML page); after it, the connection
    is cut (the body is visibly incomplete), and either way the pull log says 500, not 200."""
    from proapp.export import routes
    from proapp.export.formats import json_format

    complete_diary(app, "ADU-TLS-001")
    client = app.test_client()

    def broken(*_args, **_kw):
        raise RuntimeError("a format bug")

    monkeypatch.setattr(json_format, "json_item", broken)
    resp = client.get(f"{URL}/responses", headers=auth(key))
    assert resp.status_code == 500 and resp.mimetype == "application/problem+json"
    assert resp.get_json()["type"].endswith("stream-failed")
    monkeypatch.setattr(routes, "STREAM_BLOCK", 1)            # the first block goes before the error
    with pytest.raises(RuntimeError):
        client.get(f"{URL}/responses", headers=auth(key)).get_data()
    with app.app_context():
        statuses = [p.status for p in db.session().scalars(select(ApiPull).order_by(ApiPull.id))]
    assert statuses == [500, 500]


def test_sequence_numbers_count_the_keys_own_responses_only(app):
    """Sequence numbers tell a key nothing of other studies' or other sites' volume: they count its own."""
    import base64
    import hashlib
    import hmac
    from datetime import timedelta

    from proapp.export import feed
    from tests.dashboard.helpers import complete, enrol_at

    when = datetime.now(UTC) - timedelta(days=40)

    def imatinib(subject: str, site: str) -> None:
        complete(app, enrol_at(app, subject, when, site=site), "M1", {})

    complete_diary(app, "ADU-TLS-001")
    imatinib("IMA-PSL-001", "PSL")
    imatinib("IMA-BSA-001", "BSA")
    complete_diary(app, "ADU-TLS-002", ulcers=0)
    imatinib("IMA-PSL-002", "PSL")
    client = app.test_client()
    aduse, psl = make_key(app), make_key(app, "IMATINIB-SSC", ("PSL",))
    items, _ = pull_all(client, aduse, limit=1)
    assert [i["sequence"] for i in items] == [1, 2, 3, 4]          # 10 other-study responses came between

    def pull(key: str, cursor: str | None = None):
        query = "?limit=2" + (f"&cursor={cursor}" if cursor else "")
        return client.get(f"/api/v1/studies/IMATINIB-SSC/responses{query}", headers=auth(key)).get_json()

    first = pull(psl)
    assert [i["sequence"] for i in first["data"]] == [1, 2]
    second = pull(psl, first["next_cursor"])
    assert [(i["subject_id"], i["sequence"]) for i in second["data"]] == [("IMA-PSL-001", 3), ("IMA-PSL-002", 4)]
    odm = client.get(f"/api/v1/studies/IMATINIB-SSC/responses?format=odm&limit=2&cursor={first['next_cursor']}",
                     headers=auth(psl)).data
    prefix = psl.removeprefix("pk_").split(".")[0]
    # Positions, not feed numbers; the key in the OID (another key's page 2-4 is another file); the page before it.
    base = f"proapp.IMATINIB-SSC.{prefix}"
    assert f'FileOID="{base}.upto-4" PriorFileOID="{base}.upto-2"'.encode() in odm
    every_site = make_key(app, "IMATINIB-SSC")
    first_all = pull(every_site)
    odm_all = client.get(f"/api/v1/studies/IMATINIB-SSC/responses?format=odm&limit=2&cursor="
                         f"{first_all['next_cursor']}", headers=auth(every_site)).data
    oid = etree.fromstring(odm_all).get("FileOID")
    assert oid.endswith(".upto-4") and oid != etree.fromstring(odm).get("FileOID")
    # A cursor of the first form (no position) still works: the position is counted once.
    with app.app_context():
        from proapp.export.models import ApiKey as Key

        row = db.session().scalar(select(Key).where(Key.prefix == psl[3:11]))
        scope = feed.cursor_scope(row.study_id, row.site_ids)
        secret = app.config["SECRET_KEY"]
        _seq, position = feed.decode_cursor(first["next_cursor"], secret, scope)
        assert position == 2
        body = json.dumps({"v": 1, "s": _seq, "k": scope}, separators=(",", ":")).encode()
        old = base64.urlsafe_b64encode(body + hmac.new(secret.encode(), body, hashlib.sha256).digest()[:12])
    again = pull(psl, old.decode().rstrip("="))
    assert [i["sequence"] for i in again["data"]] == [3, 4]
