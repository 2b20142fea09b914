"""SMS fixtures: a fake Twilio on 127.0.0.1 driven by the real SDK, an app wired to it, and a movable clock."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime

import pytest
from flask import Flask

from proapp import db
from proapp.patients.enrolment import EnrolmentRequest, enroll_patient
from tests.conftest import fresh_app
from tests.helpers import agreed
from tests.sms.fake_twilio import ACCOUNT_SID, AUTH_TOKEN, FakeTwilio


@pytest.fixture
def fake_twilio() -> Iterator[FakeTwilio]:
    with FakeTwilio() as fake:
        yield fake


def twilio_settings(fake: FakeTwilio, **overrides) -> dict:
    settings = {"SMS_GATEWAY": "twilio", "TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
                "TWILIO_API_BASE": fake.base_url, "TWILIO_TIMEOUT": 1, "SMS_RATE_PER_SECOND": 0,
                "SMS_SENDER_NAME": "SuiviPRO"}
    settings.update(overrides)
    return settings


@pytest.fixture
def sms_app(database_url: str, instance_dir, fake_twilio: FakeTwilio) -> Iterator[Flask]:
    app = fresh_app(database_url, **twilio_settings(fake_twilio))
    yield app
    app.extensions["proapp.engine"].dispose()


def at(app: Flask, when: datetime) -> None:
    """Move the app's clock (the worker and the pages read it)."""
    app.extensions["proapp.clock"].set(when)


def enrol(app: Flask, subject: str, anchor: date, *, study: str = "ADUSE", site: str = "TLS",
          tz: str = "Europe/Paris", language: str = "fr", phone: str = "+33612345678", hour: int = 10,
          now: datetime | None = None) -> int:
    with app.app_context():
        s = db.session()
        patient = enroll_patient(s, app.extensions["proapp.studies"], app.extensions["proapp.phones"],
                                 EnrolmentRequest(study, site, subject, phone, language, anchor, tz, hour,
                                                  agreed_on=agreed(now or app.extensions["proapp.clock"].now())),
                                 now=now or app.extensions["proapp.clock"].now())
        s.commit()
        return patient.id


def outbox(app: Flask, patient_id: int | None = None) -> list:
    from sqlalchemy import select

    from proapp.patients.models import Occurrence
    from proapp.sms.models import SmsMessage

    with app.app_context():
        q = (select(SmsMessage.id, Occurrence.visit_code, SmsMessage.kind, SmsMessage.status, SmsMessage.due_at,
                    SmsMessage.submitted_at, SmsMessage.attempts, SmsMessage.provider_sid, SmsMessage.cancel_reason,
                    SmsMessage.error_code)
             .join(Occurrence, Occurrence.id == SmsMessage.occurrence_id).order_by(SmsMessage.id))
        if patient_id is not None:
            q = q.where(SmsMessage.patient_id == patient_id)
        return list(db.session().execute(q))
