"""Licensed, validated wording: production refuses an instrument whose wording is not validated unless the study
file accepts it by name; `proapp check`, the staff pages and the exports say which wording was used."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from proapp.instruments.registry import DATA_DIR as INSTRUMENT_FILES
from proapp.instruments.registry import InstrumentFileError, load_file
from proapp.studies.catalog import DATA_DIR, StudyFileError
from tests.conftest import PRODUCTION_MAIL, PRODUCTION_STUDIES, make_app

PRODUCTION = {"ENV": "production", "SECRET_KEY": "p" * 64, "PUBLIC_URL": "https://pro.example.test",
              "AUDIT_KEYS": "k1:" + "ab" * 32, "SMS_GATEWAY": "twilio", "TWILIO_ACCOUNT_SID": "AC" + "0" * 32,
              "TWILIO_AUTH_TOKEN": "t" * 32, **PRODUCTION_MAIL}


def _studies(folder: Path, accept: dict[str, list[str]] | None) -> Path:
    """The accepted production copy of the study files, with ``accept`` replacing IMATINIB-SSC's acceptances."""
    folder.mkdir()
    for path in PRODUCTION_STUDIES.glob("*.yaml"):
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        if raw["code"] == "IMATINIB-SSC" and accept is not None:
            for code, use in raw["instruments"].items():
                use["accept_unvalidated"] = accept.get(code, [])
        (folder / path.name).write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    return folder


@pytest.mark.requirement("INS-LICENCE")
def test_production_refuses_unvalidated_wording_the_study_file_does_not_accept(database_url, instance_dir,
                                                                                tmp_path):
    with pytest.raises(StudyFileError) as exc:           # the shipped instruments, nothing accepted
        make_app(database_url, **(PRODUCTION | {"STUDIES_DIR": str(_studies(tmp_path / "none", {}))}))
    assert str(exc.value).startswith("study IMATINIB-SSC: DLQI 1.0 in en is not the validated, licensed wording")
    folder = _studies(tmp_path / "partly", {"DLQI": ["fr"], "HAQ": ["en", "fr"], "TOLERANCE": ["en", "fr"]})
    with pytest.raises(StudyFileError) as exc:           # French DLQI accepted, English not
        make_app(database_url, **(PRODUCTION | {"STUDIES_DIR": str(folder)}))
    assert str(exc.value).startswith("study IMATINIB-SSC: DLQI 1.0 in en is not the validated, licensed wording")
    assert "instruments.DLQI.accept_unvalidated: [en]" in str(exc.value)
    app = make_app(database_url, **PRODUCTION)          # every language accepted by name: it starts
    assert app.extensions["proapp.studies"].get("IMATINIB-SSC").instruments["DLQI"].accept_unvalidated == ["en", "fr"]
    app.extensions["proapp.engine"].dispose()


@pytest.mark.requirement("INS-LICENCE")
def test_development_and_the_demo_keep_the_shipped_files(database_url, instance_dir):
    app = make_app(database_url, ENV="development", SECRET_KEY="d" * 64, STUDIES_DIR=str(DATA_DIR))
    assert app.extensions["proapp.studies"].codes() == ["ADUSE", "IMATINIB-SSC"]
    app.extensions["proapp.engine"].dispose()


@pytest.mark.requirement("INS-LICENCE")
def test_check_lists_refused_wording_as_problems_and_accepted_wording_as_warnings(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "PROAPP_ENV": "production", "PROAPP_INSTANCE_PATH": str(tmp_path),
           "PROAPP_SITE_CONTACTS": PRODUCTION_MAIL["SITE_CONTACTS"]}
    refused = subprocess.run([sys.executable, "-m", "proapp", "check"], env=env | {"PROAPP_STUDIES_DIR": str(DATA_DIR)},
                             capture_output=True, text=True, timeout=60, cwd=os.getcwd())
    lines = refused.stdout.splitlines()
    assert refused.returncode == 1
    assert "study ADUSE: DLQI 1.0 in fr is not the validated, licensed wording: replace it, or accept it by name " \
           "in the study file (instruments.DLQI.accept_unvalidated: [fr])" + "." in lines
    folder = _studies(tmp_path / "accepted", None)
    accepted = subprocess.run([sys.executable, "-m", "proapp", "check"], env=env | {"PROAPP_STUDIES_DIR": str(folder)},
                              capture_output=True, text=True, timeout=60)
    assert not any("licensed wording" in line for line in accepted.stdout.splitlines())
    assert "warning: study IMATINIB-SSC uses HAQ 1.1 in fr with wording that is not validated, accepted by the " \
           "study file (accept_unvalidated)." in accepted.stdout.splitlines()


@pytest.mark.requirement("INS-LICENCE")
@pytest.mark.parametrize(("file", "language", "wording"), [
    ("DLQI-1.0.yaml", "fr", "complètement empêché(e)"),
    ("HAQ-1.0.yaml", "fr", "Avec QUELQUES difficultés"),
    ("HAQ-1.1.yaml", "fr", "Avec QUELQUES difficultés"),
    ("HAQ-1.1.yaml", "fr", "SHAQ_OVERALL"),
    ("HAQ-1.1.yaml", "en", "Very poorly"),
])
def test_wording_the_clinical_review_flagged_stays_not_validated(file, language, wording, tmp_path):
    inst = load_file(INSTRUMENT_FILES / file)
    status = inst.languages[language]
    assert any(wording in flag for flag in status.flagged)
    assert not status.validated
    raw = yaml.safe_load((INSTRUMENT_FILES / file).read_text(encoding="utf-8"))
    raw["languages"][language]["validated"] = True          # validating it without replacing the wording
    (tmp_path / file).write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    with pytest.raises(InstrumentFileError, match="validated is true while the review flagged wording"):
        load_file(tmp_path / file)
