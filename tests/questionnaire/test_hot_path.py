"""The patient's hot path stays lean and right: a question page is one query, an answer the fewest statements and
nothing read after its commit; the ulcer registry, remembered per version, still follows every change at once."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import event
from sqlalchemy.exc import DBAPIError

from proapp import db
from proapp.questionnaire import ulcers as ulcer_registry
from tests.questionnaire.helpers import Patient, enrol_with_open_window, text
from tests.questionnaire.test_ulcer_flow import enrol, link, nurse, reg_app  # noqa: F401  (a fixture)


@contextmanager
def statements(app) -> Iterator[list[str]]:
    """The SQL each request sends, in order (COMMIT included: the transaction's end shows)."""
    sent: list[str] = []
    engine = app.extensions["proapp.engine"]

    def on_sql(conn, cursor, sql, params, context, many):
        sent.append(" ".join(sql.split()).split(" ", 1)[0].upper())

    def on_commit(conn):
        sent.append("COMMIT")

    event.listen(engine, "before_cursor_execute", on_sql)
    event.listen(engine, "commit", on_commit)
    try:
        yield sent
    finally:
        event.remove(engine, "before_cursor_execute", on_sql)
        event.remove(engine, "commit", on_commit)


def test_a_question_page_is_one_query_and_an_answer_reads_nothing_after_its_commit(app, client):
    _pid, token = enrol_with_open_window(app, "ADUSE", "W1")        # the pain scale and the ulcer diary
    p = Patient(client, token)
    p.open()
    p.get("/q/PAIN_VAS.PAIN_VAS")
    p.answer(PAIN_VAS="40")
    p.get("/q/PAIN_VAS.PAIN_VAS")
    with statements(app) as sent:
        page = client.get("/q/PAIN_VAS.PAIN_VAS")
    assert page.status_code == 200 and 'value="40"' in page.text
    # The visit, its patient, responses, answers and the ulcer registry's version: one query (SQLite's BEGIN aside),
    # and the read-only transaction's commit (see the next test).
    assert [s for s in sent if s != "BEGIN"] == ["SELECT", "COMMIT"]

    csrf = p.page.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    with statements(app) as sent:
        saved = client.post("/q/PAIN_VAS.PAIN_VAS", data={"csrf_token": csrf, "PAIN_VAS": "41"})
    assert saved.status_code == 303
    work = [s for s in sent if s != "BEGIN"]
    # The visit (locked), the answer's upsert, the navigation state, the audit chain's head read and moved, the
    # entry (SQLite gives its id from the last one: one SELECT more), then the commit, and nothing after it.
    audit = ["SELECT", "UPDATE", "INSERT"] if app.extensions["proapp.engine"].dialect.name == "postgresql" else \
        ["SELECT", "UPDATE", "SELECT", "INSERT"]
    assert work == ["SELECT", "INSERT", "UPDATE", *audit, "COMMIT"]
    assert sent[-1] == "COMMIT"


@pytest.mark.postgres
def test_the_visit_query_stays_prepared_across_question_pages(app, client):
    """psycopg prepares a statement sent five times on a connection and forgets them all on a rollback: a question
    page that ended its transaction with a rollback had the visit's query planned again every time (most of the
    database's time for a page). Its read-only transaction now ends with a commit, and the query stays prepared."""
    _pid, token = enrol_with_open_window(app, "ADUSE", "W1")
    p = Patient(client, token)
    p.open()
    engine = app.extensions["proapp.engine"]
    used: list = []

    def on_checkout(dbapi_connection, record, proxy):
        used.append(dbapi_connection)

    event.listen(engine, "checkout", on_checkout)
    try:
        for _ in range(8):
            assert client.get("/q/PAIN_VAS.PAIN_VAS").status_code == 200
    finally:
        event.remove(engine, "checkout", on_checkout)
    conn = used[-1]
    prepared = [row[0] for row in conn.execute("SELECT statement FROM pg_prepared_statements").fetchall()]
    conn.commit()
    assert any("FROM access_link JOIN occurrence" in sql for sql in prepared), prepared

    # The commit cannot store anything: those transactions are read-only.
    with pytest.raises(DBAPIError, match="read-only transaction"), \
            app.extensions[db.READER].connect() as c:
        c.exec_driver_sql("UPDATE study SET code = code")


def test_an_ulcer_the_team_notes_while_the_entry_is_open_is_asked_at_once(reg_app):  # noqa: F811
    pid = enrol(reg_app)
    p = Patient(reg_app.test_client(), link(reg_app, pid, "W0"))
    p.open()
    p.start()
    first = p.screen_key
    assert not first.startswith("DU_BASELINE.DU_CONFIRM")
    p.get(f"/q/{first}")                                   # the registry remembered as it is: no ulcer
    staff = nurse(reg_app)
    assert staff.post(f"/staff/patients/{pid}/ulcers", {"hand": "L", "finger": "2", "site": "TIP",
                                                       "noted_on": "2026-03-01", "treated": "Y"}).status_code == 303
    p.get("/q")
    p.start()
    assert p.screen_key == "DU_BASELINE.DU_CONFIRM.1.DU_CONFIRM_OK"
    assert "Main gauche · Index · Bout du doigt" in text(p.page.text)


def test_the_registry_version_counts_what_the_registry_is_made_of(reg_app):  # noqa: F811
    pid = enrol(reg_app)
    staff = nurse(reg_app)
    for finger in ("2", "3"):
        staff.post(f"/staff/patients/{pid}/ulcers", {"hand": "R", "finger": finger, "site": "TIP",
                                                    "noted_on": "2026-03-01", "treated": ""})
    Patient(reg_app.test_client(), link(reg_app, pid, "W0")).open()
    with reg_app.app_context():
        from proapp.questionnaire.answering import visit_of_live_link
        from proapp.questionnaire.models import AccessLink

        s = db.session()
        row = s.query(AccessLink).order_by(AccessLink.id.desc()).first()
        visit, _responses, _answers = visit_of_live_link(s.connection(), row.id, row.occurrence_id)
        assert visit.ulcer_version == (0, 0, 2)
        found = ulcer_registry.remembered_ulcers(s.connection(), pid, reg_app.extensions["proapp.instruments"],
                                                 visit.ulcer_version)
        assert [c.ulcer.number for c in found.courses] == [1, 2]
        assert ulcer_registry.remembered_ulcers(s.connection(), pid, reg_app.extensions["proapp.instruments"],
                                                visit.ulcer_version) is found


def test_a_new_app_on_an_emptied_database_never_sees_a_registry_remembered_before(database_url, instance_dir):
    """Tests empty the database between apps and SQLite gives ids again: the same patient id and the same counts
    must not bring back another patient's ulcers."""
    from tests.conftest import fresh_app
    from tests.questionnaire.test_ulcer_flow import W0_TIME

    seen = []
    for hand, finger, name in (("L", "2", "Main gauche · Index"), ("R", "3", "Main droite · Majeur")):
        app = fresh_app(database_url, NOW=W0_TIME)
        with app.app_context():
            from proapp.accounts.models import Role
            from proapp.accounts.staff import create_user
            from tests.dashboard.conftest import PASSWORD

            create_user(db.session(), email="tls@chu.test", password=PASSWORD, role=Role.COORDINATOR, now=W0_TIME,
                        study_code="ADUSE", site_code="TLS", language="fr")
            db.session().commit()
        pid = enrol(app)
        noted = nurse(app).post(f"/staff/patients/{pid}/ulcers", {"hand": hand, "finger": finger, "site": "TIP",
                                                                 "noted_on": "2026-03-01", "treated": "Y"})
        assert noted.status_code == 303
        p = Patient(app.test_client(), link(app, pid, "W0"))
        p.open()
        p.start()
        seen.append((pid, name in text(p.page.text)))
        app.extensions["proapp.engine"].dispose()
    assert [named for _pid, named in seen] == [True, True]
