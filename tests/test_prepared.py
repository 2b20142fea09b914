"""Prepared statements give exactly what SQLAlchemy's ``Connection.execute`` gives (rows, types, stored values),
on SQLite and on PostgreSQL, and fail the same way: SQLAlchemy's exceptions, a dead connection invalidated."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import bindparam, exc, insert, select, text

from proapp import db
from proapp.audit import services as audit
from proapp.audit.models import AuditEvent, AuditHead
from proapp.models import AccessLink, Answer, Response
from proapp.prepared import Prepared
from proapp.questionnaire import services as qs
from tests.questionnaire.helpers import Patient, enrol_with_open_window


@pytest.fixture
def answered(app, client, session):
    """A patient who answered the pain VAS and the first diary question (responses, answers, audit entries)."""
    _pid, token = enrol_with_open_window(app)
    p = Patient(client, token)
    p.open()
    p.start()
    p.answer(PAIN_VAS="42")
    link = session.scalars(select(AccessLink)).one()
    return link


@pytest.mark.parametrize("for_writing", [False, True])
def test_the_visit_and_answers_read_as_sqlalchemy_reads_them(app, answered, for_writing):
    with app.app_context():
        conn = db.session().connection()
        params = {"link": answered.id, "occurrence": answered.occurrence_id}
        stmt = qs._VISIT_FOR_WRITING if for_writing else qs._VISIT
        ours = (qs._VISIT_FOR_WRITING_RUN if for_writing else qs._VISIT_RUN).rows(conn, params)
        theirs = [tuple(row) for row in conn.execute(stmt, params)]
        assert ours == theirs and len(ours) >= 1
        assert [type(v) for v in ours[0]] == [type(v) for v in theirs[0]]     # enums, datetimes, JSON alike
        assert ours[0][5].tzinfo is not None                                   # aware UTC window times
        answers = qs._ANSWERS_RUN.rows(conn, {"occurrence": answered.occurrence_id})
        assert answers == [tuple(r) for r in conn.execute(qs._ANSWERS, {"occurrence": answered.occurrence_id})]
        assert ("PAIN_VAS", "PAIN_VAS", 0, "42") in answers
        assert qs._VISIT_RUN.rows(conn, {"link": answered.id + 1000, "occurrence": answered.occurrence_id}) == []


def test_writes_store_what_sqlalchemy_would_store(app, answered, session):
    now = datetime(2026, 11, 27, 10, 30, 15, 123456, tzinfo=UTC)
    pain = session.scalars(select(Response).where(Response.instrument_code == "PAIN_VAS")).one()
    with app.app_context():
        s = db.session()
        conn = s.connection()
        upsert = qs._upsert_answer(s)
        upsert.run(conn, {"response_id": pain.id, "item_code": "PAIN_VAS", "repeat_index": 0, "value": "43",
                          "answered_at": now})                       # a conflict: the stored answer changes
        upsert.run(conn, {"response_id": pain.id, "item_code": "PAIN_VAS", "repeat_index": 1, "value": "7",
                          "answered_at": now})                       # a new row
        touched = qs._SAVE_STATE_RUN.run(conn, {"rid": pain.id, "state": {"seen": ["x"], "n": 1}, "lang": "en",
                                                 "at": now})
        assert touched == 1
        assert qs._DELETE_ANSWER_RUN.run(conn, {"rid": pain.id, "item": "PAIN_VAS", "rep": 1}) == 1
        assert qs._DELETE_ANSWER_RUN.run(conn, {"rid": pain.id, "item": "PAIN_VAS", "rep": 1}) == 0
        s.commit()
    session.expire_all()
    stored = session.scalars(select(Answer).where(Answer.response_id == pain.id)).all()
    assert [(a.item_code, a.repeat_index, a.value, a.answered_at) for a in stored] == [("PAIN_VAS", 0, "43", now)]
    pain = session.get(Response, pain.id)
    assert (pain.flow_state, pain.language, pain.last_saved_at) == ({"seen": ["x"], "n": 1}, "en", now)


def test_audit_entries_written_through_prepared_statements_verify(app, answered, session):
    """The chain hashes what was written; reading the entries back (JSON, times, NULLs) gives the same hashes."""
    with app.app_context():
        s = db.session()
        audit.record(s, actor="test", action="answer.saved", entity="answer", entity_id="1:X:0", patient_id=None,
                     old=None, new={"value": "é", "n": 3}, reason=None)
        audit.record(s, actor="test", action="answer.cleared", entity="answer", entity_id="1:X:0", patient_id=1,
                     old={"value": "é"}, new=None, reason="a reason")
        s.commit()
        checked, findings = audit.verify(db.session())
    assert findings == [] and checked >= 3
    last = session.scalars(select(AuditEvent).order_by(AuditEvent.id.desc())).first()
    assert (last.old, last.new, last.reason) == ({"value": "é"}, None, "a reason")


def test_driver_errors_are_sqlalchemy_errors(app, answered):
    duplicate = Prepared(insert(AuditHead.__table__).values(id=bindparam("id"), last_id=0, last_hash="0" * 64))
    with app.app_context():
        s = db.session()
        with pytest.raises(exc.IntegrityError):
            duplicate.run(s.connection(), {"id": audit.HEAD_ROW})
        s.rollback()


def test_statements_expanded_at_execution_time_are_refused(app):
    expanding = Prepared(select(Answer.id).where(Answer.id.in_(bindparam("ids", expanding=True))))
    with app.app_context(), pytest.raises(ValueError, match="expanded"):
        expanding.rows(db.session().connection(), {"ids": [1, 2]})


@pytest.mark.postgres
def test_a_connection_that_died_is_invalidated_and_reported_as_sqlalchemy_does(app, answered):
    with app.app_context():
        conn = db.engine().connect()
        pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
        conn.commit()
        with db.engine().connect() as admin:
            admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            admin.commit()
        with pytest.raises(exc.OperationalError) as raised:
            qs._VISIT_RUN.rows(conn, {"link": answered.id, "occurrence": answered.occurrence_id})
        assert raised.value.connection_invalidated and conn.invalidated
        conn.rollback()
        # the pool hands out a working connection again
        assert qs._VISIT_RUN.rows(conn, {"link": answered.id, "occurrence": answered.occurrence_id})
        conn.close()


def test_a_missing_parameter_is_refused_as_sqlalchemy_refuses_it(app, answered):
    with app.app_context():
        conn = db.session().connection()
        with pytest.raises(exc.SQLAlchemyError, match="A value is required for bind parameter 'occurrence'"):
            qs._ANSWERS_RUN.rows(conn, {})
        with pytest.raises(exc.SQLAlchemyError, match="A value is required for bind parameter 'occurrence'"):
            conn.execute(qs._ANSWERS, {})
