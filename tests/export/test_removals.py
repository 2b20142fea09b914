"""A correction that removes a value says so in every format: the patient said an ulcer had healed (days to
healing 5), the team corrects "closed" to "not yet". The closing day is now meaningless and days to healing no
longer exists: JSON lists both as removed (null), CSV has removal rows, ODM a ``Remove``, FHIR the same Observation
(stable id) ``entered-in-error``, REDCap blank values that REDCap's ``overwrite`` import applies."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

from fhir.resources.R4B.bundle import Bundle
from lxml import etree
from sqlalchemy import select

from proapp import db
from proapp.models import Occurrence, Response
from proapp.questionnaire.corrections import Source, correct_answer
from tests.export.conftest import auth, make_key
from tests.export.odm import validate_odm
from tests.export.test_api import valid_r4
from tests.questionnaire.helpers import Patient
from tests.questionnaire.test_flow import answer_dlqi, answer_haq
from tests.questionnaire.test_ulcer_flow import DLQI_NONE, enrol, link, nurse, reg_app  # noqa: F401  (fixture)

URL = "/api/v1/studies/ADUSE"
NS = {"odm": "http://www.cdisc.org/ns/odm/v1.3"}


def _w1_with_a_healed_ulcer(app) -> int:
    """The team notes the treated ulcer (1), the patient confirms it at W0 and adds one (2); at W1 ulcer 2 is
    closed since 7 March, 5 days after the injection. Returns the patient id."""
    pid = enrol(app)
    staff = nurse(app)
    assert staff.post(f"/staff/patients/{pid}/ulcers", {"hand": "L", "finger": "2", "site": "TIP",
                                                       "noted_on": "2026-03-01", "treated": "Y"}).status_code == 303
    p = Patient(app.test_client(), link(app, pid, "W0"))
    p.open()
    p.start()
    p.answer(DU_CONFIRM_OK="Y")
    p.answer(DU_BL_ANY="Y", DU_HAND="R", DU_FINGER="3", DU_SITE="TIP")
    p.answer(more="N", PAIN_VAS="60")
    answer_dlqi(p, DLQI_NONE)
    answer_haq(p, activity="0")
    assert p.path == "/q/review", p.path
    p.submit()
    app.extensions["proapp.clock"].set(datetime(2026, 3, 9, 9, 0, tzinfo=UTC))
    p = Patient(app.test_client(), link(app, pid, "W1"))
    p.open()
    p.start()
    p.answer(DU_KNOWN_CLOSED="N")
    p.answer(DU_KNOWN_CLOSED="Y", DU_KNOWN_CLOSED_ON="2026-03-07")
    p.diary(pain="30", today="2026-03-08")
    assert p.path == "/q/review", p.path
    p.submit()
    return pid


def _correct(app, pid: int, item: str, repeat: int, value: str) -> None:
    with app.app_context():
        s = db.session()
        r = s.scalar(select(Response).join(Occurrence).where(Occurrence.patient_id == pid,
                                                             Occurrence.visit_code == "W1",
                                                             Response.instrument_code == "DU_DIARY"))
        correct_answer(s, app.extensions["proapp.instruments"], r, item_code=item, repeat=repeat, value=value,
                       reason="The nurse saw it open at the visit", actor="tls@chu.test", patient_id=pid,
                       now=app.extensions["proapp.clock"].now(),
                       signature={"meaning": "I confirm this correction", "method": "password"},
                       source=Source("other"))
        s.commit()


def _pull(client, key: str, fmt: str):
    return client.get(f"{URL}/responses?format={fmt}&limit=1000", headers=auth(key))


def _diary(page: list[dict]) -> dict:
    return next(r for r in page if r["instrument"]["code"] == "DU_DIARY" and r["visit"] == "W1")


class RedcapTable:
    """What a REDCap project holds after record imports: a row per (record, event, repeating form, instance);
    ``normal`` ignores a blank value, ``overwrite`` blanks the field (REDCap's two overwrite behaviours)."""

    def __init__(self):
        self.rows: dict[tuple[str, str, str, str], dict[str, str]] = {}

    def load(self, records: list[dict], behaviour: str) -> None:
        keys = [(r["record_id"], r["redcap_event_name"], r["redcap_repeat_instrument"],
                 r["redcap_repeat_instance"]) for r in records]
        assert len(keys) == len(set(keys)), "REDCap refuses a key twice in one import"
        for key, r in zip(keys, records, strict=True):
            assert all(isinstance(v, str) for v in r.values()), r          # REDCap's JSON: strings only
            row = self.rows.setdefault(key, {})
            for name, value in r.items():
                if value != "" or behaviour == "overwrite":
                    row[name] = value


def test_a_correction_that_removes_a_value_says_so_in_every_format(reg_app):  # noqa: F811
    app = reg_app
    pid = _w1_with_a_healed_ulcer(app)
    key = make_key(app)
    client = app.test_client()
    before = {fmt: _pull(client, key, fmt) for fmt in ("json", "fhir", "redcap")}
    diary = _diary(before["json"].get_json()["data"])
    assert diary["group_scores"]["DU_KNOWN"] == {"2": {"DAYS_TO_HEALING": 5}} and diary["removed"] == []
    obs_before = {o["resource"]["id"]: o["resource"] for o in before["fhir"].get_json()["entry"]
                  if o["resource"]["resourceType"] == "Observation"}
    healing_id = next(i for i, o in obs_before.items() if o["code"]["coding"][0]["code"] == "DU_DIARY.DAYS_TO_HEALING")
    edc = RedcapTable()
    edc.load(before["redcap"].get_json(), "normal")

    _correct(app, pid, "DU_KNOWN_CLOSED", 2, "N")

    # JSON: the closing day is gone from the answers, days to healing null, both listed as removed.
    diary = _diary(_pull(client, key, "json").get_json()["data"])
    assert diary["revision"] == 1
    assert diary["answers"]["DU_KNOWN_CLOSED"] == {"1": "N", "2": "N"} and "DU_KNOWN_CLOSED_ON" not in diary["answers"]
    assert diary["group_scores"]["DU_KNOWN"] == {"2": {"DAYS_TO_HEALING": None}}
    assert diary["removed"] == [{"kind": "answer", "code": "DU_KNOWN_CLOSED_ON", "repeat": 2},
                                {"kind": "score", "code": "DAYS_TO_HEALING", "repeat": 2}]
    assert diary["scores"]["HEALED_ULCER_COUNT"] == 0 and diary["scores"]["ACTIVE_ULCER_COUNT"] == 2

    # CSV: no answer row for the closing day; a removal row for each.
    rows = list(csv.DictReader(io.StringIO(_pull(client, key, "csv").get_data(as_text=True))))
    w1 = [r for r in rows if r["instrument"] == "DU_DIARY" and r["visit"] == "W1"]
    assert not [r for r in w1 if r["item_code"] == "DU_KNOWN_CLOSED_ON" and r["row_kind"] == "answer"]
    assert {(r["row_kind"], r["item_code"], r["repeat"], r["value"]) for r in w1 if r["row_kind"].startswith("removed")
            } == {("removed_answer", "DU_KNOWN_CLOSED_ON", "2", ""), ("removed_score", "DAYS_TO_HEALING", "2", "")}

    # ODM: valid against the 1.3.2 schema, each removal a Remove in the ulcer's repeat; no empty Value anywhere.
    body = _pull(client, key, "odm").data
    doc = validate_odm(body)
    assert b'Value=""' not in body
    known = doc.xpath("//odm:FormData[@FormOID='F.DU_DIARY']/odm:ItemGroupData[@ItemGroupOID='IG.DU_DIARY.DU_KNOWN'"
                      " and @ItemGroupRepeatKey='2']/odm:ItemData", namespaces=NS)
    assert {(i.get("ItemOID"), i.get("TransactionType"), i.get("Value")) for i in known} == {
        ("I.DU_DIARY.DU_KNOWN_CLOSED", "Update", "N"), ("I.DU_DIARY.DU_KNOWN_CLOSED_ON", "Remove", None),
        ("I.DU_DIARY.DAYS_TO_HEALING", "Remove", None)}

    # FHIR: valid R4B and R4; the same Observation id, now entered-in-error, without a value; no empty string.
    bundle = _pull(client, key, "fhir").get_json()
    Bundle.model_validate(bundle)
    valid_r4(bundle)
    assert '""' not in _pull(client, key, "fhir").get_data(as_text=True)
    obs = {o["resource"]["id"]: o["resource"] for o in bundle["entry"]
           if o["resource"]["resourceType"] == "Observation"}
    assert obs[healing_id]["status"] == "entered-in-error" and "valueInteger" not in obs[healing_id]
    assert obs[healing_id]["identifier"] == obs_before[healing_id]["identifier"]
    assert {i for i, o in obs.items() if o["status"] == "amended"} == set(obs_before) - {healing_id} - {
        i for i, o in obs_before.items() if not o["code"]["coding"][0]["code"].startswith("DU_DIARY.")}

    # REDCap: the removed values come blank; `overwrite` clears them, `normal` would have kept 5 days.
    after = _pull(client, key, "redcap").get_json()
    ulcer = next(r for r in after if r["redcap_repeat_instrument"] == "du_known" and r["redcap_repeat_instance"] == "2")
    assert (ulcer["du_known_closed"], ulcer["du_known_closed_on"], ulcer["days_to_healing"]) == ("0", "", "")
    kept, cleared = RedcapTable(), RedcapTable()
    for table, how in ((kept, "normal"), (cleared, "overwrite")):
        table.rows = {k: dict(v) for k, v in edc.rows.items()}
        table.load(after, how)
    where = ("ADU-TLS-201", "w1_arm_1", "du_known", "2")
    assert kept.rows[where]["days_to_healing"] == "5"                        # why corrections need overwrite
    assert cleared.rows[where]["days_to_healing"] == "" and cleared.rows[where]["du_known_closed_on"] == ""
    assert cleared.rows[("ADU-TLS-201", "w1_arm_1", "", "")]["du_diary_revision"] == "1"


def test_a_diary_without_a_new_ulcer_has_no_empty_string(reg_app):  # noqa: F811
    """FHIR forbids empty strings (and ODM an empty Value): no new ulcer means no "fingers affected" value."""
    app = reg_app
    _w1_with_a_healed_ulcer(app)
    key = make_key(app)
    client = app.test_client()
    fhir = _pull(client, key, "fhir")
    Bundle.model_validate(fhir.get_json())
    assert '""' not in fhir.get_data(as_text=True)
    odm = _pull(client, key, "odm").data
    validate_odm(odm)
    fingers = etree.fromstring(odm).xpath("//odm:ItemData[@ItemOID='I.DU_DIARY.FINGERS_AFFECTED']", namespaces=NS)
    assert [(f.get("Value"), f.get("IsNull")) for f in fingers] == [(None, "Yes")]
    diary = _diary(_pull(client, key, "json").get_json()["data"])
    assert diary["scores"]["FINGERS_AFFECTED"] is None
