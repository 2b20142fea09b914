"""One chain per patient: an answer of one patient never waits for another patient's transaction (PostgreSQL row
locks), and a patient's certified copy verifies that patient's chain only."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import select

from proapp import db
from proapp.audit.models import AuditEvent
from proapp.audit.services import _lock_heads, chain_of, verify
from tests.questionnaire.helpers import Patient, csrf, enrol_with_open_window


def _on_first_question(app, subject: str) -> tuple[int, Patient]:
    pid, token = enrol_with_open_window(app, "ADUSE", "W1", subject=subject)
    p = Patient(app.test_client(), token)
    p.open()
    p.start()
    return pid, p


def _answer_in_thread(p: Patient, value: str) -> tuple[threading.Thread, list[int]]:
    status: list[int] = []
    data = {"csrf_token": csrf(p.page.text), "PAIN_VAS": value}
    thread = threading.Thread(target=lambda: status.append(p.client.post(p.path, data=data).status_code))
    thread.start()
    return thread, status


@pytest.mark.postgres
def test_another_patients_answer_commits_while_one_patients_chain_is_held(app):
    first, p1 = _on_first_question(app, "ADU-TLS-001")
    _second, p2 = _on_first_question(app, "ADU-TLS-002")
    with app.app_context():
        holder = app.extensions["proapp.sessionmaker"]()
        _lock_heads(holder.connection(), [chain_of(first)])                  # as an answer being committed
        try:
            other, other_status = _answer_in_thread(p2, "40")
            other.join(15)
            assert not other.is_alive() and other_status == [303]          # did not wait
            same, same_status = _answer_in_thread(p1, "50")
            same.join(1.5)
            assert same.is_alive() and same_status == []                    # the same patient's chain waits
        finally:
            holder.rollback()
            holder.close()
        same.join(15)
        assert same_status == [303]
        assert db.session().scalars(select(AuditEvent.chain).where(AuditEvent.action == "answer.saved")
                                    .order_by(AuditEvent.id)).all() == [f"patient:{_second}", f"patient:{first}"]


def test_entries_go_to_their_patients_chain_and_the_copy_checks_only_it(app):
    first, p1 = _on_first_question(app, "ADU-TLS-001")
    second, p2 = _on_first_question(app, "ADU-TLS-002")
    p1.answer(PAIN_VAS="10")
    p2.answer(PAIN_VAS="20")
    with app.app_context():
        s = db.session()
        for pid in (first, second):
            seqs = s.scalars(select(AuditEvent.seq).where(AuditEvent.chain == chain_of(pid))
                             .order_by(AuditEvent.seq)).all()
            assert seqs == list(range(1, len(seqs) + 1)) and len(seqs) >= 2
            assert set(s.scalars(select(AuditEvent.patient_id).where(AuditEvent.chain == chain_of(pid)))) == {pid}
        count, findings = verify(s, chain=chain_of(first))
        total = len(s.scalars(select(AuditEvent.id)).all())
        assert findings == [] and 0 < count < total
