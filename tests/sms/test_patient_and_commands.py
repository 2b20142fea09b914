"""The patient's 'stop the SMS' page, the console gateway and its development page, the tick, worker and
sms commands, and the worker as a real process of its own."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time as clock
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from proapp import db
from proapp.patients.models import PatientContact, PatientEvent
from proapp.sms.models import SmsMessage, SmsStatus
from tests.questionnaire.helpers import Patient, csrf, enrol_with_open_window, text


@pytest.mark.requirement("SMS-STOP")
def test_the_patient_stops_the_sms_from_the_questionnaire_in_french(app, client, session):
    pid, token = enrol_with_open_window(app, language="fr")
    patient = Patient(client, token)
    page = patient.open()
    assert 'href="/q/sms"' in page.text and "SMS de rappel" in page.text
    page = client.get("/q/sms")
    assert page.status_code == 200 and "Arrêter les SMS ?" in text(page.text)
    resp = client.post("/q/sms", data={"csrf_token": csrf(page.text)})
    assert resp.status_code == 200
    assert "Vous ne recevrez plus de SMS de notre part." in text(resp.text)
    assert "Revenir à mon questionnaire" in text(resp.text)                 # the questionnaire stays open
    session.rollback()               # a fresh snapshot of the database
    contact = session.get(PatientContact, pid)
    assert contact.opted_out_at is not None
    events = session.execute(select(PatientEvent.action, PatientEvent.actor)
                             .where(PatientEvent.patient_id == pid)).all()
    with client.session_transaction() as sess:
        link_id = sess["pq"]["link"]
    assert [tuple(e) for e in events] == [("sms_opt_out", f"patient:link:{link_id}")]   # which link, as for answers
    from proapp.audit.models import AuditEvent

    assert session.scalar(select(AuditEvent.actor).where(AuditEvent.action == "patient.sms_opt_out")) == \
        f"patient:link:{link_id}"
    # A second tap (or a resubmission) changes nothing and records nothing more.
    again = client.post("/q/sms", data={"csrf_token": csrf(page.text)})
    assert again.status_code == 200
    assert session.scalar(select(PatientEvent.id).where(PatientEvent.id > 0).offset(1)) is None


def test_stop_page_in_english_and_a_stale_form_is_shown_again(app, client, session):
    pid, token = enrol_with_open_window(app, language="en", subject="ADU-TLS-777")
    Patient(client, token).open()
    page = client.get("/q/sms")
    assert "Stop the SMS?" in text(page.text)
    resp = client.post("/q/sms", data={"csrf_token": "stale"})
    assert resp.status_code == 303 and resp.headers["Location"].endswith("/q/sms")
    session.rollback()               # a fresh snapshot of the database
    assert session.get(PatientContact, pid).opted_out_at is None        # nothing stored from a stale form


def test_the_stop_page_needs_a_patient_session(client):
    assert client.get("/q/sms").status_code == 404
    assert client.post("/q/sms", data={}).status_code in (303, 404)


def test_console_gateway_tick_and_the_development_page(app, runner, client, instance_dir):
    pid, _token = enrol_with_open_window(app, subject="ADU-TLS-401", visit="W0")   # opened 3 days ago
    inbox = Path(app.instance_path) / "console_sms.jsonl"
    inbox.unlink(missing_ok=True)
    paris_today = datetime.now(ZoneInfo("Europe/Paris")).date()
    noon = datetime.combine(paris_today, time(11), tzinfo=UTC)          # 12:00 or 13:00 in Paris
    dawn = datetime.combine(paris_today, time(4), tzinfo=UTC)           # 05:00 or 06:00: quiet hours
    queued = runner.invoke(args=["proapp", "tick", "--now", dawn.isoformat()])
    assert "invitations=1" in queued.output and "sms_sent=0" in queued.output
    waiting = client.get("/dev/sms").text
    assert "En attente d'envoi" in waiting and "invitation · " in waiting and "Aucun SMS pour l'instant." in waiting
    result = runner.invoke(args=["proapp", "tick", "--now", noon.isoformat()])
    assert result.exit_code == 0, result.output
    assert "invitations=0" in result.output and "sms_sent=1" in result.output
    [entry] = [json.loads(line) for line in inbox.read_text().splitlines()]
    assert entry["to"] == "+336 1 •• •• •• 78"              # the number is masked even in the console file
    link = entry["body"].rsplit(" ", 1)[1]
    page = client.get("/dev/sms")
    assert page.status_code == 200 and f'href="{link}"' in page.text and "ADU-TLS-401" in page.text
    # The link the console "sent" opens the questionnaire.
    assert client.get(link.removeprefix(app.config["PUBLIC_URL"])).status_code == 303
    again = runner.invoke(args=["proapp", "tick", "--now", noon.isoformat()])
    assert "sms_sent=0" in again.output and len(inbox.read_text().splitlines()) == 1
    with app.app_context():
        [row] = db.session().scalars(select(SmsMessage).where(SmsMessage.patient_id == pid)).all()
        assert row.status == SmsStatus.DELIVERED and row.gateway == "console"


def test_tick_refuses_a_bad_time(runner):
    result = runner.invoke(args=["proapp", "tick", "--now", "yesterday"])
    assert result.exit_code == 2 and "is not an ISO 8601 date and time" in result.output


def test_sms_pause_resume_and_log_commands(app, runner):
    enrol_with_open_window(app, subject="ADU-TLS-402")
    missing = runner.invoke(args=["proapp", "sms", "pause", "ADU-TLS-402", "--by", "nurse@chu.test"])
    assert missing.exit_code == 2 and "--reason" in missing.output
    blank = runner.invoke(args=["proapp", "sms", "pause", "ADU-TLS-402", "--by", "n@chu.test", "--reason", " "])
    assert blank.exit_code == 2 and "error: a reason is required" in blank.output
    ok = runner.invoke(args=["proapp", "sms", "pause", "ADU-TLS-402", "--by", "nurse@chu.test",
                             "--reason", "hospitalised"])
    assert ok.exit_code == 0 and "SMS paused for ADU-TLS-402" in ok.output
    twice = runner.invoke(args=["proapp", "sms", "pause", "ADU-TLS-402", "--by", "nurse@chu.test", "--reason", "x"])
    assert twice.exit_code == 2 and "already paused" in twice.output
    log = runner.invoke(args=["proapp", "sms", "log", "ADU-TLS-402"])
    assert "phone +336 1 •• •• •• 78: SMS paused" in log.output
    assert "sms_pause by user:nurse@chu.test: hospitalised" in log.output
    assert runner.invoke(args=["proapp", "sms", "resume", "ADU-TLS-402", "--by", "nurse@chu.test",
                               "--reason", "home again"]).exit_code == 0
    assert "SMS active" in runner.invoke(args=["proapp", "sms", "log", "ADU-TLS-402"]).output
    assert runner.invoke(args=["proapp", "sms", "log", "ADU-TLS-999"]).exit_code == 2


def test_the_development_page_does_not_exist_with_twilio(sms_app):
    assert sms_app.test_client().get("/dev/sms").status_code == 404


def test_the_web_app_starts_no_scheduler():
    """Importing and building the web app (as gunicorn does through wsgi.py) starts no APScheduler."""
    code = ("import sys, wsgi; "
            "print(any(m.startswith('apscheduler') for m in sys.modules))")
    env = {**os.environ, "PROAPP_ENV": "development", "PROAPP_INSTANCE_PATH": os.environ["PROAPP_INSTANCE_PATH"]}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60,
                         cwd=Path(__file__).resolve().parents[2])
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_the_worker_runs_as_its_own_process_and_stops_cleanly(app, database_url, tmp_path):
    """`proapp worker` sends the due invitation through the console gateway, then stops on SIGTERM."""
    enrol_with_open_window(app, subject="ADU-TLS-403", visit="W0")   # opened 3 days ago: due at once
    env = {**os.environ, "PROAPP_ENV": "development", "PROAPP_DATABASE_URL": database_url,
           "PROAPP_INSTANCE_PATH": str(tmp_path), "PROAPP_PHONE_KEYS": app.config["PHONE_KEYS"],
           "PROAPP_SMS_QUIET_START": "23", "PROAPP_SMS_QUIET_END": "0"}
    env.pop("PROAPP_TEST_DATABASE_URL", None)
    # Quiet hours 23:00-00:00 and the invitation due at once: the worker sends at any hour of the test run,
    # except in that one hour, when it holds the SMS as it must.
    proc = subprocess.Popen([sys.executable, "-m", "proapp", "worker"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, cwd=Path(__file__).resolve().parents[2])
    inbox = tmp_path / "console_sms.jsonl"
    deadline = clock.monotonic() + 30
    local_hour = datetime.now(ZoneInfo("Europe/Paris")).hour
    try:
        while clock.monotonic() < deadline and not inbox.exists():
            clock.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGTERM)
        output = proc.communicate(timeout=30)[0]
    assert proc.returncode == 0, output
    assert "started (gateway console)" in output and "stopped" in output
    if local_hour != 23:
        assert inbox.exists(), output
        assert len(inbox.read_text().splitlines()) == 1


@pytest.mark.parametrize("after", [0, 1.5])
def test_a_second_stop_signal_while_the_worker_stops_is_not_an_error(app, database_url, tmp_path, after):
    """Ctrl-C twice, or a service manager's SIGTERM after a script's, while the worker is starting (``after`` 0)
    or once it runs: the worker still stops, cleanly."""
    env = {**os.environ, "PROAPP_ENV": "development", "PROAPP_DATABASE_URL": database_url,
           "PROAPP_INSTANCE_PATH": str(tmp_path), "PROAPP_PHONE_KEYS": app.config["PHONE_KEYS"]}
    env.pop("PROAPP_TEST_DATABASE_URL", None)
    proc = subprocess.Popen([sys.executable, "-m", "proapp", "worker"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, cwd=Path(__file__).resolve().parents[2])
    try:
        started = ""
        deadline = clock.monotonic() + 30
        while clock.monotonic() < deadline and "started (gateway" not in started:
            started += proc.stdout.readline()
        clock.sleep(after)
        proc.send_signal(signal.SIGTERM)
        proc.send_signal(signal.SIGINT)
        output = started + proc.communicate(timeout=30)[0]
    finally:
        if proc.poll() is None:         # a worker that did not stop: the test fails, the process goes
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, output
    assert "Traceback" not in output and "stopped" in output


def test_a_patient_in_reunion_and_one_in_guadeloupe_get_their_sms_at_their_own_ten_oclock(sms_app, fake_twilio):
    from zoneinfo import ZoneInfo

    from proapp.jobs.worker import Worker
    from tests.sms.conftest import at, enrol, outbox

    start = datetime(2026, 6, 1, 2, tzinfo=UTC)       # 06:00 in Réunion, 22:00 (31 May) in Guadeloupe: quiet
    at(sms_app, start)
    anchor = datetime(2026, 6, 3).date()                         # W0 opens on 31 May (already open)
    reunion = enrol(sms_app, "ADU-TLS-501", anchor, tz="Indian/Reunion", phone="+262692123456")
    guadeloupe = enrol(sms_app, "ADU-TLS-502", anchor, tz="America/Guadeloupe", phone="+590690123456")
    w = Worker(sms_app)
    try:
        when = start
        while when < start + timedelta(days=1):
            at(sms_app, when)
            w.tick()
            when += timedelta(hours=1)
    finally:
        w.close()
    [r] = outbox(sms_app, reunion)
    [g] = outbox(sms_app, guadeloupe)
    assert r.submitted_at.astimezone(ZoneInfo("Indian/Reunion")).hour == 10 and r.submitted_at.hour == 6
    assert g.submitted_at.astimezone(ZoneInfo("America/Guadeloupe")).hour == 10 and g.submitted_at.hour == 14
