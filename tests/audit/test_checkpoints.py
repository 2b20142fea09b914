"""Checkpoints kept outside the database catch what the key alone cannot: someone who holds the key and the
database rewrites, truncates or rolls back a chain and recomputes every hash and the head; `proapp audit verify`
alone says intact, `--checkpoints FILE` names it."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from sqlalchemy import delete, select, update

from proapp import db
from proapp.audit.checkpoints import write
from proapp.audit.models import AuditChainHead, AuditCheckpoint, AuditEvent
from proapp.audit.trail import GENESIS, head_mac, keyed_hash, record
from tests.audit.test_audit import tamper

pytestmark = pytest.mark.requirement("AUDIT-TRAIL")

FIELDS = ("id", "at", "actor", "action", "entity", "entity_id", "patient_id", "old", "new", "reason", "chain", "seq",
          "key_id")


def _entries(app, n: int, patient_id: int | None = None) -> None:
    with app.app_context():
        s = db.session()
        for i in range(n):
            record(s, actor="test", action="test.entry", entity="thing", entity_id=i, new={"n": i},
                   patient_id=patient_id)
            s.commit()


def _checkpoint_file(app, tmp_path):
    path = tmp_path / "checkpoints.jsonl"
    result = app.test_cli_runner().invoke(args=["proapp", "audit", "checkpoint", "--append", str(path)])
    assert result.exit_code == 0, result.output
    line = json.loads(result.output.strip())
    assert set(line) == {"checkpoint", "body", "key_id", "mac"} and path.read_text().strip() == result.output.strip()
    return path


def _verify(app, path=None):
    args = ["proapp", "audit", "verify"] + (["--checkpoints", str(path)] if path else [])
    return app.test_cli_runner().invoke(args=args)


def _rewrite_with_the_key(app, chain: str, keep_up_to: int, change_seq: int | None = None) -> None:
    """What a holder of the key and the database can do: change (or drop) entries, recompute every later hash
    with the key, and move the head."""
    secret = app.extensions["proapp.audit_keys"].secret(app.extensions["proapp.audit_keys"].newest)
    with app.app_context():
        rows = db.session().scalars(select(AuditEvent).where(AuditEvent.chain == chain)
                                    .order_by(AuditEvent.seq)).all()
        statements, prev, last = [], GENESIS, 0
        for e in rows:
            if e.seq > keep_up_to:
                statements.append(delete(AuditEvent).where(AuditEvent.id == e.id))
                continue
            entry = {c: getattr(e, c) for c in FIELDS}
            if e.seq == change_seq:
                entry["new"] = {"n": 999}
            digest = keyed_hash(secret, prev, entry)
            statements.append(update(AuditEvent).where(AuditEvent.id == e.id)
                              .values(new=entry["new"], prev_hash=prev, hash=digest))
            prev, last = digest, e.seq
        statements.append(update(AuditChainHead).where(AuditChainHead.chain == chain)
                          .values(last_seq=last, last_hash=prev, mac=head_mac(secret, chain, last, prev)))
    tamper(app, *statements)


def test_the_worker_writes_a_checkpoint_only_when_a_chain_moved(app):
    _entries(app, 3)
    keys = app.extensions["proapp.audit_keys"]
    with app.app_context():
        s = db.session()
        first = write(s, keys, app.extensions["proapp.clock"].now())
        s.commit()
        assert first is not None and write(s, keys, app.extensions["proapp.clock"].now()) is None
        record(s, actor="test", action="test.more", entity="thing")
        s.commit()
        assert write(s, keys, app.extensions["proapp.clock"].now()) is not None
        s.commit()
        assert len(s.scalars(select(AuditCheckpoint)).all()) == 2


def test_an_intact_trail_matches_its_checkpoint(app, tmp_path):
    _entries(app, 4)
    path = _checkpoint_file(app, tmp_path)
    _entries(app, 2)                               # appended after the checkpoint: fine
    result = _verify(app, path)
    assert result.exit_code == 0 and "matches checkpoint" in result.output, result.output


def test_a_history_rewritten_with_the_key_is_named_by_the_checkpoint(app, tmp_path):
    _entries(app, 6)
    path = _checkpoint_file(app, tmp_path)
    _rewrite_with_the_key(app, "system", keep_up_to=10_000, change_seq=2)
    assert _verify(app).exit_code == 0              # the key holder fooled the chain alone ...
    result = _verify(app, path)
    assert result.exit_code == 1                    # ... not the checkpoint kept outside
    assert "chain system: its entry #" in result.output and "the history before it was rewritten" in result.output


def test_a_truncated_or_rolled_back_chain_is_named_by_the_checkpoint(app, tmp_path):
    _entries(app, 6)
    path = _checkpoint_file(app, tmp_path)
    with app.app_context():
        last = db.session().scalar(select(AuditChainHead.last_seq).where(AuditChainHead.chain == "system"))
    _rewrite_with_the_key(app, "system", keep_up_to=last - 2)
    assert _verify(app).exit_code == 0
    result = _verify(app, path)
    assert result.exit_code == 1 and "is missing: the chain was truncated or rolled back" in result.output


def test_an_altered_checkpoint_line_is_named(app, tmp_path):
    _entries(app, 3)
    path = _checkpoint_file(app, tmp_path)
    line = json.loads(path.read_text())
    body = json.loads(line["body"])
    body["heads"]["system"][0] += 5
    line["body"] = json.dumps(body, sort_keys=True, separators=(",", ":"))
    path.write_text(json.dumps(line) + "\n")
    result = _verify(app, path)
    assert result.exit_code == 1 and "does not match its signature (altered)" in result.output


def test_since_checkpoint_checks_only_what_came_after_and_still_names_tampering(app):
    _entries(app, 5)
    _entries(app, 3, patient_id=None)
    with app.app_context(), db.transaction() as s:
        write(s, app.extensions["proapp.audit_keys"], datetime.now(UTC))
        before = s.scalar(select(AuditChainHead.last_seq).where(AuditChainHead.chain == "system"))
    _entries(app, 2)
    result = app.test_cli_runner().invoke(args=["proapp", "audit", "verify", "--since-checkpoint"])
    assert result.exit_code == 0, result.output
    assert "audit trail intact: 2 entries appended since checkpoint" in result.output
    with app.app_context():
        after_id = db.session().scalar(select(AuditEvent.id).where(AuditEvent.chain == "system",
                                                                   AuditEvent.seq == before + 1))
    tamper(app, update(AuditEvent).where(AuditEvent.id == after_id).values(new={"n": 99}))
    result = app.test_cli_runner().invoke(args=["proapp", "audit", "verify", "--since-checkpoint"])
    assert result.exit_code == 1 and f"TAMPERED: entry {after_id}: was altered" in result.output
    # A history rewritten with the key before the checkpoint is named by the checkpoint's own comparison.
    _rewrite_with_the_key(app, "system", keep_up_to=10_000, change_seq=2)
    result = app.test_cli_runner().invoke(args=["proapp", "audit", "verify", "--since-checkpoint"])
    assert result.exit_code == 1 and "the history before it was rewritten" in result.output


def test_since_checkpoint_needs_a_checkpoint(app):
    _entries(app, 2)
    result = app.test_cli_runner().invoke(args=["proapp", "audit", "verify", "--since-checkpoint"])
    assert result.exit_code != 0 and "no checkpoint yet" in result.output


@pytest.mark.postgres
def test_a_large_trail_is_shared_between_processes_and_tampering_is_still_named(app, monkeypatch):
    import proapp.audit.trail as trail

    for patient in range(6):
        _entries(app, 3, patient_id=None)
        with app.app_context(), db.transaction() as s:
            for i in range(3):
                record(s, actor="test", action="test.entry", entity="thing", entity_id=i, new={"n": i},
                       patient_id=900 + patient)
    monkeypatch.setattr(trail, "PARALLEL_FROM", 1)
    with app.app_context():
        whole = trail.verify(db.session(), processes=1)
        shared = trail.verify(db.session(), processes=3)
    assert whole == shared and whole[1] == [] and whole[0] > 30
    with app.app_context():
        victim = db.session().scalar(select(AuditEvent.id).where(AuditEvent.chain == "system", AuditEvent.seq == 4))
    tamper(app, update(AuditEvent).where(AuditEvent.id == victim).values(new={"n": 99}))
    with app.app_context():
        _count, found = trail.verify(db.session(), processes=3)
    assert [str(f) for f in found] == [f"entry {victim}: was altered after it was written (its content no longer "
                                       "matches its hash)"]
