"""Several web instances and several workers, as a hospital scales out: two gunicorn instances on one host (each
its own control socket and metrics folder) behind one nginx (the shipped site file, one upstream line each), two
``proapp worker`` processes, PostgreSQL freshly initialised (tables never analysed). The SMS and alert outboxes,
released at once when both workers are up, drain with every message sent once and both workers doing part of the
work; nginx shares the patients' requests between the instances; each instance logs one JSON line per request with
its request id and the patient's address from the proxy; ``/metrics`` and ``/readyz`` of each instance tell the
same story as the database."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import signal
from collections import Counter
from zoneinfo import ZoneInfo

import pytest
import requests
from sqlalchemy import insert, select, update

from proapp import db
from proapp.alerts.models import Alert, AlertNotification
from proapp.patients.enrolment import EnrolmentRequest, enroll_patient
from proapp.patients.models import Occurrence, Patient
from proapp.sms.delivery import SmsSettings, queue_invitations
from proapp.sms.models import SmsMessage
from proapp.studies.catalog import DEMO_CONTACTS
from tests.benchmarks._setup import free_port
from tests.conftest import PHONE_KEY, PRODUCTION_STUDIES, fresh_app
from tests.mailserver import smtp_server
from tests.ops.test_claims import _never_analysed
from tests.sms.fake_twilio import ACCOUNT_SID, AUTH_TOKEN, FakeTwilio
from tests.test_deployed import (
    AUDIT_KEYS,
    GUNICORN,
    NGINX,
    ROOT,
    Deployment,
    daytime_zone,
    nginx_conf,
    self_signed,
    wait_for,
)

pytestmark = [pytest.mark.requirement("DEPLOYED"), pytest.mark.postgres, pytest.mark.slow]

PATIENTS = 60            # one invitation each: three claims of 20 (2 s of sending at 10 SMS/s) and more
NURSES = 2               # alert e-mails per alert: 120 in all, claims of 50
LINKS_OPENED = 12
FAR = dt.datetime(2100, 1, 1, tzinfo=dt.UTC)


def _prepare(app, zone: str) -> None:
    """Patients enrolled, their invitations and one alert each with its e-mails queued, all held (due in 2100)."""
    catalog, vault = app.extensions["proapp.studies"], app.extensions["proapp.phones"]
    now = dt.datetime.now(dt.UTC)
    anchor = dt.datetime.now(ZoneInfo(zone)).date() - dt.timedelta(days=7)
    with app.app_context(), db.transaction() as s:
        for i in range(PATIENTS):
            enroll_patient(s, catalog, vault, EnrolmentRequest(
                "ADUSE", "TLS", f"ADU-TLS-{500 + i}", f"+3361230{i:04d}", "fr", anchor, timezone=zone,
                agreed_on=anchor), now=now)
        assert queue_invitations(s, now, SmsSettings.from_config(app.config)) == PATIENTS
        s.execute(update(SmsMessage).values(due_at=FAR))
        for patient in s.scalars(select(Patient)):
            occurrence = s.scalar(select(Occurrence.id).where(Occurrence.patient_id == patient.id))
            alert = Alert(study_id=patient.study_id, site_id=patient.site_id, patient_id=patient.id,
                          occurrence_id=occurrence, rule_code="topology", severity="review", source="completed",
                          rule_label={"en": "Topology check", "fr": "Vérification de la topologie"},
                          evidence=[], raised_at=now, notified_at=now)
            s.add(alert)
            s.flush()
            s.execute(insert(AlertNotification), [
                {"alert_id": alert.id, "step": 0, "channel": "email", "recipient": f"nurse{n}.{patient.id}@chu.test",
                 "recipient_kind": "coordinator", "language": "fr", "status": "pending", "created_at": now,
                 "due_at": FAR, "status_at": now, "attempts": 0} for n in range(NURSES)])
    _never_analysed(app, "sms_message", "alert_notification")


def _release(app) -> None:
    with app.app_context(), db.transaction() as s:
        now = dt.datetime.now(dt.UTC)
        s.execute(update(SmsMessage).where(SmsMessage.due_at == FAR).values(due_at=now))
        s.execute(update(AlertNotification).where(AlertNotification.due_at == FAR).values(due_at=now))


def _work_done(log: str) -> tuple[int, int]:
    """(SMS accepted by Twilio, alert e-mails sent) from one worker's log lines."""
    sms = sum(int(n) for n in re.findall(r": send_due Report\(queued=0, claimed=\d+, sent=(\d+)", log))
    mails = sum(int(n) for n in re.findall(r": alerts \{.*?'sent': (\d+)", log))
    return sms, mails


def _metric(body: str, name: str, **labels: str) -> float:
    wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
    pattern = re.escape(name) + (r"\{" + re.escape(wanted) + r"\}" if wanted else "") + r" (\S+)"
    found = re.findall(r"^" + pattern + "$", body, re.M)
    assert found, f"{name} {labels} not in /metrics"
    return float(found[0])


@pytest.fixture(scope="module")
def scaled(database_url, instance_dir, tmp_path_factory):
    if not os.path.exists(NGINX):
        pytest.fail(f"{NGINX} is missing: the test command installs Debian's nginx package")
    folder = tmp_path_factory.mktemp("topology")
    logs = folder / "logs"
    logs.mkdir()
    cert, key = self_signed(folder)
    tls_port, http_port, web = free_port(), free_port(), [free_port(), free_port()]
    app = fresh_app(database_url)
    zone = daytime_zone()
    _prepare(app, zone)
    with FakeTwilio() as twilio, smtp_server() as inbox:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PROAPP_")}
        env.update({
            "PROAPP_ENV": "production", "PROAPP_SECRET_KEY": "s" * 64, "PROAPP_DATABASE_URL": database_url,
            "PROAPP_PUBLIC_URL": f"https://127.0.0.1:{tls_port}", "PROAPP_PROXY_HOPS": "1",
            "PROAPP_PHONE_KEYS": PHONE_KEY, "PROAPP_AUDIT_KEYS": AUDIT_KEYS,
            "PROAPP_SMS_GATEWAY": "twilio", "PROAPP_TWILIO_ACCOUNT_SID": ACCOUNT_SID,
            "PROAPP_TWILIO_AUTH_TOKEN": AUTH_TOKEN, "PROAPP_TWILIO_API_BASE": twilio.base_url,
            "PROAPP_INSTANCE_PATH": str(folder / "instance"), "PROAPP_WEB_WORKERS": "1",
            "PROAPP_LOG_FORMAT": "json", "PROAPP_MAIL_GATEWAY": "smtp", "PROAPP_SMTP_URL": inbox.url,
            "PROAPP_MAIL_FROM": "proapp <no-reply@chu.test>", "PROAPP_SITE_CONTACTS": str(DEMO_CONTACTS),
            "PROAPP_STUDIES_DIR": str(PRODUCTION_STUDIES),
        })
        d = Deployment(f"https://127.0.0.1:{tls_port}", f"http://127.0.0.1:{http_port}", cert, logs, env, twilio,
                       app, inbox)
        try:
            for n, port in enumerate(web, 1):
                d.env = {**env, "PROAPP_BIND": f"127.0.0.1:{port}"}
                d.start(f"gunicorn{n}", GUNICORN)
            d.env = env
            d.start("nginx", [NGINX, "-c", str(nginx_conf(logs, tls_port=tls_port, http_port=http_port,
                                                          upstream=web, cert=cert, key=key))])
            for port in web:
                wait_for(lambda port=port: requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5).ok,
                         f"gunicorn on {port}", procs=tuple(d.procs.values()))
            for n in (1, 2):
                d.start(f"worker{n}", [str(ROOT / ".venv/bin/proapp"), "worker"])
            wait_for(lambda: len(_beats(app)) == 2, "both workers' first heartbeat", procs=tuple(d.procs.values()))
            _release(app)
            wait_for(lambda: len(twilio.messages) >= PATIENTS and len(inbox.all()) >= PATIENTS * NURSES,
                     "the SMS and the alert e-mails", seconds=120, procs=tuple(d.procs.values()))
            # A worker logs its pass once the pass is over (every outcome recorded): after the last message left.
            def reported() -> tuple[int, int]:
                done = [_work_done(d.all_logs()[f"worker{n}.log"]) for n in (1, 2)]
                return sum(sms for sms, _ in done), sum(mails for _, mails in done)

            wait_for(lambda: reported() == (PATIENTS, PATIENTS * NURSES), "the workers' reports of their passes",
                     seconds=60, procs=tuple(d.procs.values()))
            d.web_ports = web
            yield d
        finally:
            for name, proc in d.procs.items():     # the workers first, then gunicorn, then nginx (as stop() does)
                if proc.poll() is None:
                    proc.send_signal(signal.SIGQUIT if name == "nginx" else signal.SIGTERM)
            d.stop()                               # waits for each, and kills one that does not stop
            app.extensions["proapp.engine"].dispose()


def _beats(app) -> list[str]:
    from proapp.jobs.models import WorkerHeartbeat

    with app.app_context():
        return list(db.session().scalars(select(WorkerHeartbeat.worker)))


def test_two_workers_drain_both_outboxes_once_and_share_them(scaled):
    d = scaled
    assert d.twilio.duplicates() == []
    assert Counter(m.to for m in d.twilio.messages.values()) == {f"+3361230{i:04d}": 1 for i in range(PATIENTS)}
    recipients = Counter(m["To"] for m in d.inbox.all())
    assert len(recipients) == PATIENTS * NURSES and set(recipients.values()) == {1}
    logs = d.all_logs()
    done = {name: _work_done(logs[f"{name}.log"]) for name in ("worker1", "worker2")}
    assert sum(sms for sms, _ in done.values()) == PATIENTS, done
    assert sum(mails for _, mails in done.values()) == PATIENTS * NURSES, done
    assert all(sms > 0 and mails > 0 for sms, mails in done.values()), f"a worker idled: {done}"
    with d.app.app_context():
        s = db.session()
        assert set(s.scalars(select(SmsMessage.status))) <= {"accepted", "sent", "delivered"}
        assert set(s.scalars(select(AlertNotification.status))) == {"sent"}


def test_nginx_shares_patients_between_instances_which_log_json_lines(scaled):
    d = scaled
    links = [re.search(r"https://\S+/s/[A-Za-z0-9_-]+", m.body).group(0)
             for m in list(d.twilio.messages.values())[:LINKS_OPENED]]
    for link in links:
        page = requests.get(link, verify=str(d.cert), timeout=30)
        assert page.status_code == 200 and 'lang="fr"' in page.text
    def lines_now() -> dict[int, list[dict]]:
        logs = d.all_logs()
        return {n: [json.loads(line) for line in logs[f"gunicorn{n}.log"].splitlines() if line.startswith("{")]
                for n in (1, 2)}

    # gunicorn writes a request's line once the answer has gone: the last one may come just after it.
    wait_for(lambda: sum(r.get("path") == "/s/[redacted]" for rows in lines_now().values() for r in rows)
             >= LINKS_OPENED, "the request lines of the link openings")
    logs = d.all_logs()
    lines = lines_now()
    # A link opening is two requests (the link, then the questionnaire it redirects to), which nginx's round robin
    # may send to different instances: the patient's session cookie is good on both.
    patient = {n: [r for r in rows if r.get("path", "").startswith(("/s/", "/q"))] for n, rows in lines.items()}
    assert sum(1 for rows in patient.values() for r in rows if r["path"].startswith("/s/")) == LINKS_OPENED
    assert all(patient.values()), "nginx sent every patient request to one instance"
    for row in patient[1] + patient[2]:
        assert row["path"] in ("/s/[redacted]", "/q") and row["status"] in (200, 303)   # never the token
        assert row["client"] == "127.0.0.1" and row["peer"] == "127.0.0.1"
        assert re.fullmatch(r"[0-9a-f]{32}", row["request_id"]), row   # nginx's, in nginx's log line too
        assert row["request_id"] in logs["proapp.access.log"]
    everything = "\n".join(logs.values())
    assert not any(link.rsplit("/", 1)[1] in everything for link in links)
    for n in (1, 2):            # two instances on one host: each its own control socket, neither failed
        assert d.procs[f"gunicorn{n}"].poll() is None
        assert "Traceback" not in logs[f"gunicorn{n}.log"] and "Errno" not in logs[f"gunicorn{n}.log"]


def test_each_instance_reports_the_shared_database_in_metrics_and_readiness(scaled):
    d = scaled
    with d.app.app_context():
        sms = Counter(db.session().scalars(select(SmsMessage.status)))
    for port in d.web_ports:
        body = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
        assert {status: _metric(body, "proapp_outbox_messages", channel="sms", status=status) for status in sms} \
            == sms and sum(sms.values()) == PATIENTS
        assert _metric(body, "proapp_outbox_messages", channel="alert_notification", status="sent") == \
            PATIENTS * NURSES
        assert _metric(body, "proapp_outbox_oldest_due_seconds", channel="sms") == 0
        assert _metric(body, "proapp_alerts_open") == PATIENTS
        beats = re.findall(r'^proapp_worker_heartbeat_age_seconds\{worker="([^"]+)"\}', body, re.M)
        assert len(set(beats)) == 2
        ready = requests.get(f"http://127.0.0.1:{port}/readyz", timeout=10)
        assert ready.status_code == 200, ready.text
        # The public site never shows them.
        assert requests.get(d.url + "/metrics", verify=str(d.cert), timeout=10).status_code == 404
