"""Pushing responses to an EDC endpoint (a fake EDC on 127.0.0.1): signed, retried with backoff until accepted,
each response delivered once, and the delivery log shown to admins."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from sqlalchemy import select

from proapp import db
from proapp.export.models import PushDelivery
from proapp.studies.catalog import DATA_DIR
from tests.conftest import fresh_app
from tests.export.conftest import complete_diary

SECRET = "edc-shared-secret-for-tests"


class FakeEdc:
    def __init__(self):
        self.received: list[tuple[dict, dict, bytes]] = []
        self.fail_next = 0
        self.redirect_to: str | None = None
        edc = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if edc.redirect_to:
                    self.send_response(307)
                    self.send_header("Location", edc.redirect_to)
                    self.end_headers()
                    return
                if edc.fail_next:
                    edc.fail_next -= 1
                    self.send_response(503)
                    self.end_headers()
                    return
                edc.received.append((dict(self.headers), json.loads(body), body))
                self.send_response(201)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/proapp-inbox"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def edc():
    fake = FakeEdc()
    yield fake
    fake.close()


@pytest.fixture
def push_app(database_url, instance_dir, tmp_path, edc, monkeypatch):
    monkeypatch.setenv("PROAPP_EDC_SECRET_ADUSE", SECRET)
    text = (Path(DATA_DIR) / "ADUSE.yaml").read_text()
    text = text.replace("\nedc:\n", f"\nedc:\n  push: {{url: \"{edc.url}\", secret_env: PROAPP_EDC_SECRET_ADUSE}}\n", 1)
    (tmp_path / "ADUSE.yaml").write_text(text)
    app = fresh_app(database_url, STUDIES_DIR=str(tmp_path))
    yield app
    app.extensions["proapp.engine"].dispose()


def _push(app, now=None):
    from proapp.jobs.worker import Worker

    if now is not None:
        app.extensions["proapp.clock"].set(now)
    worker = Worker(app)
    try:
        return worker.push()
    finally:
        worker.close()


@pytest.mark.requirement("EXPORT")
def test_each_response_is_pushed_once_signed(push_app, edc):
    complete_diary(push_app, "ADU-TLS-001")
    report = _push(push_app)
    assert (report.queued, report.sent, report.retry) == (2, 2, 0)
    assert [body["instrument"]["code"] for _h, body, _raw in edc.received] == ["DU_DIARY", "PAIN_VAS"]
    headers, body, raw = edc.received[0]
    stamp, mac = (part.split("=", 1)[1] for part in headers["X-Proapp-Signature"].split(","))
    expected = hmac.new(SECRET.encode(), f"{stamp}.".encode() + raw, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(mac, expected)
    assert headers["Idempotency-Key"] == f"proapp-response-{body['id']}-r0"
    assert body["answers"]["DU_HAND"] == ["R", "L"]
    again = _push(push_app)
    assert (again.queued, again.sent) == (0, 0) and len(edc.received) == 2


def test_a_refusing_edc_gets_retries_with_backoff_until_it_accepts(push_app, edc):
    complete_diary(push_app, "ADU-TLS-001", ulcers=0)
    edc.fail_next = 4                       # two responses refused twice each
    t0 = datetime.now(UTC)
    first = _push(push_app, t0)
    assert (first.sent, first.retry) == (0, 2)
    assert _push(push_app, t0 + timedelta(seconds=10)).sent == 0        # not due yet (30 s)
    second = _push(push_app, t0 + timedelta(seconds=31))
    assert (second.sent, second.retry) == (0, 2)
    assert _push(push_app, t0 + timedelta(seconds=70)).sent == 0        # the next wait is 60 s
    third = _push(push_app, t0 + timedelta(seconds=92))
    assert third.sent == 2 and len(edc.received) == 2
    with push_app.app_context():
        rows = db.session().scalars(select(PushDelivery)).all()
        assert {(r.status, r.attempts, r.last_status_code) for r in rows} == {("sent", 3, 201)}


def test_the_delivery_log_is_for_admins(push_app, edc):
    from proapp.accounts.models import Role
    from proapp.accounts.staff import create_user
    from tests.dashboard.conftest import PASSWORD, Staff

    with push_app.app_context():
        s = db.session()
        create_user(s, email="admin@chu.test", password=PASSWORD, role=Role.ADMIN, now=datetime.now(UTC),
                    language="en")
        create_user(s, email="nurse@chu.test", password=PASSWORD, role=Role.COORDINATOR, now=datetime.now(UTC),
                    study_code="ADUSE", language="en")
        s.commit()
    complete_diary(push_app, "ADU-TLS-001", ulcers=0)
    edc.fail_next = 1
    _push(push_app)
    admin = Staff(push_app, None)
    admin.login("admin@chu.test", PASSWORD, expect=303)
    page = admin.get("/staff/deliveries").get_data(as_text=True)
    assert "Waiting for a retry" in page and "503" in page and edc.url in page
    nurse = Staff(push_app, None)
    nurse.login("nurse@chu.test", PASSWORD, expect=303)
    assert nurse.get("/staff/deliveries").status_code == 403


def test_a_corrected_response_is_pushed_again(push_app, edc):
    from datetime import UTC, datetime

    from proapp.questionnaire.corrections import Source, correct_answer
    from proapp.questionnaire.models import Response

    pid = complete_diary(push_app, "ADU-TLS-001", ulcers=0)
    assert _push(push_app).sent == 2
    with push_app.app_context():
        s = db.session()
        r = s.scalar(select(Response).where(Response.instrument_code == "PAIN_VAS"))
        correct_answer(s, push_app.extensions["proapp.instruments"], r, item_code="PAIN_VAS", repeat=0, value="20",
                       reason="typo on the phone", actor="user:nurse@chu.test", patient_id=pid,
                       now=datetime.now(UTC), source=Source("other"))
        s.commit()
    again = _push(push_app)
    assert (again.queued, again.sent) == (1, 1)
    headers, body, _raw = edc.received[-1]
    assert body["revision"] == 1 and body["answers"]["PAIN_VAS"] == "20" and body["scores"]["PAIN"] == 20
    first_key = next(h["Idempotency-Key"] for h, b, _r in edc.received if b["id"] == body["id"] and not b["revision"])
    assert headers["Idempotency-Key"] == f"proapp-response-{body['id']}-r1" != first_key   # a new message


def test_a_redirect_is_never_followed(push_app, edc):
    """Issue 28, finding 6: a 307 would re-post the response, its signature and its idempotency key to another
    address. The push stays where it was sent: a failed delivery, retried, shown in the log."""
    from proapp.accounts.models import Role
    from proapp.accounts.staff import create_user
    from tests.dashboard.conftest import PASSWORD, Staff

    elsewhere = FakeEdc()
    try:
        edc.redirect_to = elsewhere.url
        complete_diary(push_app, "ADU-TLS-001", ulcers=0)
        report = _push(push_app)
        assert (report.sent, report.retry) == (0, 2)
        assert elsewhere.received == [] and edc.received == []
    finally:
        elsewhere.close()
    with push_app.app_context():
        s = db.session()
        rows = s.scalars(select(PushDelivery)).all()
        assert {(r.status, r.last_status_code) for r in rows} == {("pending", 307)}
        assert all("redirect, not followed" in r.last_error for r in rows)
        create_user(s, email="admin@chu.test", password=PASSWORD, role=Role.ADMIN, now=datetime.now(UTC),
                    language="en")
        s.commit()
    admin = Staff(push_app, None)
    admin.login("admin@chu.test", PASSWORD, expect=303)
    page = admin.get("/staff/deliveries").get_data(as_text=True)
    assert "307" in page and "redirect, not followed" in page


def test_production_refuses_a_push_endpoint_that_is_not_https(database_url, instance_dir, tmp_path, edc, monkeypatch):
    from cryptography.fernet import Fernet

    from proapp.studies.catalog import StudyFileError
    from tests.conftest import PRODUCTION_MAIL, PRODUCTION_STUDIES, make_app

    monkeypatch.setenv("PROAPP_EDC_SECRET_ADUSE", SECRET)
    # The study files as production accepts them (their information, their wording accepted), the push added.
    (tmp_path / "IMATINIB-SSC.yaml").write_text((PRODUCTION_STUDIES / "IMATINIB-SSC.yaml").read_text())
    text = (PRODUCTION_STUDIES / "ADUSE.yaml").read_text()
    (tmp_path / "ADUSE.yaml").write_text(text.replace(
        "\nedc:\n", f"\nedc:\n  push: {{url: \"{edc.url}\", secret_env: PROAPP_EDC_SECRET_ADUSE}}\n", 1))
    production = dict(ENV="production", SECRET_KEY="p" * 64, PHONE_KEYS=Fernet.generate_key().decode(),
                      AUDIT_KEYS="k1:" + "ab" * 32, SMS_GATEWAY="twilio", TWILIO_ACCOUNT_SID="AC" + "0" * 32,
                      TWILIO_AUTH_TOKEN="t" * 32, **{**PRODUCTION_MAIL, "STUDIES_DIR": str(tmp_path)})
    with pytest.raises(StudyFileError, match="the EDC endpoint must be https://"):
        make_app(database_url, **production)
    make_app(database_url, **{**production, "ENV": "development"}).extensions["proapp.engine"].dispose()


def test_a_push_refused_to_the_last_try_is_given_up_and_shown(push_app, edc):
    """The one outbox's rule for pushes: PROAPP_PUSH_MAX_ATTEMPTS tries, then failed (the EDC still pulls)."""
    from proapp.accounts.models import Role
    from proapp.accounts.staff import create_user
    from tests.dashboard.conftest import PASSWORD, Staff

    push_app.config["PUSH_MAX_ATTEMPTS"] = 2
    complete_diary(push_app, "ADU-TLS-001", ulcers=0)
    edc.fail_next = 100
    t0 = datetime.now(UTC)
    assert (_push(push_app, t0).retry, _push(push_app, t0 + timedelta(seconds=31)).failed) == (2, 2)
    assert _push(push_app, t0 + timedelta(days=1)).claimed == 0          # given up: never tried again
    with push_app.app_context():
        s = db.session()
        assert {(r.status, r.attempts) for r in s.scalars(select(PushDelivery))} == {("failed", 2)}
        create_user(s, email="admin@chu.test", password=PASSWORD, role=Role.ADMIN, now=datetime.now(UTC),
                    language="en")
        s.commit()
    admin = Staff(push_app, None)
    admin.login("admin@chu.test", PASSWORD, expect=303)
    page = admin.get("/staff/deliveries?status=failed").get_data(as_text=True)
    assert page.count("Given up</span>") == 2 and "HTTP 503" in page


def test_a_push_claimed_by_a_worker_that_stopped_goes_again_once(push_app, edc):
    """A worker killed between its claim and the EDC's answer: after the lease the delivery goes back to the
    queue and is sent by another worker, with the same idempotency key (the EDC keeps one copy)."""
    from proapp.export import push

    complete_diary(push_app, "ADU-TLS-001", ulcers=0)
    t0 = datetime.now(UTC)
    with push_app.app_context(), db.transaction() as s:
        push.queue(s, push_app.extensions["proapp.studies"], t0)
    with push_app.app_context(), db.transaction() as s:
        assert len(push.claim(s, "dead-worker", t0)) == 2            # ... and it died here
    assert _push(push_app, t0 + timedelta(seconds=30)).claimed == 0    # still its claim
    report = _push(push_app, t0 + push.LEASE + timedelta(seconds=1))
    assert (report.claimed, report.sent) == (2, 2) and len(edc.received) == 2
    with push_app.app_context():
        assert {r.status for r in db.session().scalars(select(PushDelivery))} == {"sent"}
