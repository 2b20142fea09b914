"""A lost phone key: the worker goes on for everyone else, the patients whose numbers it wrote are flagged for a
new number (their SMS no longer wait), and `proapp check` warns instead of refusing to start."""

from __future__ import annotations

from datetime import UTC, date, datetime

from cryptography.fernet import Fernet
from sqlalchemy import select

from proapp import db
from proapp.jobs.worker import Worker
from proapp.patients.models import PatientContact, PatientEvent
from proapp.sms.models import SmsStatus
from tests.conftest import PHONE_KEY, make_app
from tests.sms.conftest import at, enrol, outbox, twilio_settings

ENROLLED = datetime(2026, 3, 16, 6, tzinfo=UTC)
DUE = datetime(2026, 3, 16, 9, 30, tzinfo=UTC)


def test_a_lost_phone_key_flags_its_patients_and_the_worker_goes_on(sms_app, fake_twilio, database_url):
    lost_key = Fernet.generate_key().decode()
    at(sms_app, ENROLLED)
    kept = enrol(sms_app, "ADU-TLS-001", date(2026, 3, 17), phone="+33612345001")
    with_lost = make_app(database_url, PHONE_KEYS=f"{lost_key},{PHONE_KEY}", **twilio_settings(fake_twilio))
    try:
        lost = enrol(with_lost, "ADU-TLS-002", date(2026, 3, 17), phone="+33612345002", now=ENROLLED)
    finally:
        with_lost.extensions["proapp.engine"].dispose()
    worker = Worker(sms_app, worker_id="w1")          # PROAPP_PHONE_KEYS without the lost key
    try:
        worker.tick()
        at(sms_app, DUE)
        report = worker.tick()
    finally:
        worker.close()
    assert report["sms_sent"] == 1 and list(fake_twilio.bodies_by_number()) == ["+33612345001"]
    statuses = {r.id: (r.status, r.cancel_reason) for r in outbox(sms_app, lost)}
    assert set(statuses.values()) == {(SmsStatus.CANCELLED, "number_unusable")}
    assert {r.status for r in outbox(sms_app, kept) if r.visit_code == "W0" and r.kind == "invitation"} == \
        {SmsStatus.ACCEPTED}
    with sms_app.app_context():
        s = db.session()
        contact = s.get(PatientContact, lost)
        assert not contact.usable and "PROAPP_PHONE_KEYS" in contact.unusable_reason
        event = s.scalar(select(PatientEvent).where(PatientEvent.patient_id == lost,
                                                    PatientEvent.action == "phone_unusable"))
        assert event is not None and "phone key missing" in event.reason


def test_check_warns_about_numbers_a_lost_key_wrote_and_still_passes(sms_app, fake_twilio, database_url, tmp_path):
    from proapp.ops import deployment_problems
    from tests.test_ops import production_env

    at(sms_app, ENROLLED)
    enrol(sms_app, "ADU-TLS-001", date(2026, 3, 17), phone="+33612345001")
    with_lost = make_app(database_url, PHONE_KEYS=f"{Fernet.generate_key().decode()},{PHONE_KEY}")
    try:
        enrol(with_lost, "ADU-TLS-002", date(2026, 3, 17), phone="+33612345002", now=ENROLLED)
    finally:
        with_lost.extensions["proapp.engine"].dispose()
    problems = deployment_problems(production_env(database_url, fake_twilio, tmp_path))
    assert all(p.startswith("warning: ") for p in problems), problems     # warnings only: `proapp check` exits 0
    # Beside the warnings about the instruments' wording the study files accept, one about the phone numbers.
    keys = [p for p in problems if "wording that is not validated, accepted by the study file" not in p]
    assert len(keys) == 1, problems
    assert keys[0].startswith("warning: 1 of 2 stored phone numbers cannot be decrypted with PROAPP_PHONE_KEYS")
