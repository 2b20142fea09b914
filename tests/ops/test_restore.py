"""The restore drill: a backup taken, SMS sent after it, the backup restored (pg_dump / pg_restore on PostgreSQL,
SQLite's backup API), the restore declared and reconciled with Twilio's log: nothing is sent twice, nothing is
lost, the links the patients received after the backup still open their questionnaire, and ``audit verify`` tells
the declared restore from tampering."""

from __future__ import annotations

import sqlite3
import subprocess
from datetime import UTC, date, datetime
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import make_url

from proapp.jobs.worker import Worker
from proapp.sms.models import SmsStatus
from tests.conftest import OWNER_URLS, owner_engine
from tests.sms.conftest import at, enrol, outbox

ANCHOR = date(2026, 3, 17)                 # W0 (days -3 to -1) open on the 16th
ENROLLED = datetime(2026, 3, 16, 6, tzinfo=UTC)          # 07:00 in Paris
PARIS, MARTINIQUE = "Europe/Paris", "America/Martinique"   # invitations at 10:00 local: 09:00, 14:00 UTC


def _backup(app, folder: Path) -> Path:
    url = make_url(app.config["DATABASE_URL"])
    if url.get_backend_name() == "sqlite":
        target = folder / "backup.sqlite3"
        with sqlite3.connect(url.database) as live, sqlite3.connect(target) as copy:
            live.backup(copy)
        return target
    owner = make_url(OWNER_URLS[app.config["DATABASE_URL"]])
    schema = owner.query["options"].split("=", 1)[1]
    target = folder / "backup.dump"
    subprocess.run(["pg_dump", "-Fc", "-n", schema, "-h", owner.host, "-p", str(owner.port or 5432),
                    "-U", owner.username, "-f", str(target), owner.database], check=True, timeout=120)
    return target


def _restore(app, backup: Path) -> None:
    app.extensions["proapp.engine"].dispose()
    url = make_url(app.config["DATABASE_URL"])
    if url.get_backend_name() == "sqlite":
        with sqlite3.connect(backup) as copy, sqlite3.connect(url.database) as live:
            copy.backup(live)
        return
    owner = make_url(OWNER_URLS[app.config["DATABASE_URL"]])
    schema = owner.query["options"].split("=", 1)[1]
    engine = owner_engine(app.config["DATABASE_URL"])
    engine.dispose()
    with engine.begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    subprocess.run(["pg_restore", "-h", owner.host, "-p", str(owner.port or 5432), "-U", owner.username,
                    "-d", owner.database, str(backup)], check=True, timeout=120)


def test_restore_drill_sends_nothing_twice_and_loses_nothing(sms_app, fake_twilio, tmp_path):
    fake_twilio.now = lambda: sms_app.extensions["proapp.clock"].now()
    at(sms_app, ENROLLED)
    for i in range(12):
        enrol(sms_app, f"ADU-TLS-{100 + i}", ANCHOR, phone=f"+336123{i:05d}", tz=PARIS if i < 6 else MARTINIQUE)
    worker = Worker(sms_app, worker_id="drill")
    try:
        assert worker.tick()["sms_claimed"] == 0          # queues the invitations; none due yet (quiet hours)
        checkpoints = tmp_path / "checkpoints.jsonl"
        backup = _backup(sms_app, tmp_path)
        at(sms_app, datetime(2026, 3, 16, 9, 30, tzinfo=UTC))   # 10:30 in Paris: the Paris patients' go
        assert worker.tick()["sms_sent"] == 6
        runner = sms_app.test_cli_runner()
        assert runner.invoke(args=["proapp", "audit", "checkpoint", "--append", str(checkpoints)]).exit_code == 0
        sent_after_backup = [m.body for m in fake_twilio.messages.values()]

        _restore(sms_app, backup)
        declared = runner.invoke(args=["proapp", "restore", "declare", "--backup", backup.name, "--by", "it@chu"])
        assert declared.exit_code == 0, declared.output
        at(sms_app, datetime(2026, 3, 16, 9, 31, tzinfo=UTC))
        assert worker.tick()["sms_claimed"] == 0           # held: the restored outbox thinks they are all due
        assert len(fake_twilio.messages) == 6

        verify = runner.invoke(args=["proapp", "audit", "verify", "--checkpoints", str(checkpoints)])
        assert verify.exit_code == 0, verify.output
        assert "TAMPERED" not in verify.output and "RESTORED: " in verify.output
        assert "declared by it@chu" in verify.output and backup.name in verify.output

        reconciled = runner.invoke(args=["proapp", "restore", "reconcile", "--by", "it@chu"])
        assert reconciled.exit_code == 0, reconciled.output
        assert "6 SMS sent after the backup found at the gateway" in reconciled.output
        assert "6 links working again" in reconciled.output

        at(sms_app, datetime(2026, 3, 16, 9, 32, tzinfo=UTC))
        assert worker.tick()["sms_claimed"] == 0           # nothing sent twice
        at(sms_app, datetime(2026, 3, 16, 14, 30, tzinfo=UTC))
        assert worker.tick()["sms_sent"] == 6          # nothing lost: Martinique's go at their hour
    finally:
        worker.close()
    assert len(fake_twilio.messages) == 12 and fake_twilio.duplicates() == []
    invitations = [r for r in outbox(sms_app) if r.kind == "invitation" and r.visit_code == "W0"]
    assert len(invitations) == 12
    assert {r.status for r in invitations} <= {SmsStatus.ACCEPTED, SmsStatus.SENT, SmsStatus.DELIVERED}
    assert len({r.provider_sid for r in invitations}) == 12
    client = sms_app.test_client()
    for body in sent_after_backup:                         # the links patients got after the backup still work
        path = body[body.index("/s/"):].split()[0]
        assert client.get(path).status_code == 303, path
