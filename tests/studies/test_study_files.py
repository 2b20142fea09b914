"""Study files are checked at start-up; a malformed one stops the app with the file and the field named."""

from pathlib import Path

import pytest
import yaml

from proapp.instruments import default_registry
from proapp.studies.catalog import DATA_DIR, DEMO_CONTACTS, StudyFileError, load_contacts, load_studies, load_study_file


def shipped(name: str) -> dict:
    return yaml.safe_load((DATA_DIR / name).read_text())


def write(tmp_path: Path, data: dict, name: str = "STUDY.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    return path


def test_shipped_studies_load():
    catalog = load_studies(DATA_DIR, default_registry(), DEMO_CONTACTS, demo_contacts=True)
    assert catalog.codes() == ["ADUSE", "IMATINIB-SSC"]
    assert [s.code for s in catalog.get("ADUSE").sites] == ["TLS"]
    assert len(catalog.get("IMATINIB-SSC").sites) == 10


@pytest.mark.parametrize(("subject", "site", "ok"), [
    ("ADU-TLS-001", "TLS", True), ("ADU-TLS-01", "TLS", False), ("ADU-TLS-0001", "TLS", False),
    ("ADU-BDX-001", "TLS", False), ("adu-tls-001", "TLS", False), ("IMA-TLS-001", "TLS", False),
])
def test_subject_id_pattern(subject, site, ok):
    study = load_studies(DATA_DIR, default_registry(), DEMO_CONTACTS, demo_contacts=True).get("ADUSE")
    assert study.subject_id_matches(subject, site) is ok


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda d: d.pop("visits"), "visits: Field required"),
    (lambda d: d["visits"][0].update(day="thirty"), "visits.0"),
    (lambda d: d["visits"][0].update(instruments=["SF36"]), "SF36 is not listed under instruments"),
    (lambda d: d["instruments"].update(DLQI={"version": "9.9"}), "instruments.DLQI: no instrument DLQI version 9.9"),
    (lambda d: d["sites"].append({"code": "PSL", "name": "again"}), "sites.10.code: PSL appears twice"),
    (lambda d: d["sites"][0].update(code="bdx"), "sites.0.code"),
    (lambda d: d.update(default_timezone="Europe/Pariss"), "default_timezone"),
    (lambda d: d.update(subject_id_pattern="IMA-[0-9]{3}"), "subject_id_pattern: must contain {site}"),
    (lambda d: d["visits"].append(dict(d["visits"][0])), "visit code M0 appears twice"),
    (lambda d: d.update(colour="blue"), "colour: Extra inputs are not permitted"),
])
def test_malformed_study_file_names_file_and_field(tmp_path, mutate, message):
    data = shipped("IMATINIB-SSC.yaml")
    mutate(data)
    path = write(tmp_path, data, "BROKEN.yaml")
    with pytest.raises(StudyFileError) as exc:
        load_study_file(path, default_registry(), load_contacts(DEMO_CONTACTS))
    assert str(exc.value).startswith("study file BROKEN.yaml: ")
    assert message in str(exc.value)


def test_unknown_variant_is_refused(tmp_path):
    data = shipped("ADUSE.yaml")
    data["instruments"]["PAIN_VAS"]["variant"] = "last_month"
    with pytest.raises(StudyFileError, match=r"instruments.PAIN_VAS.variant"):
        load_study_file(write(tmp_path, data), default_registry(), load_contacts(DEMO_CONTACTS))


def test_unparseable_yaml(tmp_path):
    path = tmp_path / "BAD.yaml"
    path.write_text("code: [unclosed\n")
    with pytest.raises(StudyFileError, match=r"study file BAD.yaml: cannot be read"):
        load_study_file(path, default_registry(), load_contacts(DEMO_CONTACTS))


def test_same_study_in_two_files(tmp_path):
    data = shipped("ADUSE.yaml")
    write(tmp_path, data, "A.yaml")
    write(tmp_path, data, "B.yaml")
    with pytest.raises(StudyFileError, match="ADUSE is defined in more than one file"):
        load_studies(tmp_path, default_registry(), DEMO_CONTACTS, demo_contacts=True)


def test_series_expands_codes_and_labels():
    visits = load_studies(DATA_DIR, default_registry(), DEMO_CONTACTS, demo_contacts=True).get("ADUSE").all_visits()
    w7 = next(v for v in visits if v.code == "W7")
    assert (w7.day, w7.label.en, w7.label.fr) == (49, "Week 7", "Semaine 7")
