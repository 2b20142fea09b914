"""REDCap in one step: the project (data dictionary, events, mapping, repeating instruments) and the records, checked
against the rules REDCap applies on import, on both shipped studies."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from proapp.export.data import Exported
from proapp.export.formats.redcap import DICTIONARY_COLUMNS, Project
from proapp.instruments import default_registry
from proapp.studies.catalog import DATA_DIR, DEMO_CONTACTS, StudyFileError, load_studies
from tests.export.conftest import auth, complete_diary, make_key

FIELD_TYPES = {"text", "notes", "radio", "dropdown", "checkbox", "yesno", "truefalse", "descriptive", "slider",
               "calc", "file", "sql"}
VALIDATIONS = {"", "integer", "number", "date_ymd", "datetime_seconds_ymd"}
VARIABLE = re.compile(r"^[a-z][a-z0-9_]{0,25}$")
CHOICES = re.compile(r"^[A-Za-z0-9_]+, [^|]+( \| [A-Za-z0-9_]+, [^|]+)*$")
SPECIAL = {"record_id", "redcap_event_name", "redcap_repeat_instrument", "redcap_repeat_instance"}


def dictionary(client, key: str, study: str, labels: str = "en") -> list[dict[str, str]]:
    resp = client.get(f"/api/v1/studies/{study}/metadata?format=redcap&labels={labels}", headers=auth(key))
    assert resp.status_code == 200 and resp.mimetype == "text/csv", resp.get_data(as_text=True)[:300]
    rows = list(csv.reader(io.StringIO(resp.get_data(as_text=True))))
    assert tuple(rows[0]) == DICTIONARY_COLUMNS             # REDCap's columns, in REDCap's order
    return [dict(zip(DICTIONARY_COLUMNS, r, strict=True)) for r in rows[1:]]


def part(client, key: str, study: str, name: str) -> list[dict]:
    resp = client.get(f"/api/v1/studies/{study}/metadata?format=redcap&part={name}", headers=auth(key))
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return resp.get_json()


@pytest.mark.parametrize("study", ["ADUSE", "IMATINIB-SSC"])
def test_the_project_follows_redcaps_rules(app, study):
    client, key = app.test_client(), make_key(app, study)
    rows = dictionary(client, key, study)
    names = [r["Variable / Field Name"] for r in rows]
    assert names[0] == "record_id" and rows[0]["Form Name"] == "participant"
    assert len(names) == len(set(names)), [n for n in names if names.count(n) > 1]
    forms = list(dict.fromkeys(r["Form Name"] for r in rows))
    for r in rows:
        name, kind = r["Variable / Field Name"], r["Field Type"]
        assert VARIABLE.match(name) and "__" not in name and not name.endswith("_"), name
        assert re.match(r"^[a-z][a-z0-9_]*$", r["Form Name"])
        assert kind in FIELD_TYPES and kind != "calc", (name, kind)
        assert r["Text Validation Type OR Show Slider Number"] in VALIDATIONS | ({"number"} if kind == "slider"
                                                                                  else set())
        if kind in ("radio", "checkbox", "dropdown"):
            assert CHOICES.match(r["Choices, Calculations, OR Slider Labels"]), (name, r["Choices, Calculations, "
                                                                                          "OR Slider Labels"])
        if kind == "slider":
            assert len(r["Choices, Calculations, OR Slider Labels"].split("|")) == 3     # left | middle | right
        for ref in re.findall(r"\[([a-z0-9_]+)(?:\(\d+\))?\]", r["Branching Logic (Show field only if...)"]):
            assert ref in names[:names.index(name)], (name, ref)     # REDCap needs a field defined before
        if kind not in ("descriptive",) and name != "record_id":
            assert r["Field Annotation"] == "@READONLY", name        # the patient's answers, proapp's scores
        assert not any(n == f"{f}_complete" for f in forms for n in names)
    # Rows of one form stand together (REDCap reads a form as consecutive rows).
    assert [r["Form Name"] for r in rows] == sorted((r["Form Name"] for r in rows), key=forms.index)

    events = part(client, key, study, "events")
    uniques = [e["unique_event_name"] for e in events]
    assert len(uniques) == len(set(uniques)) and all(re.match(r"^[a-z0-9_]{1,18}_arm_1$", u) for u in uniques)
    assert all(e["unique_event_name"] == f"{e['event_name']}_arm_1" for e in events)   # what REDCap will make
    assert part(client, key, study, "arms") == [{"arm_num": 1, "name": "Arm 1"}]
    mapping = part(client, key, study, "mapping")
    assert {m["form"] for m in mapping} == set(forms) and {m["unique_event_name"] for m in mapping} <= set(uniques)
    assert mapping[0] == {"arm_num": 1, "unique_event_name": uniques[0], "form": "participant"}
    repeating = part(client, key, study, "repeating")
    assert {(r["event_name"], r["form_name"]) for r in repeating} <= {(m["unique_event_name"], m["form"])
                                                                      for m in mapping}
    if study == "ADUSE":
        by_event = {}
        for r in repeating:
            by_event.setdefault(r["event_name"], set()).add(r["form_name"])
        assert by_event["w0_arm_1"] == {"bl_confirm", "bl_ulcer", "ulcer_registry"}
        assert by_event["w5_arm_1"] == {"du_confirm", "du_known", "du_ulcer"}
        fields = {r["Variable / Field Name"]: r for r in rows}
        assert fields["du_hand"]["Form Name"] == "du_ulcer" and fields["bl_hand"]["Form Name"] == "bl_ulcer"
        assert fields["du_new"]["Field Type"] == "yesno"
        assert fields["du_hand"]["Branching Logic (Show field only if...)"] == "[du_new] = '1'"
        assert fields["days_to_healing"]["Form Name"] == "du_known"
        assert fields["days_to_healing"]["Text Validation Type OR Show Slider Number"] == "integer"
        assert fields["du_pain"]["Field Note"] == "Asked in version 1.0 only."     # the 1.0 diary's answers
        assert fields["pain_vas"]["Field Type"] == "slider"
        assert "finger ulcers" in fields["pain_vas"]["Field Label"]                # the study's wording
    else:
        fields = {r["Variable / Field Name"]: r for r in rows}
        assert fields["haq_aid_other_dress"]["Field Type"] == "checkbox"
        assert fields["haq_aid_other_dress"]["Choices, Calculations, OR Slider Labels"] == "1, Ticked"
        assert fields["haq_di"]["Text Validation Type OR Show Slider Number"] == "number"
        assert (fields["haq_di"]["Text Validation Min"], fields["haq_di"]["Text Validation Max"]) == ("0", "3")


def test_french_labels(app):
    client, key = app.test_client(), make_key(app)
    fields = {r["Variable / Field Name"]: r for r in dictionary(client, key, "ADUSE", labels="fr")}
    assert fields["record_id"]["Field Label"] == "Identifiant du sujet"
    assert fields["du_new"]["Field Label"].startswith("Depuis")
    events = client.get("/api/v1/studies/ADUSE/metadata?format=redcap&part=events&labels=fr",
                        headers=auth(key)).get_json()
    assert events[0]["custom_event_label"] == "Avant l'injection"


@pytest.mark.requirement("EXPORT")
def test_the_dictionary_neutralises_a_formula_in_the_wording_and_keeps_what_redcap_reads_as_code():
    """It goes through the project's one safe CSV writer: a label that would start a formula in a spreadsheet is
    written as text, while the action tag and a negative bound, which REDCap reads as they are, stay unchanged."""
    from dataclasses import replace

    from proapp.instruments.schema import Text

    catalog = load_studies(DATA_DIR, default_registry(), DEMO_CONTACTS)
    project = Project(catalog.get("ADUSE"), default_registry())
    form = project.forms[-1]
    form.fields[0] = replace(form.fields[0], label=Text(en="=HYPERLINK(1)", fr="=HYPERLINK(1)"), low="-5",
                             annotation="@READONLY")
    rows = list(csv.DictReader(io.StringIO(project.dictionary("en"))))
    row = next(r for r in rows if r["Variable / Field Name"] == form.fields[0].name)
    assert row["Field Label"] == "'=HYPERLINK(1)"
    assert (row["Text Validation Min"], row["Field Annotation"]) == ("-5", "@READONLY")


def test_records_follow_the_cursor_and_fit_the_dictionary(app):
    client, key = app.test_client(), make_key(app)
    complete_diary(app, "ADU-TLS-001", ulcers=2)
    complete_diary(app, "ADU-TLS-002", ulcers=0)
    rows = dictionary(client, key, "ADUSE")
    kinds = {r["Variable / Field Name"]: r["Field Type"] for r in rows}
    columns = {f"{n}___1" if k == "checkbox" else n for n, k in kinds.items()} | SPECIAL \
        | {f"{r['Form Name']}_complete" for r in rows}
    repeating = {(r["event_name"], r["form_name"]) for r in part(client, key, "ADUSE", "repeating")}
    events = {e["unique_event_name"] for e in part(client, key, "ADUSE", "events")}
    records, cursor, pages = [], None, 0
    while True:
        resp = client.get("/api/v1/studies/ADUSE/responses?format=redcap&limit=1"
                          + (f"&cursor={cursor}" if cursor else ""), headers=auth(key))
        assert resp.status_code == 200 and resp.mimetype == "application/json", resp.get_data(as_text=True)
        page = resp.get_json()
        assert isinstance(page, list)                     # the body REDCap's API takes as `data`
        records += page
        pages += 1
        cursor = resp.headers["X-Next-Cursor"]
        if resp.headers["X-Has-More"] == "false":
            break
    assert pages == 4                                     # two responses a patient, one a page
    for r in records:
        assert set(r) <= columns, set(r) - columns
        assert r["redcap_event_name"] in events
        if r["redcap_repeat_instrument"]:
            assert (r["redcap_event_name"], r["redcap_repeat_instrument"]) in repeating
            assert r["redcap_repeat_instance"].isdigit() and int(r["redcap_repeat_instance"]) >= 1
        for name, value in r.items():
            if kinds.get(name) == "yesno":
                assert value in ("0", "1"), (name, value)
    diary = [r for r in records if "du_diary_resp_id" in r]
    assert [(d["record_id"], d["redcap_event_name"], d["du_new"], d["new_ulcer_count"], d["du_diary_complete"])
            for d in diary] == [("ADU-TLS-001", "w1_arm_1", "1", "2", "2"), ("ADU-TLS-002", "w1_arm_1", "0", "0", "2")]
    ulcers = [r for r in records if r["redcap_repeat_instrument"] == "du_ulcer"]
    assert [(u["record_id"], u["redcap_repeat_instance"], u["du_hand"], u["du_finger"], u["ulcer_number"],
             u["report_kind"]) for u in ulcers] == [("ADU-TLS-001", "1", "R", "2", "1", "new"),
                                                    ("ADU-TLS-001", "2", "L", "3", "2", "new")]
    pain = [r for r in records if "pain_vas_resp_id" in r]
    assert [(p["pain_vas"], p["pain_vas_lang"], p["pain_vas_version"]) for p in pain] == [("35", "fr", "1.0")] * 2
    assert re.match(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$", pain[0]["pain_vas_done_at"])
    participants = [r for r in records if "site" in r]
    assert {(p["record_id"], p["redcap_event_name"], p["site"]) for p in participants} == {
        ("ADU-TLS-001", "w0_arm_1", "TLS"), ("ADU-TLS-002", "w0_arm_1", "TLS")}


def test_checkboxes_are_var___1_and_unticked_ones_say_0():
    registry = default_registry()
    study = load_studies(DATA_DIR, registry, DEMO_CONTACTS, demo_contacts=True).get("IMATINIB-SSC")
    haq = registry.get("HAQ", "1.1")
    now = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
    e = Exported(7, 7, 1, "IMA-PSL-001", "PSL", "M1", now.date(), now.date(), now.date(), "HAQ", "1.1", "en", now,
                 False, {"haq_di": 1.25}, answers=[("HAQ_DRESS1", 0, "2", now), ("HAQ_AID_DRESSING", 0, "Y", now)])
    row = Project(study, registry).records(e, haq)[0]
    assert row["haq_aid_dressing___1"] == "1" and row["haq_aid_other_dress___1"] == "0"
    assert row["haq_dress1"] == "2" and row["haq_di"] == "1.25" and row["haq_done_at"] == "2026-12-01 09:30:00"
    assert row["redcap_event_name"] == "m1_arm_1" and row["haq_resp_id"] == "7" and row["haq_revision"] == "0"


def _study_with(folder: Path, forms: str = "", variables: str = "") -> Path:
    """The shipped ADUSE file with more REDCap renames."""
    text = (Path(DATA_DIR) / "ADUSE.yaml").read_text()
    assert "\n    forms: {" in text and "\n    variables: {" in text
    text = text.replace("\n    forms: {", f"\n    forms: {{{forms}", 1).replace(
        "\n    variables: {", f"\n    variables: {{{variables}", 1)
    (folder / "ADUSE.yaml").write_text(text)
    return folder


def test_the_study_file_renames_variables_and_forms(database_url, instance_dir, tmp_path):
    from tests.conftest import fresh_app

    folder = _study_with(tmp_path, "DLQI: qol, ", "PAIN_VAS.PAIN_VAS: ulcer_pain, ")
    app = fresh_app(database_url, STUDIES_DIR=str(folder))
    try:
        client, key = app.test_client(), make_key(app)
        fields = {r["Variable / Field Name"]: r for r in dictionary(client, key, "ADUSE")}
        assert fields["ulcer_pain"]["Form Name"] == "pain_vas" and "pain_vas" not in fields
        assert fields["dlqi01"]["Form Name"] == "qol" and "qol_resp_id" in fields
    finally:
        app.extensions["proapp.engine"].dispose()


@pytest.mark.parametrize("forms, variables, message", [
    ("DU_DIARY.DU_ULCER: bl_ulcer, ", "", "DU_BASELINE.DU_ULCER and DU_DIARY.DU_ULCER would both be the form "
                                          "'bl_ulcer'"),
    ("", "DLQI.DLQI01: haq_di, ", "would both be the variable 'haq_di'"),
    ("", "DLQI.DLQI99: q99, ", "DLQI.DLQI99 is not an item or score of this study"),
    ("HAQ.HAQ_X: x, ", "", "HAQ.HAQ_X is not an instrument or group of this study"),
    ("", "DLQI.DLQI01: Q1, ", "the variable 'Q1' (dlqi.DLQI01) must be lower-case"),
    ("", "DLQI.DLQI01: a_very_long_name_for_question_one, ", "at most 26 characters"),
    ("", "DLQI.DLQI01: redcap_event_name, ", "is a name REDCap keeps for itself"),
])
def test_redcap_names_that_redcap_would_refuse_stop_the_start(database_url, instance_dir, tmp_path, forms, variables,
                                                               message):
    from tests.conftest import make_app

    with pytest.raises(StudyFileError) as exc:
        make_app(database_url, STUDIES_DIR=str(_study_with(tmp_path, forms, variables)))
    assert str(exc.value).startswith("study file ADUSE.yaml: edc.redcap") and message in str(exc.value), exc.value
