"""One chain per patient: an answer of one patient never waits for another patient's transaction (PostgreSQL row
locks), a patient's certified copy verifies that patient's chain only, and the canonical form hashed is exactly
the sorted, compact JSON of the entry."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select

from proapp import db
from proapp.audit.models import AuditEvent
from proapp.audit.trail import _lock_heads, canonical, chain_of, verify
from tests.questionnaire.helpers import Patient, csrf, enrol_with_open_window

pytestmark = pytest.mark.requirement("AUDIT-TRAIL")


def _on_first_question(app, subject: str) -> tuple[int, Patient]:
    pid, token = enrol_with_open_window(app, "ADUSE", "W1", subject=subject)
    p = Patient(app.test_client(), token)
    p.open()
    p.start()
    return pid, p


def _answer_in_thread(p: Patient, value: str) -> tuple[threading.Thread, list[int]]:
    status: list[int] = []
    data = {"csrf_token": csrf(p.page.text), "DU_NEW": value}
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
            other, other_status = _answer_in_thread(p2, "N")
            other.join(15)
            assert not other.is_alive() and other_status == [303]          # did not wait
            same, same_status = _answer_in_thread(p1, "Y")
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
    p1.answer(DU_NEW="N")
    p2.answer(DU_NEW="Y")
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

_json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
                            lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
                            max_leaves=8)


@given(action=st.text(), actor=st.text(), entity_id=st.none() | st.text(), patient_id=st.none() | st.integers(),
       old=st.none() | st.dictionaries(st.text(), _json_values, max_size=4),
       new=st.none() | st.dictionaries(st.text(), _json_values, max_size=4), reason=st.none() | st.text(),
       seq=st.integers(1, 10**9), keyed=st.booleans(), offset=st.integers(-720, 720),
       micro=st.integers(0, 999_999))
def test_canonical_is_the_sorted_compact_json(action, actor, entity_id, patient_id, old, new, reason, seq, keyed,
                                              offset, micro):
    at = datetime(2026, 3, 1, 12, 0, 0, micro, tzinfo=timezone(timedelta(minutes=offset)))
    entry = {"id": 7, "at": at, "actor": actor, "action": action, "entity": "answer", "entity_id": entity_id,
             "patient_id": patient_id, "old": old, "new": new, "reason": reason, "chain": "patient:1", "seq": seq,
             "key_id": "k1" if keyed else None}
    fields = ["actor", "action", "entity", "entity_id", "patient_id", "old", "new", "reason"]
    fields += ["chain", "seq", "key_id"] if keyed else ["id"]
    body = {k: entry[k] for k in fields}
    body["at"] = at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert canonical(entry) == json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
