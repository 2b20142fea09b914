"""One call through the deployed stack (tests/test_deployed.py's: nginx terminating TLS with the shipped site file,
gunicorn in production mode, PostgreSQL, one ``proapp worker``): the worker places the call through the real
``twilio`` SDK to the fake Twilio, whose driver plays the phone by posting the signed webhooks over HTTPS through
nginx. The diary is stored with its modes, the row delivered, and no log holds the PIN or the phone number."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
import requests
from sqlalchemy import select, update
from werkzeug.security import generate_password_hash

from proapp import db
from proapp.models import Occurrence, OccurrenceStatus, Patient, PatientContact
from proapp.sms.models import SmsMessage, SmsStatus
from tests import test_deployed
from tests.remote.voice_helpers import answer_the_questions
from tests.sms.fake_twilio import CallDriver

pytestmark = [pytest.mark.requirement("DEPLOYED"), pytest.mark.postgres, pytest.mark.slow]

deployed = test_deployed.deployed
PHONE_V = "+33611223344"
PIN = "739164"


class _Https:
    """What the call driver needs of a client: post a form and read the answer, here over TLS through nginx."""

    def __init__(self, base: str, cert: str):
        self.base, self.cert = base, cert

    def post(self, path: str, data: dict, headers: dict) -> _Answer:
        return _Answer(requests.post(self.base + path, data=data, headers=headers, verify=self.cert, timeout=30))


class _Answer:
    def __init__(self, resp: requests.Response):
        self.status_code, self.text = resp.status_code, resp.text

    def get_data(self, as_text: bool = True) -> str:
        return self.text


def test_a_weekly_diary_answered_by_a_call_through_the_deployed_stack(deployed):
    d = deployed
    zone = test_deployed.daytime_zone()
    anchor = (dt.datetime.now(ZoneInfo(zone)).date() - dt.timedelta(days=7)).isoformat()
    d.cli("enroll", "--study", "ADUSE", "--site", "TLS", "--subject", "ADU-TLS-151", "--phone", PHONE_V,
          "--language", "en", "--anchor-date", anchor, "--timezone", zone, "--agreed-on", anchor)
    with d.app.app_context(), db.transaction() as s:
        patient = s.scalars(select(Patient).where(Patient.subject_id == "ADU-TLS-151")).one()
        patient.answer_channel = "voice"
        s.execute(update(PatientContact).where(PatientContact.patient_id == patient.id)
                  .values(voice_pin_hash=generate_password_hash(PIN)))
        pid = patient.id
    d.cli("tick")
    test_deployed.wait_for(lambda: any(c.to == PHONE_V for c in d.twilio.calls.values()), "the call to the patient")
    [call] = [c for c in d.twilio.calls.values() if c.to == PHONE_V]
    assert call.url.startswith(d.url + "/voice/answer/")
    phone = CallDriver(d.twilio, call, _Https(d.url, str(d.cert)), d.url)
    phone.pick_up()
    assert phone.last_status == 200 and "PIN" in phone.last
    phone.press(PIN + "#")
    answer_the_questions(phone)
    assert phone.ended and phone.said[-1] == "Your questionnaire is complete. Thank you, goodbye."
    assert phone.last_status == 204                                   # the status callback, through nginx
    with d.app.app_context():
        s = db.session()
        w1 = s.scalars(select(Occurrence).where(Occurrence.patient_id == pid, Occurrence.visit_code == "W1")).one()
        assert w1.status == OccurrenceStatus.COMPLETED
        row = s.scalars(select(SmsMessage).where(SmsMessage.occurrence_id == w1.id)).one()
        assert (row.channel, row.status, row.provider_sid) == ("voice", SmsStatus.DELIVERED, call.sid)
    d.app.extensions["proapp.engine"].dispose()
    for name, text in d.all_logs().items():
        for leak in (PIN, *test_deployed.phone_forms(PHONE_V)):
            assert leak not in text, (name, leak)
