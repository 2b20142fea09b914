"""A response answered in two languages (FR | EN pressed midway) records the language of each answer, and every
export format carries it (issue 30)."""

from __future__ import annotations

import csv
import io

from fhir.resources.R4B.bundle import Bundle
from sqlalchemy import select

from proapp import db
from proapp.questionnaire.models import Answer
from tests.export.conftest import auth, csrf
from tests.export.odm import validate_odm
from tests.questionnaire.helpers import Patient, enrol_with_open_window

URL = "/api/v1/studies/ADUSE/responses"
NS = {"odm": "http://www.cdisc.org/ns/odm/v1.3"}


def test_each_answer_keeps_the_language_it_was_given_in_and_every_format_says_it(app, key):
    _pid, token = enrol_with_open_window(app, "ADUSE", "W1", subject="ADU-TLS-777", language="fr")
    client = app.test_client()
    p = Patient(client, token)
    p.open()
    p.start()
    p.answer(DU_NEW="N")                                           # in French
    switched = client.post("/q/language", data={"csrf_token": csrf(p.page.text), "lang": "en", "next": p.path})
    assert switched.status_code == 303
    p.get(switched.headers["Location"])
    assert 'lang="en"' in p.page.text                               # the rest of the diary in English
    p.answer(DU_INFECT="N", DU_ANTIBIO="N", DU_ISCHAEMIA="N", DU_NECROSIS="N", DU_BONE="N", DU_HOSPITAL="N",
             DU_SURGERY="N", DU_AMPUTATION="N", DU_INJECTED="N", DU_HARVEST="N")
    p.answer(PAIN_VAS="20")
    assert p.path == "/q/review"
    p.submit()
    with app.app_context():
        langs = dict(db.session().execute(select(Answer.item_code, Answer.language)).all())
    assert langs["DU_NEW"] == "fr" and langs["DU_INFECT"] == "en" and langs["PAIN_VAS"] == "en"

    data = client.get(f"{URL}?format=json", headers=auth(key)).get_json()["data"]
    diary = next(r for r in data if r["instrument"]["code"] == "DU_DIARY")
    assert diary["languages"] == ["fr", "en"] and diary["language"] == "en"
    assert diary["answer_languages"]["DU_NEW"] == "fr" and diary["answer_languages"]["DU_HARVEST"] == "en"

    rows = list(csv.DictReader(io.StringIO(client.get(f"{URL}?format=csv", headers=auth(key)).get_data(as_text=True))))
    by_item = {r["item_code"]: r for r in rows if r["row_kind"] == "answer"}
    assert (by_item["DU_NEW"]["answer_language"], by_item["DU_INFECT"]["answer_language"]) == ("fr", "en")
    assert all(r["answer_language"] == "" for r in rows if r["row_kind"] == "score")

    bundle = client.get(f"{URL}?format=fhir", headers=auth(key)).get_json()
    Bundle.model_validate(bundle)
    qr = next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "QuestionnaireResponse"
              and "DU_NEW" in {i["linkId"] for i in e["resource"]["item"]})
    assert qr["language"] == "en"
    new = next(i for i in qr["item"] if i["linkId"] == "DU_NEW")
    assert new["extension"] == [{"url": "http://hl7.org/fhir/StructureDefinition/language", "valueCode": "fr"}]
    assert new["text"].startswith("Depuis votre questionnaire d'avant l'injection")
    assert new["answer"][0]["valueCoding"]["display"] == "Non"
    assert "extension" not in next(i for i in qr["item"] if i["linkId"] == "DU_INFECT")

    doc = validate_odm(client.get(f"{URL}?format=odm", headers=auth(key)).data)
    sources = [s.text for s in doc.iterfind(".//odm:SourceID", NS)]
    assert any("DU_DIARY" in s and ", fr+en" in s for s in sources)
