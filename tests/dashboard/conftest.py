"""Dashboard fixtures: staff accounts of every role, a fixed clock, and a signed-in test client."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from types import SimpleNamespace

import pytest
from flask import Flask
from sqlalchemy import select

from proapp import db
from proapp.accounts.models import Role
from proapp.accounts.staff import create_user
from proapp.patients.enrolment import EnrolmentRequest, enroll_patient
from proapp.patients.models import Occurrence
from proapp.questionnaire.answering import issue_link
from tests.conftest import fresh_app
from tests.helpers import agreed

NOW = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)        # 10:00 in Paris
PASSWORD = "correct horse battery"
USERS = {
    "admin": ("admin@chu.test", Role.ADMIN, None, None),
    "coord_psl": ("psl@chu.test", Role.COORDINATOR, "IMATINIB-SSC", "PSL"),
    "coord_bsa": ("bsa@chu.test", Role.COORDINATOR, "IMATINIB-SSC", "BSA"),
    "monitor": ("monitor@cro.test", Role.MONITOR, "IMATINIB-SSC", None),
}


@pytest.fixture
def dash_app(database_url: str, instance_dir) -> Iterator[Flask]:
    app = fresh_app(database_url, NOW=NOW)
    with app.app_context():
        s = db.session()
        for email, role, study, site in USERS.values():
            create_user(s, email=email, password=PASSWORD, role=role, now=NOW, study_code=study, site_code=site,
                        language="en")
        s.commit()
    yield app
    app.extensions["proapp.engine"].dispose()


def enrol(app: Flask, subject: str, *, study: str = "IMATINIB-SSC", site: str = "PSL", days_ago: int = 30,
          language: str = "fr", phone: str = "+33612345678") -> int:
    """Enrol a patient whose anchor date is ``days_ago`` days before the clock (IMATINIB M1 opens on day 23)."""
    with app.app_context():
        s = db.session()
        anchor = (app.extensions["proapp.clock"].now() - timedelta(days=days_ago)).date()
        p = enroll_patient(s, app.extensions["proapp.studies"], app.extensions["proapp.phones"],
                           EnrolmentRequest(study, site, subject, phone, language, anchor, "Europe/Paris",
                                            agreed_on=agreed(app.extensions["proapp.clock"].now())),
                           now=app.extensions["proapp.clock"].now())
        s.commit()
        return p.id


def occurrence(app: Flask, patient_id: int, visit: str) -> SimpleNamespace:
    with app.app_context():
        occ = db.session().scalar(select(Occurrence).where(Occurrence.patient_id == patient_id,
                                                           Occurrence.visit_code == visit))
        return SimpleNamespace(id=occ.id, visit_code=occ.visit_code, status=occ.status)


def link_for(app: Flask, patient_id: int, visit: str) -> str:
    with app.app_context():
        s = db.session()
        occ = s.scalar(select(Occurrence).where(Occurrence.patient_id == patient_id, Occurrence.visit_code == visit))
        token = issue_link(s, occ, app.extensions["proapp.clock"].now())
        s.commit()
        return token


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


class Staff:
    """A browser without JavaScript, signed in as one staff member."""

    def __init__(self, app: Flask, who: str | None):
        self.client = app.test_client()
        self.client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "en"    # before sign-in; then the account's language
        self.token = None
        if who is not None:
            self.login(USERS[who][0], PASSWORD, expect=303)

    def login(self, email: str, password: str, expect: int | None = None):
        page = self.client.get("/staff/login")
        resp = self.client.post("/staff/login", data={"email": email, "password": password,
                                                      "csrf_token": csrf_of(page.get_data(as_text=True))})
        if expect is not None:
            assert resp.status_code == expect, resp.get_data(as_text=True)[:500]
        if resp.status_code == 303:
            self.token = csrf_of(self.client.get("/staff/").get_data(as_text=True))
        return resp

    def get(self, path: str, **kw):
        return self.client.get(path, **kw)

    def post(self, path: str, data: dict | None = None, **kw):
        if self.token is None:
            page = self.client.get("/staff/login")
            self.token = csrf_of(page.get_data(as_text=True))
        return self.client.post(path, data={"csrf_token": self.token, **(data or {})}, **kw)


def text_of(resp) -> str:
    from html import unescape

    return unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", resp.get_data(as_text=True))))


def day(n: int) -> date:
    return (NOW + timedelta(days=n)).date()
