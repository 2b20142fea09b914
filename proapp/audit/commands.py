"""Commands of the audit trail."""

from __future__ import annotations

import os
from pathlib import Path

import click
from flask import current_app
from flask.cli import AppGroup

from proapp import db, runtime
from proapp.audit.checkpoints import HeadsNotSigned, as_line, check, latest, write
from proapp.audit.trail import verify, verify_since
from proapp.cli import fail


@click.group("audit", cls=AppGroup)
def audit_group() -> None:
    """The audit trail."""


@audit_group.command("verify")
@click.option("--checkpoints", "checkpoints_file", type=click.Path(exists=True, dir_okay=False), default=None,
              help="A file of checkpoints kept outside the database (proapp audit checkpoint --append).")
@click.option("--since-checkpoint", is_flag=True,
              help="Check only what was appended after the newest checkpoint (of --checkpoints, or else the "
                   "newest one in the database, its signature checked).")
@click.option("--processes", type=click.IntRange(1, 64), default=None,
              help="Processes sharing a whole PostgreSQL trail's check (default: the machine's cores).")
def audit_verify_cmd(checkpoints_file: str | None, since_checkpoint: bool, processes: int | None) -> None:
    """Recompute every chain; name every altered, removed, inserted or moved entry (exit 1 if any). With
    --checkpoints, also compare the trail with the newest checkpoint kept outside."""
    keys = current_app.extensions["proapp.audit_keys"]
    s = db.session()
    lines: list[str] = []
    if checkpoints_file:
        lines = Path(checkpoints_file).read_text().splitlines()
    elif since_checkpoint:
        newest = latest(s)
        if newest is None:
            fail("no checkpoint yet: run proapp audit verify without --since-checkpoint")
        lines = [as_line(newest)]
    compared, findings, since, restored = None, [], None, []
    if lines:
        compared, findings, since = check(s, lines, keys, restored)
    for line in restored:           # declared restores (proapp restore declare), told apart from tampering
        click.echo(f"RESTORED: {line}")
    if since_checkpoint:
        if since is None:
            for finding in findings:
                click.echo(f"TAMPERED: {finding}")
            fail("no genuine checkpoint to start from")
        count, more = verify_since(s, since, keys)
    else:
        count, more = verify(s, keys=keys, processes=processes or os.cpu_count() or 1)
    findings = more + findings
    if findings:
        for finding in findings:
            click.echo(f"TAMPERED: {finding}")
        click.echo(f"{len(findings)} problem(s) in {count} entries")
        raise SystemExit(1)
    scope = f"{count} entries appended since {compared}" if since_checkpoint else f"{count} entries"
    click.echo(f"audit trail intact: {scope}, chains verified" +
               (f"; matches {compared}" if compared and not since_checkpoint else "") +
               (f" but for {len(restored)} chain(s) rolled back by a declared restore" if restored else ""))


@audit_group.command("checkpoint")
@click.option("--append", "append_to", type=click.Path(dir_okay=False), default=None,
              help="Also append the line to this file (keep it on another host, append-only).")
@click.option("--syslog", "to_syslog", is_flag=True, help="Also send the line to syslog (facility AUTH).")
def audit_checkpoint_cmd(append_to: str | None, to_syslog: bool) -> None:
    """Print the newest checkpoint of the audit trail as one JSON line (writing one first if anything was
    appended since the last)."""
    try:
        with db.transaction() as s:
            write(s, current_app.extensions["proapp.audit_keys"], runtime.now())
    except HeadsNotSigned as exc:
        fail(f"{exc}. Run proapp audit verify.")
    checkpoint = latest(db.session())
    if checkpoint is None:
        fail("the audit trail is empty: nothing to checkpoint")
    line = as_line(checkpoint)
    click.echo(line)
    if append_to:
        with open(append_to, "a", encoding="utf-8") as fh:
            fh.write(line + "\n")
    if to_syslog:
        import syslog

        syslog.openlog("proapp-audit", 0, syslog.LOG_AUTH)
        syslog.syslog(syslog.LOG_NOTICE, line)
