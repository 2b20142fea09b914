"""Two workers drain one backlog together on a freshly initialised PostgreSQL database (tables never analysed):
each SMS goes once, and both workers do part of the work instead of one taking it all while the other idles."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import insert, select

from proapp import db
from proapp.jobs.worker import Worker
from proapp.patients.models import Occurrence
from proapp.sms.models import SmsMessage
from tests.ops.test_claims import _never_analysed
from tests.sms.conftest import at, enrol

pytestmark = pytest.mark.postgres

NOW = datetime(2026, 3, 20, 9, tzinfo=UTC)          # 10:00 in Paris
ROWS = 300


def test_two_workers_share_a_backlog_of_sms_on_a_fresh_database(sms_app, fake_twilio):
    at(sms_app, NOW)
    patients = [enrol(sms_app, f"ADU-TLS-{400 + i}", date(2026, 3, 16), phone=f"+336124{i:05d}",
                      now=NOW - timedelta(days=4)) for i in range(10)]
    _never_analysed(sms_app, "sms_message")
    with sms_app.app_context(), db.transaction() as s:
        s.execute(SmsMessage.__table__.delete())
        occurrences = list(s.execute(select(Occurrence.id, Occurrence.patient_id)
                                     .where(Occurrence.patient_id.in_(patients), Occurrence.visit_code == "W1")))
        s.execute(insert(SmsMessage), [
            {"occurrence_id": occ, "patient_id": pid, "kind": f"load_{i}", "status": "pending", "created_at": NOW,
             "due_at": NOW - timedelta(minutes=1), "status_at": NOW, "attempts": 0}
            for i in range(ROWS // len(occurrences)) for occ, pid in occurrences])
    workers = [Worker(sms_app, worker_id=f"host{n}:worker") for n in (1, 2)]
    reports: dict[str, object] = {}
    threads = [threading.Thread(target=lambda w=w: reports.__setitem__(w.id, w.send_due())) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    for w in workers:
        w.close()
    claimed = {name: report.claimed for name, report in reports.items()}
    assert sum(claimed.values()) == ROWS                     # each row claimed once, by one worker
    assert len(fake_twilio.messages) <= ROWS and fake_twilio.duplicates() == []   # a 1 s timeout may leave one unknown
    assert all(n >= ROWS // 4 for n in claimed.values()), claimed      # both took part
