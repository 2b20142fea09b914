"""The SMS of visits a reschedule of the anchor date moved: none sent twice, none lost (the real worker, the real
twilio SDK and a fake Twilio)."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import select

from proapp import db
from proapp.jobs.worker import Worker
from proapp.patients.actions import reschedule
from proapp.patients.models import Occurrence, Patient
from proapp.sms.models import SmsMessage
from tests.sms.conftest import at, enrol
from tests.sms.test_outbox import ENROLLED, GONE, local, tick

INJECTION = date(2026, 3, 19)          # W0 runs 16-18 March: open when the worker's clock starts (16 March, 07:00)


@pytest.fixture
def worker(sms_app):
    at(sms_app, ENROLLED)
    w = Worker(sms_app, worker_id="test-worker")
    yield w
    w.close()


def _move(app, pid: int, new: date) -> None:
    with app.app_context(), db.transaction() as s:
        reschedule(s, s.get(Patient, pid), new, actor="user:nurse@chu.test", reason="Cells not ready",
                   now=app.extensions["proapp.clock"].now(), signature={"meaning": "test", "method": "password"})


def _sms(app, pid: int, visit: str) -> list[tuple[int, str, str, str | None]]:
    """(round, kind, gone or status, cancel reason) of the visit's SMS, in the order they were queued."""
    with app.app_context():
        rows = db.session().execute(
            select(SmsMessage.round, SmsMessage.kind, SmsMessage.status, SmsMessage.cancel_reason)
            .join(Occurrence, Occurrence.id == SmsMessage.occurrence_id)
            .where(SmsMessage.patient_id == pid, Occurrence.visit_code == visit).order_by(SmsMessage.id)).all()
        return [(r, k, "gone" if st in GONE else st.value, why) for r, k, st, why in rows]


def test_a_visit_moved_out_of_its_open_window_is_invited_again_in_the_new_one(sms_app, worker, fake_twilio):
    pid = enrol(sms_app, "ADU-TLS-501", INJECTION)
    tick(worker, local(2026, 3, 16, 10))                         # W0 invitation
    at(sms_app, local(2026, 3, 17, 12))
    _move(sms_app, pid, date(2026, 4, 2))                        # W0 now 30 March - 1 April
    for when in (local(2026, 3, 18, 10), local(2026, 3, 26, 10)):
        tick(worker, when)                                       # the old reminder's and old W1's days: nothing
    assert len(fake_twilio.messages) == 1
    for when in (local(2026, 3, 30, 10), local(2026, 3, 31, 10), local(2026, 4, 1, 10)):
        tick(worker, when)
    # The new window's invitation, and its reminder two days later (its last day: one reminder that day).
    assert _sms(sms_app, pid, "W0") == [(0, "invitation", "gone", None), (1, "invitation", "gone", None),
                                        (1, "reminder_1", "gone", None)]
    assert _sms(sms_app, pid, "W1") == []                        # W1 opens on 9 April now
    tick(worker, local(2026, 4, 9, 10))
    assert _sms(sms_app, pid, "W1") == [(0, "invitation", "gone", None)]
    assert len(fake_twilio.messages) == 4


def test_an_invitation_waiting_to_go_is_cancelled_and_comes_in_the_new_window(sms_app, worker, fake_twilio):
    pid = enrol(sms_app, "ADU-TLS-502", INJECTION)
    assert tick(worker, local(2026, 3, 16, 7))["invitations"] == 1     # waits for 10:00
    _move(sms_app, pid, date(2026, 3, 26))                              # W0 now 23-26 March
    tick(worker, local(2026, 3, 16, 10))
    assert fake_twilio.messages == {}
    assert _sms(sms_app, pid, "W0") == [(0, "invitation", "cancelled", "rescheduled")]
    tick(worker, local(2026, 3, 23, 10))
    assert _sms(sms_app, pid, "W0") == [(0, "invitation", "cancelled", "rescheduled"),
                                        (1, "invitation", "gone", None)]
    assert len(fake_twilio.messages) == 1


def test_a_window_still_open_after_the_move_keeps_its_invitation_and_reminds_on_its_new_last_day(
        sms_app, worker, fake_twilio):
    pid = enrol(sms_app, "ADU-TLS-503", INJECTION)
    tick(worker, local(2026, 3, 16, 10))                         # invitation
    at(sms_app, local(2026, 3, 17, 8))
    # One day later: W0 17-19 March, open now. Its last day was the 18th, the day of the reminder two days after
    # the invitation (one reminder that day); it is the 19th now, with a reminder of its own.
    _move(sms_app, pid, date(2026, 3, 20))
    tick(worker, local(2026, 3, 18, 10))
    assert _sms(sms_app, pid, "W0") == [(0, "invitation", "gone", None), (0, "reminder_1", "gone", None)]
    tick(worker, local(2026, 3, 19, 10))
    assert _sms(sms_app, pid, "W0") == [(0, "invitation", "gone", None), (0, "reminder_1", "gone", None),
                                        (0, "reminder_2", "gone", None)]
    assert len(fake_twilio.messages) == 3
