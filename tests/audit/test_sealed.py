"""An insider without the audit key (the app's own database role, or the tables' owner) can neither add to the
sealed legacy chain nor cut a chain's newest entries unnoticed: the database refuses what it can, every verify mode
names the rest (each head carries the key's MAC), and the worker signs no checkpoint of a tampered state
(issue 28, findings 2 and 3)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete, insert, select, text, update
from sqlalchemy.exc import DBAPIError

from proapp import db
from proapp.audit.checkpoints import HeadsNotSigned, write
from proapp.audit.models import AuditChainHead, AuditCheckpoint, AuditEvent
from proapp.audit.trail import GENESIS, LEGACY, chain_hash, head_mac, record
from tests.audit.test_audit import tamper
from tests.conftest import owner_engine
from tests.dashboard.conftest import Staff
from tests.questionnaire.helpers import enrol_with_open_window

REFUSED = "refused"


def _legacy_entry(entry_id: int, seq: int, prev: str, **fields) -> dict:
    entry = {"id": entry_id, "at": datetime(2026, 1, 5, 9, 0, seq, tzinfo=UTC), "actor": "user:nurse@chu.test",
             "action": "answer.saved", "entity": "answer", "entity_id": str(seq), "patient_id": None, "old": None,
             "new": {"value": seq}, "reason": None, "chain": LEGACY, "seq": seq, "key_id": None, "prev_hash": prev}
    entry.update(fields)
    entry["hash"] = chain_hash(prev, entry)
    return entry


def _legacy_chain(app, patient_id: int | None = None, n: int = 3) -> tuple[int, str]:
    """A legacy chain as migration 0018 leaves it: keyless entries (ids 1..n, as before chains were per patient)
    and its head signed with the key."""
    keys = app.extensions["proapp.audit_keys"]
    prev, statements = GENESIS, []
    for i in range(1, n + 1):
        entry = _legacy_entry(100_000 + i, i, prev, patient_id=patient_id)
        statements.append(insert(AuditEvent).values(**entry))
        prev = entry["hash"]
    statements.append(insert(AuditChainHead).values(chain=LEGACY, last_seq=n, last_hash=prev, key_id=keys.newest,
                                                    mac=head_mac(keys.secret(keys.newest), LEGACY, n, prev)))
    tamper(app, *statements)
    return n, prev


def _verify(app, *args: str):
    return app.test_cli_runner().invoke(args=["proapp", "audit", "verify", *args])


def _checkpoint(app) -> None:
    with app.app_context(), db.transaction() as s:
        write(s, app.extensions["proapp.audit_keys"], datetime.now(UTC))


def test_the_database_refuses_keyless_entries_legacy_appends_and_checkpoint_changes(app, dialect):
    """As the app's role and as the tables' owner: no entry without a key id, nothing added to the legacy chain,
    its head never moved, the checkpoints never changed or removed."""
    _legacy_chain(app)
    with app.app_context():
        record(db.session(), actor="test", action="test.entry", entity="thing")
        db.session().commit()
    _checkpoint(app)
    forged = _legacy_entry(999_001, 4, "0" * 64, action="patient.withdrawn")
    keyless = {**forged, "chain": "system", "seq": 99}
    changes = [insert(AuditEvent).values(**forged), insert(AuditEvent).values(**keyless),
               update(AuditChainHead).where(AuditChainHead.chain == LEGACY).values(last_seq=4),
               delete(AuditChainHead).where(AuditChainHead.chain == LEGACY),
               update(AuditCheckpoint).values(mac="0" * 64), delete(AuditCheckpoint)]
    if dialect == "postgresql":
        changes.append(text("TRUNCATE audit_checkpoint"))
    with app.app_context():
        engines = {"app": db.engine(), "owner": owner_engine(app.config["DATABASE_URL"])}
        for who, engine in engines.items():
            for stmt in changes:
                allowed = REFUSED if who == "owner" or dialect != "postgresql" else f"{REFUSED}|permission denied"
                with engine.connect() as conn, pytest.raises(DBAPIError, match=allowed):
                    conn.execute(stmt)
                    conn.commit()
        s = db.session()
        assert s.scalar(select(AuditChainHead.last_seq).where(AuditChainHead.chain == LEGACY)) == 3
        assert len(s.scalars(select(AuditCheckpoint)).all()) == 1
    assert _verify(app).exit_code == 0


def test_an_entry_appended_to_the_legacy_chain_is_named_everywhere(app, tmp_path):
    """The attack of finding 2, by the owner with the triggers lifted: a backdated "patient withdrawn" entry added
    to the legacy chain, its SHA-256 and the head recomputed. Every verify mode names it, the worker signs no
    checkpoint of it, and the patient's certified copy says TAMPERED."""
    from proapp.accounts.staff import create_user
    from tests.dashboard.conftest import PASSWORD, USERS

    pid, _token = enrol_with_open_window(app, "IMATINIB-SSC", "M1", subject="IMA-TLS-001")
    seq, last = _legacy_chain(app, patient_id=pid)
    with app.app_context():
        s = db.session()
        email, role, study, site = USERS["admin"]
        create_user(s, email=email, password=PASSWORD, role=role, now=datetime.now(UTC), study_code=study,
                    site_code=site, language="en")
        s.commit()
    path = tmp_path / "checkpoints.jsonl"
    result = app.test_cli_runner().invoke(args=["proapp", "audit", "checkpoint", "--append", str(path)])
    assert result.exit_code == 0, result.output
    admin = Staff(app, "admin")
    assert admin.get(f"/staff/patients/{pid}/audit.csv").headers["X-Audit-Chain"].startswith("intact")

    forged = _legacy_entry(90_000, seq + 1, last, patient_id=pid, action="patient.withdrawn",
                           entity="patient", entity_id=str(pid), at=datetime(2026, 1, 6, tzinfo=UTC),
                           new={"status": "withdrawn"})
    tamper(app, insert(AuditEvent).values(**forged),
           update(AuditChainHead).where(AuditChainHead.chain == LEGACY)
           .values(last_seq=seq + 1, last_hash=forged["hash"]))

    head_named = "chain legacy: its head (entry #4) does not match its signature"
    for args in ((), ("--checkpoints", str(path)), ("--since-checkpoint",)):
        result = _verify(app, *args)
        assert result.exit_code == 1 and head_named in result.output, (args, result.output)
    with app.app_context(), pytest.raises(HeadsNotSigned, match="chain legacy"):
        write(db.session(), app.extensions["proapp.audit_keys"], datetime.now(UTC) + timedelta(minutes=1))
    result = app.test_cli_runner().invoke(args=["proapp", "audit", "checkpoint"])
    assert result.exit_code != 0 and "no checkpoint written" in result.output
    copy = admin.get(f"/staff/patients/{pid}/audit.csv")
    assert "patient.withdrawn" in copy.get_data(as_text=True)              # listed ...
    assert copy.headers["X-Audit-Chain"].startswith("TAMPERED: chain legacy")   # ... and verified


def test_a_keyless_entry_in_a_keyed_chain_is_named_in_the_certified_copy(app):
    from proapp.accounts.staff import create_user
    from tests.dashboard.conftest import PASSWORD, USERS

    pid, _token = enrol_with_open_window(app, "IMATINIB-SSC", "M1", subject="IMA-TLS-001")
    with app.app_context():
        s = db.session()
        email, role, study, site = USERS["admin"]
        create_user(s, email=email, password=PASSWORD, role=role, now=datetime.now(UTC), study_code=study,
                    site_code=site, language="en")
        s.commit()
        head = s.get(AuditChainHead, "system")
    # An entry about the patient slipped into the system chain with a plain SHA-256 and the head left alone.
    forged = {**_legacy_entry(900_001, 1, head.last_hash, chain="system", patient_id=pid,
                              action="patient.withdrawn"), "seq": 10**6}
    tamper(app, insert(AuditEvent).values(**forged))
    copy = Staff(app, "admin").get(f"/staff/patients/{pid}/audit.csv")
    assert copy.headers["X-Audit-Chain"].startswith("TAMPERED")


def _system_entries(app, n: int) -> None:
    with app.app_context():
        s = db.session()
        for i in range(n):
            record(s, actor="test", action="test.entry", entity="thing", entity_id=i)
            s.commit()


def test_a_chain_cut_at_its_end_by_the_owner_without_the_key_is_named(app):
    """Finding 3: the owner deletes the newest entries, moves the head back and deletes the database
    checkpoints naming them (the triggers lifted). The head's MAC gives it away to every verify mode, and the
    worker refuses to sign the truncated state."""
    _system_entries(app, 4)
    _checkpoint(app)
    _system_entries(app, 2)
    _checkpoint(app)
    with app.app_context():
        s = db.session()
        newest = s.scalar(select(AuditCheckpoint.id).order_by(AuditCheckpoint.id.desc()).limit(1))
        last = s.scalar(select(AuditChainHead.last_seq).where(AuditChainHead.chain == "system"))
        keep = s.execute(select(AuditEvent.seq, AuditEvent.hash).where(AuditEvent.chain == "system",
                                                                        AuditEvent.seq == last - 2)).one()
    tamper(app, delete(AuditEvent).where(AuditEvent.chain == "system", AuditEvent.seq > keep.seq),
           update(AuditChainHead).where(AuditChainHead.chain == "system")
           .values(last_seq=keep.seq, last_hash=keep.hash),
           delete(AuditCheckpoint).where(AuditCheckpoint.id == newest))
    named = f"chain system: its head (entry #{keep.seq}) does not match its signature"
    for args in ((), ("--since-checkpoint",)):
        result = _verify(app, *args)
        assert result.exit_code == 1 and named in result.output, (args, result.output)
    result = app.test_cli_runner().invoke(args=["proapp", "audit", "checkpoint"])
    assert result.exit_code != 0 and named in result.output
    with app.app_context():
        assert len(db.session().scalars(select(AuditCheckpoint)).all()) == 1


def test_an_earlier_head_replayed_is_found_only_by_a_checkpoint_kept_outside(app, tmp_path):
    """What docs/security-and-audit.md says: an owner who copied a head row earlier (a backup) can put it back
    over a cut chain; only a checkpoint kept outside, newer than the copy, names that."""
    _system_entries(app, 4)
    with app.app_context():
        saved = db.session().get(AuditChainHead, "system")
        saved = {c: getattr(saved, c) for c in ("last_seq", "last_hash", "key_id", "mac")}
    _system_entries(app, 2)
    path = tmp_path / "checkpoints.jsonl"
    assert app.test_cli_runner().invoke(args=["proapp", "audit", "checkpoint", "--append", str(path)]).exit_code == 0
    tamper(app, delete(AuditEvent).where(AuditEvent.chain == "system", AuditEvent.seq > saved["last_seq"]),
           update(AuditChainHead).where(AuditChainHead.chain == "system").values(**saved))
    assert _verify(app).exit_code == 0
    result = _verify(app, "--checkpoints", str(path))
    assert result.exit_code == 1 and "is missing: the chain was truncated or rolled back" in result.output


def test_migration_0018_signs_the_heads_and_seals_the_legacy_chain(tmp_path, monkeypatch):
    """A trail of entries made before 0018 (a legacy chain and keyed chains): after the upgrade every head is
    signed, a checkpoint names the legacy chain's end, the trail verifies and the database refuses what follows."""
    from sqlalchemy import create_engine

    from proapp.audit.keys import generate, parse
    from proapp.audit.trail import keyed_hash, verify
    from proapp.migrate import upgrade

    url = f"sqlite:///{tmp_path / 'old.sqlite3'}"
    upgrade(url, "0016")
    keys = parse(generate("k1"))
    engine = create_engine(url)
    legacy, prev = [], GENESIS
    for i in (1, 2):
        entry = _legacy_entry(i, i, prev)
        legacy.append(entry)
        prev = entry["hash"]
    keyed = {**_legacy_entry(3, 1, GENESIS), "chain": "system", "key_id": "k1"}
    keyed["hash"] = keyed_hash(keys.secret("k1"), GENESIS, keyed)
    with engine.begin() as conn:
        conn.execute(insert(AuditEvent), [*legacy, keyed])
        conn.execute(text("INSERT INTO audit_chain_head (chain, last_seq, last_hash) VALUES "
                          "('legacy', 2, :legacy), ('system', 1, :system)"), {"legacy": prev, "system": keyed["hash"]})
    monkeypatch.delenv("PROAPP_AUDIT_KEYS", raising=False)
    with pytest.raises(RuntimeError, match="signs the audit chains' heads"):
        upgrade(url)
    monkeypatch.setenv("PROAPP_AUDIT_KEYS", ",".join(f"{k}:{v.hex()}" for k, v in keys.secrets.items()))
    upgrade(url)
    from sqlalchemy.orm import Session

    with Session(engine) as s:
        assert verify(s, keys=keys) == (3, [])
        [seal] = s.scalars(select(AuditCheckpoint)).all()
        assert json.loads(seal.body)["sealed"] == {"legacy": [2, prev]}
        assert json.loads(seal.body)["heads"] == {"legacy": [2, prev], "system": [1, keyed["hash"]]}
    with engine.connect() as conn, pytest.raises(DBAPIError, match=REFUSED):
        conn.execute(insert(AuditEvent).values(**_legacy_entry(4, 3, prev)))
    engine.dispose()
