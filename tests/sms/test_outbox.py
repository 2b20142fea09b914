"""The outbox end to end through the real twilio SDK and a fake Twilio on 127.0.0.1, with a movable clock."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from proapp import db
from proapp.jobs.worker import Worker
from proapp.patients.models import Occurrence, OccurrenceStatus, PatientContact, PatientEvent
from proapp.sms.models import SmsMessage, SmsStatus
from tests.sms.conftest import at, enrol, outbox

PARIS = ZoneInfo("Europe/Paris")
ANCHOR = date(2026, 3, 16)                         # ADUSE injection day (a Monday); W1 opens on 23 March
W0_ANCHOR = date(2026, 3, 17)                      # W0 (days -3 to -1) runs 14-16 March: open at ENROLLED
ENROLLED = datetime(2026, 3, 16, 6, tzinfo=UTC)   # 07:00 in Paris, before the W0 invitation hour
GONE = (SmsStatus.ACCEPTED, SmsStatus.SENT, SmsStatus.DELIVERED)


def local(y, m, d, h, minute=0, tz=PARIS) -> datetime:
    return datetime(y, m, d, h, minute, tzinfo=tz).astimezone(UTC)


def tick(worker: Worker, when: datetime) -> dict:
    at(worker.app, when)
    return worker.tick()


@pytest.fixture
def worker(sms_app):
    at(sms_app, ENROLLED)
    w = Worker(sms_app, worker_id="test-worker")
    yield w
    w.close()


def complete(app, patient_id: int, visit: str, when: datetime) -> None:
    with app.app_context(), db.transaction() as s:
        occ = s.scalar(select(Occurrence).where(Occurrence.patient_id == patient_id, Occurrence.visit_code == visit))
        occ.status, occ.completed_at, occ.completed_on_site = OccurrenceStatus.COMPLETED, when, False


def test_the_invitation_reaches_twilio_with_a_working_link_and_its_callback(sms_app, worker, fake_twilio):
    pid = enrol(sms_app, "ADU-TLS-001", W0_ANCHOR)
    # Enrolled at 07:00 (quiet hours) in a window already open: the invitation waits for 10:00.
    assert tick(worker, ENROLLED)["invitations"] == 1
    assert tick(worker, local(2026, 3, 16, 9, 59))["sms_sent"] == 0
    report = tick(worker, local(2026, 3, 16, 10))
    assert report["invitations"] == 0 and report["sms_sent"] == 1        # queued by the earlier tick
    [sent] = fake_twilio.messages.values()
    assert sent.to == "+33612345678" and sent.sender == "SuiviPRO"
    # The patient's first SMS names the information on their data (tests/sms/test_first_sms.py).
    assert sent.body.startswith("SuiviPRO : 1er questionnaire, jusqu'au 16/03 inclus. Vos données et droits : voir ")
    [row] = outbox(sms_app, pid)
    assert (row.visit_code, row.kind, row.status, row.provider_sid) == ("W0", "invitation", SmsStatus.ACCEPTED,
                                                                        sent.sid)
    assert sent.status_callback == f"https://pro.example.test/sms/status/{row.id}"
    # The link in the SMS opens the questionnaire.
    client = sms_app.test_client()
    link = sent.body.rsplit(" ", 1)[1]
    assert link.startswith("https://pro.example.test/s/")
    resp = client.get(link.removeprefix("https://pro.example.test"))
    assert resp.status_code == 303 and resp.headers["Location"].endswith("/q")
    # Nothing more is sent on later ticks of the same day.
    tick(worker, local(2026, 3, 16, 12))
    assert len(fake_twilio.messages) == 1


def _post_callback(client, fake, sid, status, error_code=None, signature=None):
    url, params, sig = fake.callback(sid, status, error_code)
    return client.post(url.removeprefix("https://pro.example.test"), data=params,
                       headers={"X-Twilio-Signature": signature if signature is not None else sig})


def test_status_callbacks_need_twilio_signature_and_keep_the_furthest_state(sms_app, worker, fake_twilio):
    pid = enrol(sms_app, "ADU-TLS-002", W0_ANCHOR)
    tick(worker, local(2026, 3, 16, 10))
    [sent] = fake_twilio.messages.values()
    client = sms_app.test_client()
    assert _post_callback(client, fake_twilio, sent.sid, "delivered", signature="").status_code == 403
    assert _post_callback(client, fake_twilio, sent.sid, "delivered", signature="bm9wZQ==").status_code == 403
    assert outbox(sms_app, pid)[0].status == SmsStatus.ACCEPTED          # nothing stored from a forged report
    assert _post_callback(client, fake_twilio, sent.sid, "sent").status_code == 204
    assert outbox(sms_app, pid)[0].status == SmsStatus.SENT
    assert _post_callback(client, fake_twilio, sent.sid, "delivered").status_code == 204
    assert _post_callback(client, fake_twilio, sent.sid, "delivered").status_code == 204   # twice
    assert _post_callback(client, fake_twilio, sent.sid, "sent").status_code == 204        # late, out of order
    assert outbox(sms_app, pid)[0].status == SmsStatus.DELIVERED


def test_without_a_delivery_report_twilio_is_asked_after_half_an_hour(sms_app, worker, fake_twilio):
    pid = enrol(sms_app, "ADU-TLS-015", W0_ANCHOR)
    ten = local(2026, 3, 16, 10)
    tick(worker, ten)
    assert tick(worker, ten + timedelta(minutes=29))["polled"] == 0
    assert outbox(sms_app, pid)[0].status == SmsStatus.ACCEPTED
    assert tick(worker, ten + timedelta(minutes=31))["polled"] == 1
    assert outbox(sms_app, pid)[0].status == SmsStatus.DELIVERED
    assert tick(worker, ten + timedelta(hours=2))["polled"] == 0          # final: never asked again
    assert fake_twilio.requests["GET fetch"] == 1


def test_undelivered_is_flagged_and_an_opted_out_number_is_marked_unusable(sms_app, worker, fake_twilio):
    pid = enrol(sms_app, "ADU-TLS-003", W0_ANCHOR)
    tick(worker, local(2026, 3, 16, 10))
    [sent] = fake_twilio.messages.values()
    client = sms_app.test_client()
    assert _post_callback(client, fake_twilio, sent.sid, "undelivered", 21610).status_code == 204
    [row] = outbox(sms_app, pid)
    assert row.status == SmsStatus.UNDELIVERED and row.error_code == 21610
    with sms_app.app_context():
        contact = db.session().get(PatientContact, pid)
        assert not contact.usable and "STOP" in contact.unusable_reason
        events = db.session().scalars(select(PatientEvent.action).where(PatientEvent.patient_id == pid)).all()
        assert events == ["phone_unusable"]
    # No reminder and no further invitation reach an unusable number.
    for day in range(17, 31):
        tick(worker, local(2026, 3, day, 10))
    assert len(fake_twilio.messages) == 1


@pytest.mark.parametrize("code", [21614, 21610])
def test_a_number_twilio_refuses_for_good_is_not_retried(sms_app, worker, fake_twilio, code):
    pid = enrol(sms_app, "ADU-TLS-004", W0_ANCHOR, phone="+33687654321")
    fake_twilio.refuse["+33687654321"] = code
    report = tick(worker, local(2026, 3, 16, 10))
    assert report["sms_failed"] == 1
    [row] = outbox(sms_app, pid)
    assert row.status == SmsStatus.FAILED and row.error_code == code and row.attempts == 1
    with sms_app.app_context():
        assert db.session().get(PatientContact, pid).usable is False
    for day in range(17, 25):
        tick(worker, local(2026, 3, day, 10))
    assert fake_twilio.requests["POST create"] == 1


@pytest.mark.parametrize("fault", ["500", "429"])
def test_temporary_errors_are_retried_with_exponential_backoff(sms_app, worker, fake_twilio, fault):
    pid = enrol(sms_app, "ADU-TLS-005", W0_ANCHOR)
    fake_twilio.inject(fault, count=2)
    ten = local(2026, 3, 16, 10)
    assert tick(worker, ten)["sms_retry"] == 1
    [row] = outbox(sms_app, pid)
    assert row.status == SmsStatus.PENDING and row.due_at == ten + timedelta(seconds=30)
    assert tick(worker, ten + timedelta(seconds=29))["sms_claimed"] == 0        # not before its time
    assert tick(worker, ten + timedelta(seconds=30))["sms_retry"] == 1
    assert outbox(sms_app, pid)[0].due_at == ten + timedelta(seconds=90)       # 30 s, then 60 s
    assert tick(worker, ten + timedelta(seconds=90))["sms_sent"] == 1
    [row] = outbox(sms_app, pid)
    assert row.status == SmsStatus.ACCEPTED and row.attempts == 3
    assert len(fake_twilio.messages) == 1


def test_retries_are_bounded_then_the_sms_is_marked_failed(sms_app, worker, fake_twilio):
    pid = enrol(sms_app, "ADU-TLS-006", W0_ANCHOR)
    fake_twilio.inject("500", count=10)
    when = local(2026, 3, 16, 10)
    for _ in range(5):
        tick(worker, when)
        when += timedelta(hours=1)
    [row] = outbox(sms_app, pid)
    assert row.status == SmsStatus.FAILED and row.attempts == 5
    assert fake_twilio.requests["POST create"] == 5
    tick(worker, when + timedelta(hours=1))
    assert fake_twilio.requests["POST create"] == 5


def test_an_unreachable_gateway_is_retried(database_url, instance_dir, fake_twilio):
    from tests.conftest import fresh_app
    from tests.sms.conftest import twilio_settings

    app = fresh_app(database_url, **twilio_settings(fake_twilio, TWILIO_API_BASE="http://127.0.0.1:9"))
    at(app, ENROLLED)
    pid = enrol(app, "ADU-TLS-007", W0_ANCHOR)
    w = Worker(app)
    try:
        assert tick(w, local(2026, 3, 16, 10))["sms_retry"] == 1
        assert outbox(app, pid)[0].status == SmsStatus.PENDING
    finally:
        w.close()
        app.extensions["proapp.engine"].dispose()


def test_a_timeout_after_twilio_took_the_message_is_looked_up_not_resent(sms_app, worker, fake_twilio):
    pid = enrol(sms_app, "ADU-TLS-008", W0_ANCHOR)
    fake_twilio.inject("timeout", seconds=1.5)       # the client gives up after 1 s; Twilio has the message
    ten = local(2026, 3, 16, 10)
    assert tick(worker, ten)["sms_unknown"] == 1
    assert outbox(sms_app, pid)[0].status == SmsStatus.UNKNOWN
    report = tick(worker, ten + timedelta(minutes=5))
    assert report["found"] == 1 and report["resent"] == 0
    [row] = outbox(sms_app, pid)
    [sent] = fake_twilio.messages.values()
    assert row.status == SmsStatus.ACCEPTED and row.provider_sid == sent.sid
    assert fake_twilio.requests["POST create"] == 1 and fake_twilio.duplicates() == []


def test_an_unknown_outcome_not_found_at_twilio_is_sent_again_after_the_grace_period(sms_app, worker, fake_twilio):
    pid = enrol(sms_app, "ADU-TLS-009", W0_ANCHOR)
    with sms_app.app_context(), db.transaction() as s:     # as if the worker died after committing the body hash
        from proapp.sms.delivery import claim, prepare

        tick(worker, ENROLLED)                             # queue only (07:00: quiet hours)
        ten = local(2026, 3, 16, 10)
        at(sms_app, ten)
        ids = claim(s, "dead-worker", ten, 10)
        prepare(s, ids, worker="dead-worker", now=ten, settings=worker.settings,
                vault=sms_app.extensions["proapp.phones"], gateway="twilio")
    assert outbox(sms_app, pid)[0].status == SmsStatus.SENDING
    # Within the claim lease: the claim is left alone.
    assert tick(worker, ten + timedelta(seconds=60))["abandoned"] == 0
    # After the lease: unknown, looked up, not found; after the grace period, sent (once).
    report = tick(worker, ten + timedelta(minutes=3))
    assert report["abandoned"] == 1 and report["found"] == 0 and report["resent"] == 0
    report = tick(worker, ten + timedelta(minutes=5))
    assert report["resent"] == 1 and report["sms_sent"] == 1
    assert len(fake_twilio.messages) == 1 and outbox(sms_app, pid)[0].status == SmsStatus.ACCEPTED


@pytest.mark.requirement("SMS-ONCE")
def test_a_worker_killed_mid_send_sends_nothing_twice_and_loses_nothing(sms_app, worker, fake_twilio):
    """Half the claimed SMS reached Twilio before the worker died, half did not: after the lease, the first
    half are found at Twilio and the second half sent, each exactly once."""
    from proapp.sms.delivery import claim, prepare
    from proapp.sms.gateways import from_config

    anchors = [W0_ANCHOR] * 6
    pids = [enrol(sms_app, f"ADU-TLS-1{i:02d}", a) for i, a in enumerate(anchors)]
    tick(worker, ENROLLED)
    ten = local(2026, 3, 16, 10)
    gateway = from_config(sms_app.config, sms_app.instance_path)
    with sms_app.app_context(), db.transaction() as s:
        ids = claim(s, "dying", ten, 50)
        prepared = prepare(s, ids, worker="dying", now=ten, settings=worker.settings,
                           vault=sms_app.extensions["proapp.phones"], gateway="twilio")
    for out in prepared.outgoing[:3]:
        gateway.send(out)                                # reached Twilio; the worker died before recording it
    tick(worker, ten + timedelta(minutes=3))
    tick(worker, ten + timedelta(minutes=5))
    rows = [r for p in pids for r in outbox(sms_app, p)]
    assert [r.status for r in rows] == [SmsStatus.ACCEPTED] * 6
    assert len(fake_twilio.messages) == 6 and fake_twilio.duplicates() == []
    assert sorted(fake_twilio.bodies_by_number().values()) == [6]


def test_quiet_hours_hold_an_sms_whose_worker_was_stopped_until_the_next_morning(sms_app, worker, fake_twilio):
    pid = enrol(sms_app, "ADU-TLS-010", ANCHOR)
    tick(worker, local(2026, 3, 23, 5))              # W1 opens; invitation queued for 10:00
    report = tick(worker, local(2026, 3, 23, 22))    # the worker comes back at 22:00
    assert report["sms_postponed"] == 1 and not fake_twilio.messages
    row = next(r for r in outbox(sms_app, pid) if r.visit_code == "W1")
    assert row.due_at == local(2026, 3, 24, 10)
    tick(worker, local(2026, 3, 24, 10))
    assert len(fake_twilio.messages) == 1


@pytest.mark.requirement("SMS-STOP")
def test_reminders_stop_when_the_questionnaire_is_completed(sms_app, worker, fake_twilio):
    done = enrol(sms_app, "ADU-TLS-011", ANCHOR)
    late = enrol(sms_app, "ADU-TLS-012", ANCHOR, phone="+33611111111")
    for day in (23, 24):
        tick(worker, local(2026, 3, day, 10))
    complete(sms_app, done, "W1", local(2026, 3, 24, 18))
    for day in (25, 26, 27):
        tick(worker, local(2026, 3, day, 10))
    done_w1 = [(r.kind, r.status in GONE) for r in outbox(sms_app, done) if r.visit_code == "W1"]
    late_w1 = [(r.kind, r.status in GONE) for r in outbox(sms_app, late) if r.visit_code == "W1"]
    assert done_w1 == [("invitation", True)]
    assert late_w1 == [("invitation", True), ("reminder_1", True), ("reminder_2", True)]
    texts = [m.body for m in fake_twilio.messages.values() if m.to == "+33611111111"]
    assert "rappel" in texts[1] and "dernier jour" in texts[2]
    # W1 closed on the 26th uncompleted for the late patient: missed.
    with sms_app.app_context():
        occ = db.session().scalar(select(Occurrence).where(Occurrence.patient_id == late,
                                                           Occurrence.visit_code == "W1"))
        assert occ.status == OccurrenceStatus.MISSED


@pytest.mark.requirement("SMS-STOP")
def test_pause_and_opt_out_stop_sms_and_are_recorded_with_who_and_when(sms_app, worker, fake_twilio):
    from proapp.patients.preferences import opt_out, pause, resume

    pid = enrol(sms_app, "ADU-TLS-013", ANCHOR)
    tick(worker, local(2026, 3, 23, 10))                       # W1 invitation
    with sms_app.app_context(), db.transaction() as s:
        pause(s, s.get(PatientContact, pid), local(2026, 3, 23, 15), "user:nurse@chu.test", "in hospital")
    for day in (24, 25, 26, 30):
        tick(worker, local(2026, 3, day, 10))
    assert len(fake_twilio.messages) == 1                      # no W1 reminders, no W2 invitation
    with sms_app.app_context(), db.transaction() as s:
        resume(s, s.get(PatientContact, pid), local(2026, 3, 30, 11), "user:nurse@chu.test", "back home")
    tick(worker, local(2026, 3, 30, 12))                       # W2 opened today: invitation at once
    assert len(fake_twilio.messages) == 2
    with sms_app.app_context(), db.transaction() as s:
        assert opt_out(s, s.get(PatientContact, pid), local(2026, 3, 30, 13), actor="patient:link:1") is True
    for day in (31, 1, 2):
        tick(worker, local(2026, 4 if day < 10 else 3, day, 10))
    assert len(fake_twilio.messages) == 2
    with sms_app.app_context():
        events = db.session().execute(select(PatientEvent.action, PatientEvent.actor, PatientEvent.reason)
                                      .where(PatientEvent.patient_id == pid).order_by(PatientEvent.id)).all()
    assert [tuple(e) for e in events] == [("sms_pause", "user:nurse@chu.test", "in hospital"),
                                          ("sms_resume", "user:nurse@chu.test", "back home"),
                                          ("sms_opt_out", "patient:link:1", None)]


def send_in_parallel(workers: list[Worker]) -> list:
    """Each worker sends what is due, all at once in threads; then they are closed. Returns their reports."""
    import threading

    reports: list = []
    threads = [threading.Thread(target=lambda w=w: reports.append(w.send_due())) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for w in workers:
        w.close()
    return reports


@pytest.mark.requirement("SMS-ONCE")
def test_two_workers_at_once_send_each_sms_exactly_once(sms_app, fake_twilio):
    at(sms_app, ENROLLED)
    for i in range(40):
        enrol(sms_app, f"ADU-TLS-{200 + i}", W0_ANCHOR, phone=f"+336123{i:05d}")
    workers = [Worker(sms_app, worker_id=f"w{n}") for n in (1, 2)]
    at(sms_app, local(2026, 3, 16, 10))
    workers[0].queue()
    reports = send_in_parallel(workers)
    assert sum(r.sent for r in reports) == 40
    assert len(fake_twilio.messages) == 40 and fake_twilio.duplicates() == []
    assert {r.status for r in outbox(sms_app)} == {SmsStatus.ACCEPTED}


def test_the_send_rate_holds_across_workers(database_url, instance_dir, fake_twilio):
    """With a limit of 20 SMS per second, no second of sending holds more than 20, even with two workers."""
    from tests.conftest import fresh_app
    from tests.sms.conftest import twilio_settings

    app = fresh_app(database_url, **twilio_settings(fake_twilio, SMS_RATE_PER_SECOND=20))
    at(app, ENROLLED)
    for i in range(50):
        enrol(app, f"ADU-TLS-{300 + i}", W0_ANCHOR, phone=f"+336124{i:05d}")
    at(app, local(2026, 3, 16, 10))
    workers = [Worker(app, worker_id=f"r{n}") for n in (1, 2)]
    workers[0].queue()
    send_in_parallel(workers)
    app.extensions["proapp.engine"].dispose()
    stamps = sorted(m.created.timestamp() for m in fake_twilio.messages.values())
    assert len(stamps) == 50
    busiest = max(sum(1 for s in stamps if t <= s < t + 1.0) for t in stamps)
    # Without the limit, 50 SMS take a fraction of a second (one window holds them all); with it, 2.45 s at least.
    assert stamps[-1] - stamps[0] >= 49 / 20 - 0.1
    # 20 leave per second. The fake stamps *arrivals*: on a busy 2-core machine (two test processes at once in
    # .ci/test) its thread can take a few requests late and stamp them together, so a window may hold a few more.
    assert busiest <= 26


@pytest.mark.slow
def test_a_whole_aduse_schedule_across_the_dst_change(sms_app, worker, fake_twilio):
    """The SMS jobs every hour for the 17 weeks of ADUSE: each invitation at 10:00 Paris time (09:00 UTC before
    29 March, 08:00 UTC after), reminders two days later and on the last day, nothing in quiet hours,
    nothing after completion, and each SMS once."""
    # Enrolled the day before: W0 (days -3 to -1) is open on its last day.
    pid = enrol(sms_app, "ADU-TLS-014", ANCHOR, now=ENROLLED - timedelta(days=1))
    completed = {"W2", "W5"}
    when = ENROLLED - timedelta(days=1)
    end = local(2026, 7, 20, 0)
    sent_at: dict[str, datetime] = {}
    while when < end:
        at(sms_app, when)
        before = set(fake_twilio.messages)
        worker.queue()          # the SMS jobs of a tick, in its order (the alerts, mails, pushes and checkpoints
        worker.reconcile()      # of a tick have nothing to do here, and 2,900 ticks of them cost minutes)
        worker.send_due()
        for sid in set(fake_twilio.messages) - before:
            sent_at[sid] = when
        if set(fake_twilio.messages) != before:
            for visit in completed:          # the patient answers right after the invitation
                with sms_app.app_context():
                    occ = db.session().scalar(select(Occurrence).where(Occurrence.patient_id == pid,
                                                                       Occurrence.visit_code == visit))
                    invited = db.session().scalar(select(SmsMessage.id).where(SmsMessage.occurrence_id == occ.id))
                    open_ = occ.status == OccurrenceStatus.SCHEDULED
                if invited and open_:
                    complete(sms_app, pid, visit, when)
        when += timedelta(hours=1)
    rows = outbox(sms_app, pid)
    sends = [r for r in rows if r.status in GONE]
    for r in sends:
        local_time = r.submitted_at.astimezone(PARIS)
        assert local_time.hour == 10 and local_time.minute == 0, (r.visit_code, r.kind, local_time)
    invitations = {r.visit_code for r in sends if r.kind == "invitation"}
    assert invitations == {"W0", *(f"W{n}" for n in range(1, 17)), "W16Q"}
    by_visit = {}
    for r in sends:
        by_visit.setdefault(r.visit_code, []).append((r.kind, r.submitted_at.astimezone(PARIS).date()))
    # W0 opened three days before the anchor, before enrolment: invited on the day of enrolment (its last day).
    assert by_visit["W0"] == [("invitation", date(2026, 3, 15))]
    assert by_visit["W1"] == [("invitation", date(2026, 3, 23)), ("reminder_1", date(2026, 3, 25)),
                              ("reminder_2", date(2026, 3, 26))]
    assert by_visit["W2"] == [("invitation", date(2026, 3, 30))]        # completed: no reminder
    assert by_visit["W5"] == [("invitation", date(2026, 4, 20))]
    assert by_visit["W3"][0] == ("invitation", date(2026, 4, 6))
    assert {r.submitted_at.hour for r in sends if r.submitted_at < datetime(2026, 3, 29, tzinfo=UTC)} == {9}
    assert {r.submitted_at.hour for r in sends if r.submitted_at > datetime(2026, 3, 30, tzinfo=UTC)} == {8}
    assert len(fake_twilio.messages) == len(sends) and fake_twilio.duplicates() == []
    expected = 1 + 2 * 1 + 14 * 3 + 3           # W0; W2, W5 invitations; 14 weeks with 2 reminders; W16Q
    assert len(sends) == expected


def test_a_worker_that_lost_its_claim_does_not_send(sms_app, worker, fake_twilio):
    """A worker stalled past its lease (its SMS was handed back and sent by another) must not send it again
    when it wakes up: the claim is confirmed right before the request leaves."""
    from proapp.sms.delivery import claim, prepare

    pid = enrol(sms_app, "ADU-TLS-016", W0_ANCHOR)
    tick(worker, ENROLLED)
    ten = local(2026, 3, 16, 10)
    stalled = Worker(sms_app, worker_id="stalled")
    try:
        with sms_app.app_context(), db.transaction() as s:
            ids = claim(s, "stalled", ten, 10)
            prepared = prepare(s, ids, worker="stalled", now=ten, settings=stalled.settings,
                               vault=sms_app.extensions["proapp.phones"], gateway="twilio")
        tick(worker, ten + timedelta(minutes=3))      # lease over: unknown, not found at Twilio
        tick(worker, ten + timedelta(minutes=5))      # grace over: sent by the live worker
        assert len(fake_twilio.messages) == 1
        assert stalled._send_one(prepared.outgoing[0]) is None
    finally:
        stalled.close()
    assert len(fake_twilio.messages) == 1 and outbox(sms_app, pid)[0].status in GONE


def test_a_slow_answer_within_the_timeout_is_a_normal_send(sms_app, worker, fake_twilio):
    pid = enrol(sms_app, "ADU-TLS-017", W0_ANCHOR)
    tick(worker, ENROLLED)
    fake_twilio.inject("slow", seconds=0.5)           # under the 1 s client timeout
    assert tick(worker, local(2026, 3, 16, 10))["sms_sent"] == 1
    assert outbox(sms_app, pid)[0].status == SmsStatus.ACCEPTED and len(fake_twilio.messages) == 1


def test_a_withdrawn_patient_gets_no_further_sms(sms_app, worker, fake_twilio):
    from proapp.patients.models import Patient, PatientStatus

    pid = enrol(sms_app, "ADU-TLS-018", W0_ANCHOR)
    tick(worker, ENROLLED)                            # W0 invitation queued for 10:00
    with sms_app.app_context(), db.transaction() as s:
        s.get(Patient, pid).status = PatientStatus.WITHDRAWN
    report = tick(worker, local(2026, 3, 16, 10))
    assert report["cancelled"] == 1 and report["sms_claimed"] == 0
    for day in (23, 30):
        tick(worker, local(2026, 3, day, 10))
    assert not fake_twilio.messages
    assert [(r.status, r.cancel_reason) for r in outbox(sms_app, pid)] == [(SmsStatus.CANCELLED, "patient_not_active")]


def test_a_resend_in_quiet_hours_keeps_the_old_link_until_the_new_sms_goes(sms_app, worker, fake_twilio):
    """"Resend the link" at 03:44: the SMS waits for 10:00, and so does the end of the old link; then the old link's
    page says when the new one was actually sent, in the patient's language whatever the browser's."""
    from proapp.dashboard.actions import resend_link
    from proapp.patients.models import Patient

    pid = enrol(sms_app, "ADU-TLS-013", ANCHOR, language="en", now=local(2026, 3, 15, 7))
    tick(worker, local(2026, 3, 15, 10))                            # W0 (days -3 to -1)
    tick(worker, local(2026, 3, 23, 10))                            # W1's invitation
    invitation = list(fake_twilio.messages.values())[-1]
    old = invitation.body.rsplit(" ", 1)[1].removeprefix("https://pro.example.test")
    at(sms_app, local(2026, 3, 24, 3, 44))
    with sms_app.app_context(), db.transaction() as s:
        patient = s.get(Patient, pid)
        occ = s.scalar(select(Occurrence).where(Occurrence.patient_id == pid, Occurrence.visit_code == "W1"))
        resend_link(s, patient, occ, actor="user:tls@chu.test", reason="lost the SMS", now=local(2026, 3, 24, 3, 44))
    tick(worker, local(2026, 3, 24, 3, 45))
    assert len(fake_twilio.messages) == 2                           # quiet hours: nothing sent at night
    browser = {"Accept-Language": "fr-FR,fr;q=0.9"}
    still = sms_app.test_client().get(old, headers=browser)
    assert still.status_code == 303 and still.headers["Location"].endswith("/q")     # the old link works
    tick(worker, local(2026, 3, 24, 10))
    assert len(fake_twilio.messages) == 3
    replaced = sms_app.test_client().get(old, headers=browser)
    page = replaced.get_data(as_text=True)
    assert replaced.status_code == 410 and "A new link was sent to you." in page
    assert "at 10:00" in page and "03:44" not in page
