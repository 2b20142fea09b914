"""Commands of the audit trail."""

from __future__ import annotations

import click

from proapp import db, services
from proapp.cli import fail, proapp_cli


@proapp_cli.group("audit")
def audit_group() -> None:
    """The audit trail."""


@audit_group.command("verify")
@click.option("--checkpoints", "checkpoints_file", type=click.Path(exists=True, dir_okay=False), default=None,
              help="A file of checkpoints kept outside the database (proapp audit checkpoint --append).")
def audit_verify_cmd(checkpoints_file: str | None) -> None:
    """Recompute every chain; name every altered, removed, inserted or moved entry (exit 1 if any). With
    --checkpoints, also compare the trail with the newest checkpoint kept outside."""
    from flask import current_app

    from proapp.audit.services import verify

    count, findings = verify(db.session())
    compared = None
    if checkpoints_file:
        from pathlib import Path

        from proapp.audit.checkpoints import check

        compared, more = check(db.session(), Path(checkpoints_file).read_text().splitlines(),
                               current_app.extensions["proapp.audit_keys"])
        findings += more
    if findings:
        for finding in findings:
            click.echo(f"TAMPERED: {finding}")
        click.echo(f"{len(findings)} problem(s) in {count} entries")
        raise SystemExit(1)
    click.echo(f"audit trail intact: {count} entries, chains verified" +
               (f"; matches {compared}" if compared else ""))


@audit_group.command("checkpoint")
@click.option("--append", "append_to", type=click.Path(dir_okay=False), default=None,
              help="Also append the line to this file (keep it on another host, append-only).")
@click.option("--syslog", "to_syslog", is_flag=True, help="Also send the line to syslog (facility AUTH).")
def audit_checkpoint_cmd(append_to: str | None, to_syslog: bool) -> None:
    """Print the newest checkpoint of the audit trail as one JSON line (writing one first if anything was
    appended since the last)."""
    from flask import current_app

    from proapp.audit.checkpoints import as_line, latest, write

    with db.transaction() as s:
        write(s, current_app.extensions["proapp.audit_keys"], services.now())
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
