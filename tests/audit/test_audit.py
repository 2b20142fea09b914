"""The audit trail: what is recorded, the chain's verification against every kind of tampering, the database's
refusal to change it (PostgreSQL), and the views."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
from sqlalchemy import delete, func, insert, select, text, update

from proapp import db
from proapp.audit.models import AuditEvent
from proapp.audit.trail import canonical, chain_hash, record, verify
from tests.dashboard.conftest import Staff
from tests.export.conftest import auth, complete_diary, make_key
from tests.questionnaire.helpers import Patient, enrol_with_open_window

pytestmark = pytest.mark.requirement("AUDIT-TRAIL")


def entries(app, **where):
    with app.app_context():
        q = select(AuditEvent).order_by(AuditEvent.id)
        for k, v in where.items():
            q = q.where(getattr(AuditEvent, k) == v)
        cols = ("id", "at", "actor", "action", "entity", "entity_id", "patient_id", "old", "new", "reason")
        return [SimpleNamespace(**{c: getattr(e, c) for c in cols}) for e in db.session().scalars(q)]


def tamper(app, *statements):
    """Change the table behind proapp's back (on PostgreSQL the triggers are bypassed, as a superuser could)."""
    from proapp.audit.guard import suspended
    from tests.conftest import owner_engine

    with owner_engine(app.config["DATABASE_URL"]).begin() as conn, suspended(conn):
        for stmt in statements:
            conn.execute(stmt)


def findings(app):
    with app.app_context():
        return [str(f) for f in verify(db.session())[1]]


def test_only_the_app_sessions_write_the_audit_trail(app):
    """The hook is on the app's session factory: an entry added to any other session would be lost at its commit,
    so such a session refuses it, and the entries of the app's sessions reach the trail."""
    from sqlalchemy.orm import Session

    with app.app_context():
        with Session(db.engine()) as other, pytest.raises(RuntimeError, match="does not write the audit trail"):
            record(other, actor="system", action="test.elsewhere", entity="test")
        s = db.session()
        record(s, actor="system", action="test.here", entity="test")
        s.commit()
    assert [e.action for e in entries(app, entity="test")] == ["test.here"]


def test_a_patient_journey_is_recorded_with_who_what_when_and_values(app):
    pid, token = enrol_with_open_window(app, "ADUSE", "W1", subject="ADU-TLS-001")
    client = app.test_client()
    p = Patient(client, token)
    p.open()
    p.start()
    p.answer(DU_NEW="N")
    p.get("/q/DU_DIARY.DU_NEW")
    p.answer(DU_NEW="Y")                             # the patient changes their answer before submitting
    enrolled = entries(app, action="patient.enrolled")[0]
    assert enrolled.patient_id == pid and enrolled.new["subject_id"] == "ADU-TLS-001"
    assert enrolled.new["phone"] == "+336 1 •• •• •• 78" and "+33612345678" not in str(enrolled.new)
    assert [v[0] for v in enrolled.new["schedule"]][:3] == ["W0", "W1", "W2"]
    saves = entries(app, action="answer.saved", patient_id=pid)
    assert [(e.old, e.new["value"]) for e in saves] == [(None, "N"), ({"value": "N"}, "Y")]
    assert saves[0].actor.startswith("patient:link:") and saves[0].new["instrument"] == "DU_DIARY"
    assert saves[0].at.tzinfo is not None


def test_completion_staff_changes_logins_and_api_requests_are_recorded(app):
    pid = complete_diary(app, "ADU-TLS-001")
    completed = entries(app, action="response.completed")
    assert {e.new["instrument"] for e in completed} == {"PAIN_VAS", "DU_DIARY"}
    diary = next(e for e in completed if e.new["instrument"] == "DU_DIARY")
    assert diary.new["answers"]["DU_HAND:1"] == "R" and diary.new["scores"]["new_ulcer_count"] == 2
    key = make_key(app)
    app.test_client().get("/api/v1/studies/ADUSE/responses", headers=auth(key))
    [pull] = entries(app, action="api.request")
    assert pull.actor == f"api:pk_{key[3:11]}" and pull.new["items"] == 2
    from proapp.accounts.models import Role
    from proapp.accounts.staff import create_user
    from tests.dashboard.conftest import PASSWORD

    with app.app_context():
        s = db.session()
        create_user(s, email="nurse@chu.test", password=PASSWORD, role=Role.COORDINATOR, now=diary.at,
                    study_code="ADUSE", language="en")
        s.commit()
    staff = Staff(app, None)
    staff.login("nurse@chu.test", "wrong password!!")
    staff.login("nurse@chu.test", PASSWORD, expect=303)
    staff.post(f"/staff/patients/{pid}/actions/pause", {"reason": "in hospital"})
    actions = [e.action for e in entries(app)]
    assert {"user.created", "user.login_failed", "user.login", "patient.sms_pause"} <= set(actions)
    [pause] = entries(app, action="patient.sms_pause")
    assert (pause.actor, pause.reason, pause.patient_id) == ("user:nurse@chu.test", "in hospital", pid)
    assert entries(app, action="user.login_failed")[0].new["why"] == "wrong password"


def test_sms_statuses_are_recorded(app):
    enrol_with_open_window(app, "ADUSE", "W1", subject="ADU-TLS-001")
    from datetime import time
    from zoneinfo import ZoneInfo

    paris = ZoneInfo("Europe/Paris")       # 10:30 in Paris on the window's first day (even when UTC is a day behind)
    when = datetime.combine(datetime.now(paris).date(), time(10, 30), tzinfo=paris).astimezone(UTC)
    result = app.test_cli_runner().invoke(args=["proapp", "tick", "--now", when.isoformat()])
    assert result.exit_code == 0, result.output
    statuses = [(e.old["status"] if e.old else None, e.new["status"]) for e in entries(app, action="sms.status")]
    assert statuses == [(None, "pending"), ("pending", "sending"), ("sending", "delivered")]


def test_a_rolled_back_change_leaves_no_entry(app):
    with app.app_context():
        s = db.session()
        record(s, actor="test", action="test.rolled_back", entity="nothing")
        s.rollback()
        record(s, actor="test", action="test.kept", entity="nothing")
        s.commit()
    assert [e.action for e in entries(app)] == ["test.kept"]


def _ten_entries(app):
    with app.app_context():
        s = db.session()
        for n in range(10):
            record(s, actor="test", action="test.entry", entity="thing", entity_id=n, new={"n": n})
            s.commit()
    assert findings(app) == []
    result = app.test_cli_runner().invoke(args=["proapp", "audit", "verify"])
    assert result.exit_code == 0 and "audit trail intact: 10 entries" in result.output


def test_an_altered_entry_is_named(app):
    _ten_entries(app)
    tamper(app, update(AuditEvent).where(AuditEvent.id == 4).values(new={"n": 99}))
    assert findings(app) == ["entry 4: was altered after it was written (its content no longer matches its hash)"]
    result = app.test_cli_runner().invoke(args=["proapp", "audit", "verify"])
    assert result.exit_code == 1 and "TAMPERED: entry 4" in result.output


def test_a_removed_entry_is_named(app):
    _ten_entries(app)
    tamper(app, delete(AuditEvent).where(AuditEvent.id == 5))
    found = findings(app)
    assert found[0] == "entry 6: entries #5 to #5 of chain system are missing (removed)"
    assert any(f.startswith("entry 6: does not follow") for f in found)


def _forged_after(app, last_id: int, hasher) -> dict:
    with app.app_context():
        last = db.session().get(AuditEvent, last_id)
        forged = {"id": last_id + 1, "at": last.at, "actor": "test", "action": "test.forged", "entity": "thing",
                  "entity_id": "x", "patient_id": None, "old": None, "new": None, "reason": None,
                  "chain": last.chain, "seq": last.seq + 1, "key_id": last.key_id}
        return forged | {"prev_hash": last.hash, "hash": hasher(last.hash, forged)}


def test_an_inserted_entry_is_named_even_with_a_recomputed_hash(app):
    """Plain SHA-256 recomputed by whoever can write to the database: the entry does not carry the key's MAC."""
    _ten_entries(app)
    tamper(app, insert(AuditEvent).values(**_forged_after(app, 10, chain_hash)))
    assert findings(app) == [
        "entry 11: was altered after it was written (its content no longer matches its hash)",
        "chain system should end at its entry #10 but ends at #11: entries were removed from its end, or added "
        "outside proapp"]


def test_a_whole_chain_rewritten_with_recomputed_hashes_and_head_is_detected(app):
    """The insider's rewrite (triggers off, an entry changed, every later hash and the head recomputed) that plain
    SHA-256 let through: without the key, every rewritten entry is named."""
    from proapp.audit.models import AuditChainHead

    _ten_entries(app)
    with app.app_context():
        rows = db.session().scalars(select(AuditEvent).order_by(AuditEvent.seq)).all()
        prev, statements = "0" * 64, []
        for e in rows:
            entry = {c: getattr(e, c) for c in ("id", "at", "actor", "action", "entity", "entity_id", "patient_id",
                                                "old", "new", "reason", "chain", "seq", "key_id")}
            if e.seq == 4:
                entry["new"] = {"n": 99}
            forged = hashlib.sha256(f"{prev}|{canonical(entry)}".encode()).hexdigest()
            statements.append(update(AuditEvent).where(AuditEvent.id == e.id)
                              .values(new=entry["new"], prev_hash=prev, hash=forged))
            prev = forged
        statements.append(update(AuditChainHead).where(AuditChainHead.chain == "system").values(last_hash=prev))
    tamper(app, *statements)
    found = findings(app)
    assert found[0].startswith("chain system: its head (entry #10) does not match its signature")
    assert len(found) == 11 and all("was altered" in f for f in found[1:])


def test_an_entry_signed_with_another_key_is_detected(app):
    """Someone with another key (or a key proapp does not list) cannot extend the chain unnoticed; rotating keys
    keeps the entries of the older key verifiable."""
    import hmac as hmac_

    _ten_entries(app)
    stranger = b"s" * 32
    forged = _forged_after(app, 10, lambda prev, entry: hmac_.new(
        stranger, f"{prev}|{canonical(entry)}".encode(), hashlib.sha256).hexdigest())
    tamper(app, insert(AuditEvent).values(**forged))
    assert findings(app)[0] == "entry 11: was altered after it was written (its content no longer matches its hash)"


def test_rotated_keys_keep_older_entries_verifiable_and_a_missing_key_is_named(app):
    from proapp.audit.keys import generate, parse

    _ten_entries(app)
    old_keys = app.config["AUDIT_KEYS"]
    newest = generate("k2")
    rotated = parse(f"{newest},{old_keys}")
    with app.app_context():
        app.extensions["proapp.audit_keys"] = rotated
        s = db.session()
        record(s, actor="test", action="test.after_rotation", entity="thing")
        s.commit()
        assert db.session().scalar(select(AuditEvent.key_id).where(AuditEvent.action == "test.after_rotation")) == "k2"
        assert verify(db.session())[1] == []
        without_old = parse(newest)
        named = [str(f) for f in verify(db.session(), keys=without_old)[1]]
        made_with_old = db.session().scalar(select(func.count()).select_from(AuditEvent)
                                            .where(AuditEvent.key_id != "k2"))
        assert [f for f in named if "is signed with a key proapp does not have" not in f] == []
        assert made_with_old >= 10 and len(named) == made_with_old


def test_reordered_entries_are_named(app):
    _ten_entries(app)
    with app.app_context():                      # entries 3 and 4 of the chain swap places
        third, fourth = (db.session().scalar(select(AuditEvent.seq).where(AuditEvent.id == n)) for n in (3, 4))
    tamper(app, update(AuditEvent).where(AuditEvent.id == 3).values(seq=10_003),
           update(AuditEvent).where(AuditEvent.id == 4).values(seq=third),
           update(AuditEvent).where(AuditEvent.id == 3).values(seq=fourth))
    found = findings(app)
    assert any(f.startswith("entry 3:") for f in found) and any(f.startswith("entry 4:") for f in found)


def test_entries_removed_from_the_end_are_noticed(app):
    _ten_entries(app)
    tamper(app, delete(AuditEvent).where(AuditEvent.id >= 9))
    assert findings(app) == ["chain system should end at its entry #10 but ends at #8: entries were removed from "
                             "its end, or added outside proapp"]


def test_the_database_refuses_to_change_the_audit_table(app, dialect):
    """The app's own role may not change the trail (PostgreSQL: no UPDATE, DELETE or TRUNCATE right, no ALTER or
    DISABLE TRIGGER, which need the owner); even the owner is stopped by the triggers."""
    from sqlalchemy.exc import DBAPIError

    from tests.conftest import owner_engine

    _ten_entries(app)
    wipe = text("TRUNCATE audit_event") if dialect == "postgresql" else delete(AuditEvent)
    changes = [update(AuditEvent).where(AuditEvent.id == 2).values(reason="x"),
               delete(AuditEvent).where(AuditEvent.id == 2), wipe]
    if dialect == "postgresql":
        changes += [text("ALTER TABLE audit_event DISABLE TRIGGER USER"),
                    text("UPDATE audit_checkpoint SET mac = 'x'"), text("DELETE FROM audit_checkpoint")]
    with app.app_context():
        for stmt in changes:
            refused = "permission denied|must be owner" if dialect == "postgresql" else "append-only"
            with db.engine().connect() as conn, pytest.raises(DBAPIError, match=refused):
                conn.execute(stmt)
                conn.commit()
        for stmt in changes[:3]:
            with owner_engine(app.config["DATABASE_URL"]).connect() as conn, \
                    pytest.raises(DBAPIError, match="append-only"):
                conn.execute(stmt)
                conn.commit()
        assert db.session().scalar(select(func.count()).select_from(AuditEvent)) == 10


def test_the_audit_views_and_the_certified_copy(app):
    from proapp.accounts.staff import create_user
    from tests.dashboard.conftest import PASSWORD, USERS

    with app.app_context():
        s = db.session()
        for name in ("admin", "coord_psl", "monitor"):
            email, role, study, site = USERS[name]
            create_user(s, email=email, password=PASSWORD, role=role, now=datetime.now(UTC), study_code=study,
                        site_code=site, language="en")
        s.commit()
    pid, _token = enrol_with_open_window(app, "IMATINIB-SSC", "M1", subject="IMA-TLS-001")
    other, _ = enrol_with_open_window(app, "ADUSE", "W1", subject="ADU-TLS-001")
    admin = Staff(app, "admin")
    page = admin.get("/staff/audit").get_data(as_text=True)
    assert "patient.enrolled" in page and "user.login" in page
    assert "Patient enrolled" in page and "Signed in" in page                 # in words, the code beside
    assert "\\u" not in page and '{&#34;' not in page and '{"' not in page     # no raw JSON, no escapes
    only = admin.get("/staff/audit?subject=ADU-TLS-001").get_data(as_text=True)
    assert "ADU-TLS-001" in only and "IMA-TLS-001" not in only
    assert admin.get("/staff/audit?since=yesterday").status_code == 200      # a bad date: a message, not a 500
    monitor = Staff(app, "monitor").get("/staff/audit").get_data(as_text=True)
    assert "IMA-TLS-001" in monitor and "ADU-TLS-001" not in monitor and "user.login" not in monitor
    assert Staff(app, "coord_psl").get("/staff/audit").status_code == 403
    resp = admin.get(f"/staff/patients/{pid}/audit.csv")
    assert resp.headers["X-Audit-Chain"].startswith("intact")
    assert resp.headers["X-Content-SHA256"] == hashlib.sha256(resp.data).hexdigest()
    rows = resp.get_data(as_text=True).splitlines()
    assert rows[0].startswith("\ufeffentry,at_utc,actor,action") and "patient.enrolled" in rows[1]   # BOM: Excel
    assert all(re.search(r",[0-9a-f]{64},[0-9a-f]{64}$", r) for r in rows[1:])
    assert "+33612345678" not in resp.get_data(as_text=True)
    assert entries(app, action="audit.exported")[0].patient_id == pid
    assert Staff(app, "coord_psl").get(f"/staff/patients/{other}/audit.csv").status_code == 404
