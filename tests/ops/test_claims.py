"""Every outbox claim takes at most its limit, whatever plan PostgreSQL picks: on a table never analysed, an
``UPDATE ... WHERE id IN (SELECT ... LIMIT n FOR UPDATE SKIP LOCKED)`` may run its subquery once per row and take
the whole backlog, leaving the other workers idle. Two workers must share hundreds of due rows."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import insert, select, text

from proapp import db
from proapp.alerts.models import Alert, AlertNotification
from proapp.patients.models import Occurrence, Patient
from proapp.sms.models import SmsMessage
from tests.conftest import owner_engine
from tests.sms.conftest import enrol

pytestmark = pytest.mark.postgres

NOW = datetime(2026, 3, 20, 9, tzinfo=UTC)
ROWS = 600
LIMIT = 20


def _never_analysed(app, *tables: str) -> None:
    """The tables as on a freshly initialised database: no statistics, and autovacuum kept from gathering them
    during the test."""
    with owner_engine(app.config["DATABASE_URL"]).begin() as conn:
        for table in tables:
            conn.execute(text(f"ALTER TABLE {table} SET (autovacuum_enabled = false)"))
            conn.execute(text("DELETE FROM pg_catalog.pg_statistic WHERE starelid = CAST(:t AS regclass)"),
                         {"t": table})
            conn.execute(text("UPDATE pg_catalog.pg_class SET reltuples = -1, relpages = 0 "
                              "WHERE oid = CAST(:t AS regclass)"), {"t": table})


def _claims_of_two_workers(app, claim, **kwargs) -> tuple[list[int], list[int]]:
    """Worker A claims and has not committed yet when worker B claims; then both commit."""
    from proapp.db import make_engine

    engine = make_engine(app.config["DATABASE_URL"])
    try:
        with app.app_context():
            s1 = db.session()
            s2 = app.extensions["proapp.sessionmaker"](bind=engine)    # a session of the app, on its own connection
            try:
                first = claim(s1, "worker-a", NOW, LIMIT, **kwargs)
                second = claim(s2, "worker-b", NOW, LIMIT, **kwargs)
                s1.commit()
                s2.commit()
            finally:
                s2.close()
    finally:
        engine.dispose()
    return first, second


def test_two_workers_share_a_backlog_of_sms_on_a_never_analysed_table(app):
    from proapp.sms.delivery import claim

    patient_id = enrol(app, "ADU-TLS-001", date(2026, 3, 16), now=NOW - timedelta(days=5))
    _never_analysed(app, "sms_message")
    with app.app_context(), db.transaction() as s:
        occurrences = list(s.scalars(select(Occurrence.id).where(Occurrence.patient_id == patient_id)))
        s.execute(insert(SmsMessage), [
            {"occurrence_id": occurrences[i % len(occurrences)], "patient_id": patient_id, "kind": f"load_{i}",
             "status": "pending", "created_at": NOW, "due_at": NOW - timedelta(minutes=5), "status_at": NOW,
             "attempts": 0} for i in range(ROWS)])
    first, second = _claims_of_two_workers(app, claim)
    assert len(first) == LIMIT and len(second) == LIMIT
    assert not set(first) & set(second)
    with app.app_context():
        taken = db.session().scalar(select(text("count(*)")).select_from(SmsMessage)
                                    .where(SmsMessage.status == "sending"))
    assert taken == 2 * LIMIT


def test_two_workers_share_a_backlog_of_alert_notifications_on_a_never_analysed_table(app):
    from proapp.alerts.notify import claim

    patient_id = enrol(app, "ADU-TLS-002", date(2026, 3, 16), now=NOW - timedelta(days=5))
    _never_analysed(app, "alert_notification")
    with app.app_context(), db.transaction() as s:
        patient = s.get(Patient, patient_id)
        occurrence = s.scalar(select(Occurrence.id).where(Occurrence.patient_id == patient_id))
        alert = Alert(study_id=patient.study_id, site_id=patient.site_id, patient_id=patient_id,
                      occurrence_id=occurrence, rule_code="load", rule_label={"en": "load", "fr": "charge"},
                      severity="review", source="completed", evidence=[], raised_at=NOW)
        s.add(alert)
        s.flush()
        s.execute(insert(AlertNotification), [
            {"alert_id": alert.id, "step": 0, "channel": "email", "recipient": f"nurse{i}@example.test",
             "recipient_kind": "coordinator", "status": "pending", "created_at": NOW,
             "due_at": NOW - timedelta(minutes=5), "status_at": NOW, "attempts": 0} for i in range(ROWS)])
    first, second = _claims_of_two_workers(app, claim)
    assert len(first) == LIMIT and len(second) == LIMIT
    assert not set(first) & set(second)
