"""Closing a study: refused while visits are open (unless forced with a reason), closed to patients at once, a
final export and the patients' certified audit copies in one archive signed with the audit key, verified offline
after the live data is gone; one byte changed and it no longer verifies."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
import yaml
from sqlalchemy import func, select

from proapp import db
from proapp.audit.models import AuditEvent
from proapp.patients.models import Agreement, Patient, PatientContact
from proapp.questionnaire.models import Answer, Response
from proapp.sms.models import SmsMessage
from proapp.studies.catalog import DATA_DIR as SHIPPED_STUDIES
from proapp.studies.models import ClosedLink, Study, StudyClosure
from tests.conftest import OWNER_URLS, fresh_app
from tests.export.conftest import complete_diary
from tests.questionnaire.helpers import enrol_with_open_window

pytestmark = pytest.mark.requirement("STUDY-CLOSURE")


def _studies(folder: Path, live_data: str) -> Path:
    """The shipped study files, ADUSE's closure removing (or keeping) the live data."""
    folder.mkdir()
    for path in SHIPPED_STUDIES.glob("*.yaml"):
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        if raw["code"] == "ADUSE":
            raw["closure"] = {"live_data": live_data}
        (folder / path.name).write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    return folder


@pytest.fixture
def closing_app(database_url, instance_dir, tmp_path):
    """An app whose ADUSE file removes the live data at closure, run as the tables' owner (as proapp init: on
    PostgreSQL the app's role may not delete the append-only agreements)."""
    app = fresh_app(OWNER_URLS.get(database_url, database_url),
                    STUDIES_DIR=str(_studies(tmp_path / "studies", "remove")), ARCHIVE_DIR=str(tmp_path / "archives"))
    yield app
    app.extensions["proapp.engine"].dispose()


def _count(app, model, *where) -> int:
    with app.app_context():
        return db.session().scalar(select(func.count()).select_from(model).where(*where))


def test_close_then_verify_offline_after_the_live_data_is_gone(closing_app, tmp_path):
    app, runner = closing_app, closing_app.test_cli_runner()
    pid = complete_diary(app, "ADU-TLS-001", language="en")
    _other, token = enrol_with_open_window(app, "ADUSE", "W1", subject="ADU-TLS-002", language="fr")
    refused = runner.invoke(args=["proapp", "study", "close", "ADUSE"])
    assert refused.exit_code == 2 and "still open or to come" in refused.output and "force" in refused.output
    assert _count(app, StudyClosure) == 0                                      # nothing stored from a refusal

    done = runner.invoke(args=["proapp", "study", "close", "ADUSE", "--force", "sponsor ended the trial early (DSMB)"])
    assert done.exit_code == 0, done.output
    assert "live data removed" in done.output and "ADUSE is closed" in done.output
    [archive] = (tmp_path / "archives").glob("ADUSE-archive-*.zip")
    # The live data is gone (the audit trail stays); the closure is audited step by step.
    assert _count(app, Patient) == 0 and _count(app, Response) == 0 and _count(app, Answer) == 0
    assert _count(app, Agreement) == 0 and _count(app, PatientContact) == 0 and _count(app, SmsMessage) == 0
    with app.app_context():
        actions = list(db.session().scalars(select(AuditEvent.action).where(AuditEvent.action.like("study.%"))
                                            .order_by(AuditEvent.id)))
        assert actions == ["study.closing", "study.archived", "study.contacts_erased", "study.live_data_removed"]
        closing = db.session().scalar(select(AuditEvent).where(AuditEvent.action == "study.closing"))
        assert closing.reason == "sponsor ended the trial early (DSMB)" and closing.new["forced"] is True
        assert db.session().scalar(select(AuditEvent.id).where(AuditEvent.patient_id == pid)) is not None
    # The archive holds every format, each patient's certified copy, the definitions and the checkpoints.
    with zipfile.ZipFile(archive) as zf:
        names = set(zf.namelist())
        assert {"export/responses.json", "export/responses-en.csv", "export/responses-odm.xml",
                "export/responses-fhir.json", "export/redcap-records.json", "export/metadata-odm.xml",
                "audit/patients/ADU-TLS-001.csv", "audit/patients/ADU-TLS-002.csv", "audit/checkpoints.jsonl",
                "definitions/studies/ADUSE.yaml", "archive.json", "SHA256SUMS", "SIGNATURE"} <= names
        assert any(n.startswith("definitions/instruments/DU_DIARY-") for n in names)
        responses = json.loads(zf.read("export/responses.json"))["data"]
        assert {r["subject_id"] for r in responses} == {"ADU-TLS-001"} and len(responses) == 2
        summary = json.loads(zf.read("archive.json"))
        assert summary["closure"]["forced_reason"] == "sponsor ended the trial early (DSMB)"
        assert all(c["chain_intact"] for c in summary["audit_copies"].values())
        assert b"answer.saved" in zf.read("audit/patients/ADU-TLS-001.csv")
    from tests.export.odm import validate_odm

    with zipfile.ZipFile(archive) as zf:
        validate_odm(zf.read("export/responses-odm.xml"))
    # The link of a closed study says so, in the patient's language, even with the live data gone.
    page = app.test_client().get(f"/s/{token}")
    assert page.status_code == 410 and "Cette étude est terminée" in page.get_data(as_text=True)
    # Offline: the archive and the key alone (another app, on no database of this study's).
    ok = runner.invoke(args=["proapp", "study", "verify-archive", str(archive)])
    assert ok.exit_code == 0 and "archive intact" in ok.output, ok.output
    # With nothing but the archive and the key: no configuration, no database, no app.
    import os
    import subprocess
    import sys

    bare = subprocess.run([sys.executable, "-m", "proapp.closure.archive", str(archive)], capture_output=True,
                          text=True, cwd=tmp_path, env={"PATH": os.environ.get("PATH", ""),
                                                        "PROAPP_AUDIT_KEYS": app.config["AUDIT_KEYS"]}, timeout=60)
    assert bare.returncode == 0 and "archive intact" in bare.stdout, bare.stdout + bare.stderr
    # A second run continues: nothing done twice.
    again = runner.invoke(args=["proapp", "study", "close", "ADUSE"])
    assert again.exit_code == 0 and "continuing the closure" in again.output and "present and intact" in again.output
    with app.app_context():
        assert db.session().scalar(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.action.like("study.%"))) == 4
    # One byte changed anywhere: the archive no longer verifies.
    data = bytearray(archive.read_bytes())
    for offset in (len(data) // 2, 20):                 # inside a member's data; a local header's date
        tampered = tmp_path / f"tampered-{offset}.zip"
        changed = bytearray(data)
        changed[offset] ^= 0x01
        tampered.write_bytes(bytes(changed))
        bad = runner.invoke(args=["proapp", "study", "verify-archive", str(tampered)])
        assert bad.exit_code == 1 and "TAMPERED" in bad.output, (offset, bad.output)


def test_a_closed_study_takes_no_patient_sends_no_sms_and_its_links_say_so(app, runner, tmp_path):
    pid, token = enrol_with_open_window(app, "ADUSE", "W1", subject="ADU-TLS-003", language="en")
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    refused = runner.invoke(args=["proapp", "study", "close", "ADUSE", "--force", "end of funding",
                                  "--archive-dir", str(blocked / "archives")])
    assert refused.exit_code == 2 and "The archive cannot be written in" in refused.output, refused.output
    assert _count(app, StudyClosure) == 1 and not list(tmp_path.rglob("*.zip"))  # closed to patients, no archive yet
    app.config["ARCHIVE_DIR"] = str(tmp_path / "archives")
    done = runner.invoke(args=["proapp", "study", "close", "ADUSE", "--force", "end of funding"])
    assert done.exit_code == 0, done.output
    assert "live data kept" in done.output                          # the shipped file keeps it (the default)
    assert _count(app, Patient) == 1 and _count(app, ClosedLink) == 1
    from proapp.patients.models import Occurrence, OccurrenceStatus, PatientStatus

    # The follow-up ended with the study: windows not yet closed cancelled, the patient's follow-up ended; audited.
    assert _count(app, Occurrence, Occurrence.status == OccurrenceStatus.SCHEDULED) == 0
    assert _count(app, Patient, Patient.status == PatientStatus.COMPLETED) == 1
    assert _count(app, AuditEvent, AuditEvent.patient_id == pid, AuditEvent.action == "occurrence.cancelled") > 1
    assert _count(app, AuditEvent, AuditEvent.patient_id == pid, AuditEvent.action == "patient.follow_up_ended") == 1
    page = app.test_client().get(f"/s/{token}")
    assert page.status_code == 410 and "This study is closed" in page.get_data(as_text=True)
    assert runner.invoke(args=["proapp", "link", "ADU-TLS-003"]).exit_code == 2          # no open visit left
    with app.app_context():                                       # and a link made anyhow after the closure
        from proapp import runtime
        from proapp.questionnaire.answering import new_link

        s = db.session()
        fresh, _link = new_link(s, s.scalar(select(Occurrence).where(Occurrence.patient_id == pid).limit(1)),
                                runtime.now(), revoke_previous=False)
        s.commit()
    page = app.test_client().get(f"/s/{fresh}")
    assert page.status_code == 410 and "This study is closed" in page.get_data(as_text=True)
    refused = runner.invoke(args=["proapp", "enroll", "--study", "ADUSE", "--site", "TLS", "--subject", "ADU-TLS-009",
                                  "--phone", "+33612345679", "--anchor-date", "2026-01-05", "--agreed-on",
                                  "2026-01-05"])
    assert refused.exit_code == 2 and "is closed" in refused.output
    with app.app_context():
        from proapp import runtime
        from proapp.sms.delivery import SmsSettings, queue_invitations

        with db.transaction() as s:
            assert queue_invitations(s, runtime.now(), SmsSettings.from_config(app.config)) == 0
        assert db.session().get(PatientContact, pid).phone_ciphertext is None       # erased at closure
        assert db.session().scalar(select(Study.code).join(StudyClosure, StudyClosure.study_id == Study.id)) == "ADUSE"


def test_an_admin_closes_a_study_on_its_page_with_an_electronic_signature(app, tmp_path):
    from datetime import UTC, datetime

    from proapp.accounts.models import Role
    from proapp.accounts.staff import create_user
    from tests.dashboard.conftest import PASSWORD, Staff, text_of

    enrol_with_open_window(app, "ADUSE", "W1", subject="ADU-TLS-004", language="en")
    app.config["ARCHIVE_DIR"] = str(tmp_path / "archives")
    with app.app_context():
        s = db.session()
        for email, role, study in (("admin@chu.test", Role.ADMIN, None), ("nurse@chu.test", Role.COORDINATOR, "ADUSE")):
            create_user(s, email=email, password=PASSWORD, role=role, now=datetime.now(UTC), study_code=study,
                        language="en")
        s.commit()
    nurse = Staff(app, None)
    nurse.login("nurse@chu.test", PASSWORD, expect=303)
    assert nurse.get("/staff/studies/ADUSE/close").status_code == 403
    admin = Staff(app, None)
    admin.login("admin@chu.test", PASSWORD, expect=303)
    url = "/staff/studies/ADUSE/close"
    page = text_of(admin.get(url))
    assert "Visits open or to come" in page and "I am closing this study" in page
    for form, message in [({"reason": "end of funding", "signature_password": "wrong"}, "the change is not signed"),
                          ({"signature_password": PASSWORD}, "still open or to come")]:
        resp = admin.post(url, form)
        assert resp.status_code == 422 and message in text_of(resp), text_of(resp)[:400]
        assert _count(app, StudyClosure) == 0 and _count(app, ClosedLink) == 0
    assert admin.get("/staff/studies/NOPE/close").status_code == 404
    done = admin.post(url, {"reason": "end of funding", "signature_password": PASSWORD})
    assert done.status_code == 200 and "ADUSE is closed" in text_of(done), text_of(done)[:400]
    with app.app_context():
        closure = db.session().scalar(select(StudyClosure))
        assert closure.forced_reason == "end of funding" and closure.signature["signer"] == "admin@chu.test"
        entry = db.session().scalar(select(AuditEvent).where(AuditEvent.action == "study.closing"))
        assert entry.actor == "user:admin@chu.test" and entry.new["signature"]["method"] == "password"
    assert "Sign and" not in text_of(admin.get(url))               # nothing left to do


def test_an_interrupted_closure_continues_and_never_erases_without_its_archive(app, runner, tmp_path):
    from proapp import runtime
    from proapp.closure import steps as closing

    pid, _token = enrol_with_open_window(app, "ADUSE", "W1", subject="ADU-TLS-005", language="fr")
    app.config["ARCHIVE_DIR"] = str(tmp_path / "archives")
    with app.app_context():                               # the first two steps, then the process dies
        keys = app.extensions["proapp.audit_keys"]
        with db.transaction() as s:
            study = closing.find_study(s, "ADUSE")
            closing.begin(s, study, runtime.studies(), runtime.now(), "cli", force_reason="end of funding")
        with db.transaction() as s:
            study = closing.find_study(s, "ADUSE")
            path = closing.archive(s, study, closing.closure_of(s, study.id), runtime.studies(),
                                   runtime.instruments(), keys, tmp_path / "archives", closing.sources(),
                                   runtime.now(), "cli")
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    refused = runner.invoke(args=["proapp", "study", "close", "ADUSE", "--archive-dir", str(blocked / "sub")])
    assert refused.exit_code == 2 and "is not in" in refused.output          # recorded elsewhere: not rewritten
    moved = path.rename(tmp_path / path.name)             # the archive is not where it was written
    refused = runner.invoke(args=["proapp", "study", "close", "ADUSE"])
    assert refused.exit_code == 2 and "is not in" in refused.output
    with app.app_context():
        assert db.session().get(PatientContact, pid).phone_ciphertext is not None     # nothing erased without it
    original = moved.read_bytes()
    moved.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))     # given back, but not the file written
    refused = runner.invoke(args=["proapp", "study", "close", "ADUSE", "--archive-dir", str(tmp_path)])
    assert refused.exit_code == 2 and "SHA-256 differs" in refused.output
    moved.write_bytes(original)
    done = runner.invoke(args=["proapp", "study", "close", "ADUSE", "--archive-dir", str(tmp_path)])
    assert done.exit_code == 0, done.output
    assert "continuing the closure" in done.output and "present and intact" in done.output
    assert "1 phone number(s) erased" in done.output and "ADUSE is closed" in done.output
    with app.app_context():
        assert db.session().get(PatientContact, pid).phone_ciphertext is None
        counts = dict(db.session().execute(select(AuditEvent.action, func.count()).where(
            AuditEvent.action.like("study.%")).group_by(AuditEvent.action)).all())
        assert counts == {"study.closing": 1, "study.archived": 1, "study.contacts_erased": 1,
                          "study.live_data_kept": 1}
