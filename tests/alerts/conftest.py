"""Alerts fixtures: a real SMTP server and the fake Twilio on 127.0.0.1, staff accounts, a patient's diary."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask

from proapp import db
from proapp.accounts.models import Role
from proapp.accounts.staff import create_user
from proapp.jobs.worker import Worker
from tests.conftest import fresh_app
from tests.mailserver import Inbox, smtp_server
from tests.questionnaire.helpers import Patient, enrol_with_open_window, weekly_screens
from tests.sms.conftest import fake_twilio, twilio_settings  # noqa: F401  (a fixture used here)

PASSWORD = "correct horse battery"
USERS = {
    "coord_tls": ("tls@chu.test", Role.COORDINATOR, "ADUSE", "TLS", "fr"),
    "coord_psl": ("psl@chu.test", Role.COORDINATOR, "IMATINIB-SSC", "PSL", "en"),
    "admin": ("admin@chu.test", Role.ADMIN, None, None, "en"),
    "monitor": ("monitor@cro.test", Role.MONITOR, "ADUSE", None, "en"),
}
ON_CALL_EMAIL = "astreinte-tls@aduse.example"
ON_CALL_MOBILE = "+33639980101"


@pytest.fixture
def smtp() -> Iterator[Inbox]:
    with smtp_server() as inbox:
        yield inbox


def make_alert_app(database_url: str, smtp: Inbox, fake, **overrides) -> Flask:
    app = fresh_app(database_url, MAIL_GATEWAY="smtp", SMTP_URL=smtp.url, SMTP_TIMEOUT=5,
                    **twilio_settings(fake), **overrides)
    now = app.extensions["proapp.clock"].now()
    with app.app_context():
        s = db.session()
        for email, role, study, site, language in USERS.values():
            create_user(s, email=email, password=PASSWORD, role=role, now=now, study_code=study, site_code=site,
                        language=language)
        s.commit()
    return app


@pytest.fixture
def alert_app(database_url, instance_dir, smtp, fake_twilio) -> Iterator[Flask]:  # noqa: F811
    app = make_alert_app(database_url, smtp, fake_twilio)
    yield app
    app.extensions["proapp.engine"].dispose()


def worker(app: Flask, name: str = "w1") -> Worker:
    return Worker(app, worker_id=name)


def at(app: Flask, when: datetime) -> None:
    app.extensions["proapp.clock"].set(when)


def later(app: Flask, **delta) -> datetime:
    when = app.extensions["proapp.clock"].now() + timedelta(**delta)
    at(app, when)
    return when


def diary(app: Flask, subject: str, *, infect: str = "N", antibio: str = "N", pain: int = 35, submit: bool = True,
          visit: str = "W1", language: str = "fr", **answers: str) -> tuple[int, Patient]:
    """An ADUSE weekly diary through the patient's pages (no new ulcer), following the 'call your team' page."""
    pid, token = enrol_with_open_window(app, "ADUSE", visit, subject=subject, language=language)
    p = Patient(app.test_client(), token)
    p.open()
    p.start()
    for values in weekly_screens(str(pain), DU_INFECT=infect, DU_ANTIBIO=antibio, **answers):
        p.answer(**values)
        if p.path.startswith("/q/call"):
            p.get(re.search(r'class="button" href="([^"]+)"', p.page.text).group(1))
    assert p.path == "/q/review", p.path
    if submit:
        p.submit()
    return pid, p


def now_utc() -> datetime:
    return datetime.now(UTC)
