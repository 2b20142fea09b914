"""Placing calls through the one outbox: exactly once with two workers, an unknown outcome found again at Twilio
(never placed twice), a dead worker's claim, and the console gateway in development."""

from __future__ import annotations

import re
import threading
from datetime import timedelta

from sqlalchemy import select

from proapp import db, runtime
from proapp.jobs.worker import Worker
from proapp.sms import delivery
from proapp.sms.models import SmsMessage, SmsStatus
from tests.conftest import fresh_app
from tests.remote import voice_helpers as vh
from tests.remote.voice_helpers import ENROLLED, W1_INVITATION, voice_patient
from tests.sms.conftest import at, outbox

fake_twilio, voice_app, worker = vh.fake_twilio, vh.voice_app, vh.worker


def test_two_workers_place_each_call_exactly_once(voice_app, fake_twilio):
    for i in range(24):
        voice_patient(voice_app, f"ADU-TLS-{600 + i}", phone=f"+336125{i:05d}")
    workers = [Worker(voice_app, worker_id=f"v{n}") for n in (1, 2)]
    at(voice_app, W1_INVITATION)
    workers[0].queue()
    reports = []
    threads = [threading.Thread(target=lambda w=w: reports.append(w.send_due())) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for w in workers:
        w.close()
    assert sum(r.sent for r in reports) == 24
    assert len(fake_twilio.calls) == 24 and set(fake_twilio.calls_by_number().values()) == {1}
    assert fake_twilio.messages == {}                          # calls only: no text went
    rows = [r for r in outbox(voice_app) if r.visit_code == "W1"]
    assert {r.status for r in rows} == {SmsStatus.ACCEPTED}
    assert {r.provider_sid for r in rows} == set(fake_twilio.calls)


def test_a_call_whose_answer_timed_out_is_found_at_twilio_not_placed_again(voice_app, worker, fake_twilio):
    pid = voice_patient(voice_app)
    fake_twilio.inject("timeout", seconds=1.5)                 # Twilio places the call; its answer comes too late
    at(voice_app, W1_INVITATION)
    worker.tick()
    [row] = [r for r in outbox(voice_app, pid) if r.visit_code == "W1"]
    assert row.status == SmsStatus.UNKNOWN
    at(voice_app, W1_INVITATION + timedelta(minutes=1))
    found = worker.reconcile()
    assert found.found == 1 and found.resent == 0
    [row] = [r for r in outbox(voice_app, pid) if r.visit_code == "W1"]
    [call] = fake_twilio.calls.values()
    assert (row.status, row.provider_sid) == (SmsStatus.ACCEPTED, call.sid)
    assert fake_twilio.requests["GET list calls"] == 1
    at(voice_app, W1_INVITATION + timedelta(minutes=5))
    worker.tick()
    assert len(fake_twilio.calls) == 1


def test_a_dead_workers_call_is_looked_up_then_placed_once(voice_app, worker, fake_twilio):
    pid = voice_patient(voice_app)
    at(voice_app, W1_INVITATION)
    worker.queue()
    with voice_app.app_context():                               # claimed and prepared, then the worker died
        with db.transaction() as s:
            ids = delivery.claim(s, "dead", runtime.now(), 10)
        with db.transaction() as s:
            ready = delivery.prepare(s, ids, worker="dead", now=runtime.now(), settings=worker.settings,
                                     vault=runtime.phone_vault(), gateway="twilio", catalog=runtime.studies())
    assert [o.channel for o in ready.outgoing] == ["voice"]
    at(voice_app, W1_INVITATION + timedelta(minutes=3))
    assert worker.reconcile().abandoned == 1
    [row] = [r for r in outbox(voice_app, pid) if r.visit_code == "W1"]
    assert row.status == SmsStatus.UNKNOWN                     # it may have been placed: looked up, not resent
    at(voice_app, W1_INVITATION + timedelta(minutes=5))
    assert worker.reconcile().resent == 1                      # not at Twilio after the grace: placed now
    worker.send_due()
    assert len(fake_twilio.calls) == 1
    at(voice_app, W1_INVITATION + timedelta(minutes=10))
    worker.tick()
    worker.reconcile()
    assert len(fake_twilio.calls) == 1


def test_the_console_gateway_records_the_call_for_the_development_page(database_url, instance_dir, fake_twilio):
    app = fresh_app(database_url, PRODUCTION=False)
    try:
        pid = voice_patient(app)
        at(app, ENROLLED)
        w = Worker(app, worker_id="console")
        at(app, W1_INVITATION)
        w.tick()
        w.close()
        [row] = [r for r in outbox(app, pid) if r.visit_code == "W1"]
        assert row.status == SmsStatus.ACCEPTED and row.provider_sid.startswith("CONSOLECA")
        with app.app_context():
            assert db.session().scalar(select(SmsMessage.channel).where(SmsMessage.id == row.id)) == "voice"
        client = app.test_client()
        page = client.get("/dev/sms").get_data(as_text=True)
        assert f"/dev/voice/{row.id}" in page and "Voice call" in page
        assert fake_twilio.calls == {}
        # The development page plays the phone: PIN, then the first question.
        page = client.get(f"/dev/voice/{row.id}").get_data(as_text=True)
        assert "Please enter your PIN, followed by the hash key." in page
        token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
        page = client.post(f"/dev/voice/{row.id}", data={"csrf_token": token, "digits": "2468#"}).get_data(
            as_text=True)
        assert "Finger ulcer diary" in page and "For Yes, press 1." in page
        page = client.post(f"/dev/voice/{row.id}", data={"csrf_token": token, "speech": "no",
                                                         "confidence": "0.95"}).get_data(as_text=True)
        assert "signs of infection" in page
    finally:
        app.extensions["proapp.engine"].dispose()
