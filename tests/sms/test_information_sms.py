"""A new information sheet: the patients who agreed to an earlier version get one SMS (no health information)
whose link opens the information page, where they acknowledge the new version; exactly once, through the outbox."""

from __future__ import annotations

import pytest
import yaml
from sqlalchemy import select

from proapp import db
from proapp.jobs.worker import Worker
from proapp.patients.models import Agreement
from proapp.sms.models import SmsMessage
from proapp.studies.catalog import DEMO_CONTACTS, load_studies
from tests.conftest import INFORMATION, PRODUCTION_STUDIES, fresh_app
from tests.questionnaire.helpers import csrf, text
from tests.sms.conftest import at, enrol, twilio_settings
from tests.sms.test_outbox import ENROLLED, W0_ANCHOR, local, tick

pytestmark = pytest.mark.requirement("INFORMED")


@pytest.fixture
def informed(database_url, instance_dir, fake_twilio):
    app = fresh_app(database_url, STUDIES_DIR=str(PRODUCTION_STUDIES), **twilio_settings(fake_twilio))
    at(app, ENROLLED)
    worker = Worker(app, worker_id="test-worker")
    yield app, worker
    worker.close()
    app.extensions["proapp.engine"].dispose()


def _new_sheet(app, folder, version: str) -> None:
    """The study files deployed again with the information sheet at ``version``."""
    folder.mkdir()
    for path in PRODUCTION_STUDIES.glob("*.yaml"):
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        raw["information"] = {**INFORMATION, "version": version}
        (folder / path.name).write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    app.extensions["proapp.studies"] = load_studies(folder, app.extensions["proapp.instruments"], DEMO_CONTACTS,
                                                    demo_contacts=True)


def test_a_new_information_sheet_is_announced_once_by_sms_and_acknowledged_from_its_link(informed, fake_twilio,
                                                                                         tmp_path):
    app, worker = informed
    earlier = enrol(app, "ADU-TLS-601", W0_ANCHOR, phone="+33612345601")            # agreed to version 2.1
    tick(worker, local(2026, 3, 16, 10))                                         # W0 invitation
    assert len(fake_twilio.messages) == 1
    tick(worker, local(2026, 3, 18, 10))
    assert len(fake_twilio.messages) == 1                                        # nothing while 2.1 is current
    _new_sheet(app, tmp_path / "v22", "2.2")
    later = enrol(app, "ADU-TLS-602", W0_ANCHOR, phone="+33612345602", now=local(2026, 3, 18, 11))  # agreed to 2.2
    tick(worker, local(2026, 3, 18, 12))
    tick(worker, local(2026, 3, 19, 12))                                          # again: nothing more
    announced = [m for m in fake_twilio.messages.values() if "information" in m.body]
    assert [m.to for m in announced] == ["+33612345601"]
    [sms] = announced
    link = sms.body.rsplit(" ", 1)[1]
    assert sms.body == f"SuiviPRO : l'information sur l'étude et vos données a changé, merci de la lire : {link}"
    with app.app_context():
        kinds = list(db.session().scalars(select(SmsMessage.kind).where(SmsMessage.kind.like("info:%"))))
        assert kinds == ["info:2.2"]
        assert db.session().scalar(select(SmsMessage.id).where(SmsMessage.patient_id == later,
                                                                SmsMessage.kind.like("info:%"))) is None
    client = app.test_client()
    opened = client.get(link.removeprefix("https://pro.example.test"))
    assert opened.status_code == 303 and opened.headers["Location"].endswith("/q/information")
    page = client.get("/q/information").get_data(as_text=True)       # W0 is closed: the link still opens the sheet
    assert "Version 2.2" in text(page) or "version 2.2" in text(page)
    done = client.post("/q/information", data={"csrf_token": csrf(page), "version": "2.2"})
    assert "votre lecture de cette version est enregistrée" in text(done.get_data(as_text=True)).lower()
    with app.app_context():
        assert [(a.kind, a.information_version) for a in db.session().scalars(
            select(Agreement).where(Agreement.patient_id == earlier).order_by(Agreement.id))] == [
            ("agreement", "2.1"), ("acknowledgement", "2.2")]
    tick(worker, local(2026, 3, 20, 12))
    assert len([m for m in fake_twilio.messages.values() if "information" in m.body]) == 1


def test_the_information_sms_is_not_sent_to_a_patient_who_read_the_sheet_meanwhile(informed, fake_twilio, tmp_path):
    from proapp import runtime
    from proapp.patients.enrolment import acknowledge_information
    from proapp.patients.models import Patient
    from proapp.sms.models import SmsStatus

    app, worker = informed
    pid = enrol(app, "ADU-TLS-603", W0_ANCHOR, phone="+33612345603", hour=18)
    _new_sheet(app, tmp_path / "v22", "2.2")
    at(app, local(2026, 3, 18, 9))
    assert worker.queue()["information"] == 1                   # due at the patient's SMS hour, 18:00
    with app.app_context(), db.transaction() as s:            # read on a questionnaire page in the meantime
        acknowledge_information(s, s.get_one(Patient, pid), "2.2", now=runtime.now())
    tick(worker, local(2026, 3, 18, 18))
    assert not [m for m in fake_twilio.messages.values() if "information" in m.body]
    with app.app_context():
        sms = db.session().scalar(select(SmsMessage).where(SmsMessage.kind == "info:2.2"))
        assert (sms.status, sms.cancel_reason) == (SmsStatus.CANCELLED, "acknowledged")
