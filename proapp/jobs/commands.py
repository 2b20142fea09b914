"""Commands of the worker: ``proapp worker`` and ``proapp tick``."""

from __future__ import annotations

import click

from proapp.cli import fail, proapp_cli


def _worker():
    from flask import current_app

    from proapp.jobs.worker import Worker
    from proapp.sms.services import text_problems

    found = text_problems(current_app._get_current_object())  # type: ignore[attr-defined]
    if found:
        fail("; ".join(found))
    return Worker(current_app._get_current_object())  # type: ignore[attr-defined]


@proapp_cli.command("tick")
@click.option("--now", "now_text", default=None, help="Pretend it is this UTC time (ISO 8601), for testing.")
def tick_cmd(now_text: str | None) -> None:
    """Run each SMS job once (mark missed, queue, send, reconcile) and exit: for cron, tests and debugging."""
    from datetime import UTC, datetime

    from flask import current_app

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


@proapp_cli.command("worker")
def worker_cmd() -> None:
    """Run the SMS worker (APScheduler) until stopped with SIGTERM or Ctrl-C. Run it as its own process."""
    from flask import current_app

    from proapp.logs import configure_worker_logging

    configure_worker_logging()
    _worker().run_forever(reconcile_every=current_app.config["SMS_RECONCILE_SECONDS"])
