"""Voice call fixtures: a fake Twilio that places calls and plays the phone, an app wired to it, a voice patient."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest
from flask import Flask
from sqlalchemy import select, update
from werkzeug.security import generate_password_hash

from proapp import db
from proapp.jobs.worker import Worker
from proapp.models import Patient, PatientContact, Site
from tests.conftest import fresh_app
from tests.sms.conftest import at, enrol, twilio_settings
from tests.sms.fake_twilio import CallDriver, FakeTwilio

PARIS = ZoneInfo("Europe/Paris")
ANCHOR = date(2026, 3, 16)                        # ADUSE injection day; W1's window runs 23-26 March
ENROLLED = datetime(2026, 3, 16, 6, tzinfo=UTC)
PUBLIC_URL = "https://pro.example.test"
PIN = "2468"


@pytest.fixture
def fake_twilio() -> Iterator[FakeTwilio]:
    with FakeTwilio() as fake:
        yield fake


@pytest.fixture
def voice_app(database_url: str, instance_dir, fake_twilio: FakeTwilio) -> Iterator[Flask]:
    app = fresh_app(database_url, **twilio_settings(fake_twilio, TWILIO_FROM="+33900000001"))
    fake_twilio.now = app.extensions["proapp.clock"].now
    yield app
    app.extensions["proapp.engine"].dispose()


@pytest.fixture
def worker(voice_app: Flask) -> Iterator[Worker]:
    at(voice_app, ENROLLED)
    w = Worker(voice_app, worker_id="voice-worker")
    yield w
    w.close()


def local(y: int, m: int, d: int, h: int, minute: int = 0) -> datetime:
    return datetime(y, m, d, h, minute, tzinfo=PARIS).astimezone(UTC)


W1_INVITATION = local(2026, 3, 23, 10)


def voice_patient(app, subject: str = "ADU-TLS-501", *, language: str = "en", phone: str = "+33612345678",
                  pin: str = PIN, site_phone: str | None = "+33561000000") -> int:
    at(app, ENROLLED)
    pid = enrol(app, subject, ANCHOR, language=language, phone=phone)
    with app.app_context(), db.transaction() as s:
        patient = s.get(Patient, pid)
        patient.answer_channel = "voice"
        s.get(PatientContact, pid).voice_pin_hash = generate_password_hash(pin)
        s.execute(update(Site).where(Site.id == patient.site_id).values(phone=site_phone))
    return pid


def place_call(app, worker: Worker, fake: FakeTwilio, when: datetime = W1_INVITATION) -> CallDriver:
    """The worker's tick at ``when`` places the call; the driver plays the phone that rings."""
    at(app, when)
    before = set(fake.calls)
    worker.tick()
    new = [sid for sid in fake.calls if sid not in before]
    assert len(new) == 1, f"{len(new)} calls placed"
    return fake.phone(app.test_client(), PUBLIC_URL, new[0])


def answers_of(app, pid: int) -> dict:
    from proapp.models import Answer, Occurrence, Response

    with app.app_context():
        rows = db.session().execute(
            select(Response.instrument_code, Answer.item_code, Answer.repeat_index, Answer.value, Answer.mode)
            .join(Response, Response.id == Answer.response_id)
            .join(Occurrence, Occurrence.id == Response.occurrence_id)
            .where(Occurrence.patient_id == pid)).all()
    return {(r[0], r[1], r[2]): (r[3], r[4]) for r in rows}


DIARY = {                                  # what the patient answers, by words of the question heard
    "new ulcer appeared": "1", "Which hand": "1", "Which finger": "3", "Where on the finger": "1",
    "How many days ago": "2#", "another new ulcer": "2", "0 to 10": "6#",
}


def answer_the_questions(call: CallDriver, answers: dict[str, str] | None = None, *, stop_after: int | None = None,
                         confirm: str = "1") -> int:
    """Answer every question as ``answers`` says (No to the others), confirm each read-back. Returns the number of
    questions answered."""
    answers = answers or DIARY
    asked = 0
    for _ in range(60):
        if call.ended or (stop_after is not None and asked >= stop_after):
            return asked
        heard = call.last
        if "Press 1 to confirm, 2 to answer" in heard or "pour confirmer, sur 2 pour répondre" in heard:
            call.press(confirm)
            continue
        asked += 1
        keys = next((k for words, k in answers.items() if words in heard.split("You answered")[0]), "2")
        call.press(keys)
    raise AssertionError("the call never ended")
