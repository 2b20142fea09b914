"""Commands of the worker: ``proapp worker`` and ``proapp tick``."""

from __future__ import annotations

from datetime import UTC, datetime

import click
from flask import current_app
from flask.cli import AppGroup, with_appcontext

from proapp import db, runtime
from proapp.audit.restores import backup_time, declare, holding, release
from proapp.cli import fail
from proapp.jobs.worker import Worker
from proapp.logs import configure_worker_logging
from proapp.sms.delivery import SmsSettings, text_problems
from proapp.sms.gateways import from_config
from proapp.sms.restore import reconcile_after_restore


def _worker():
    found = text_problems(current_app._get_current_object())  # type: ignore[attr-defined]
    if found:
        fail("; ".join(found))
    return Worker(current_app._get_current_object())  # type: ignore[attr-defined]


@click.command("tick")
@with_appcontext
@click.option("--now", "now_text", default=None, help="Pretend it is this UTC time (ISO 8601), for testing.")
def tick_cmd(now_text: str | None) -> None:
    """Run each of the worker's jobs once (SMS, alert notifications, staff mails, EDC pushes, checkpoint) and
    exit: for cron, tests and debugging."""
    if now_text:
        if current_app.config["PRODUCTION"]:
            fail("--now is refused in production")
        try:
            fixed = datetime.fromisoformat(now_text)
        except ValueError:
            fail(f"--now {now_text!r} is not an ISO 8601 date and time")
        current_app.extensions["proapp.clock"].set(fixed if fixed.tzinfo else fixed.replace(tzinfo=UTC))
    worker = _worker()
    try:
        report = worker.tick()
    finally:
        worker.close()
    click.echo(" ".join(f"{key}={value}" for key, value in report.items()))


@click.command("worker")
@with_appcontext
def worker_cmd() -> None:
    """Run the worker (APScheduler: SMS, alert notifications, staff mails, EDC pushes, audit checkpoints, heartbeat)
    until stopped with SIGTERM or Ctrl-C. Run it as its own process, never inside the web app."""
    configure_worker_logging()
    _worker().run_forever(reconcile_every=current_app.config["SMS_RECONCILE_SECONDS"])


@click.group("restore", cls=AppGroup)
def restore_group() -> None:
    """After putting the database back from a backup (docs/operations.md, "Restoring")."""


@restore_group.command("declare")
@click.option("--backup", required=True, help="Which backup was restored (its file name).")
@click.option("--by", "by", required=True, help="Who restored it (name or e-mail).")
def restore_declare_cmd(backup: str, by: str) -> None:
    """Record the restore, signed with the audit key, and hold the patients' SMS until reconciled. Run it right
    after the restore, before starting the worker."""
    with db.transaction() as s:
        row = declare(s, current_app.extensions["proapp.audit_keys"], runtime.now(), by=by, backup=backup)
        click.echo(f"restore {row.id} declared: SMS held until proapp restore reconcile")


@restore_group.command("reconcile")
@click.option("--by", "by", required=True, help="Who reconciles (name or e-mail).")
def restore_reconcile_cmd(by: str) -> None:
    """Compare the outbox with the SMS gateway's log since the backup: what went out after it is marked sent (its
    link works again) and never sent twice; then release the SMS."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    gateway = from_config(app.config, app.instance_path)
    with db.transaction() as s:
        row = holding(s)
        if row is None:
            fail("no declared restore holds the SMS (proapp restore declare first)")
        taken = backup_time(s)
        now = runtime.now()
        # From a claim lease before the backup's newest entry: an SMS in flight while the dump ran is found too.
        since = (taken or now) - SmsSettings.from_config(app.config).claim_lease
        result = reconcile_after_restore(s, gateway, runtime.phone_vault(), since, now)
        details = {"found": result.found, "links": result.links, "released": result.released,
                   "patients": result.patients, "unmatched": len(result.unmatched)}
        release(s, row, now, by, details)
    click.echo(f"restore {row.id} reconciled: {result.found} SMS sent after the backup found at the gateway "
               f"(not sent again, {result.links} links working again), {result.released} claims released, "
               f"{len(result.unmatched)} messages at the gateway unmatched; SMS released")
    for sid in result.unmatched:
        click.echo(f"unmatched at the gateway: {sid}")
