"""Commands of the audit trail."""

from __future__ import annotations

import click

from proapp import db
from proapp.cli import proapp_cli


@proapp_cli.group("audit")
def audit_group() -> None:
    """The audit trail."""

@audit_group.command("verify")
def audit_verify_cmd() -> None:
    """Recompute the hash chain; name every altered, removed, inserted or moved entry (exit 1 if any)."""
    from proapp.audit.services import verify

    count, findings = verify(db.session())
    if findings:
        for finding in findings:
            click.echo(f"TAMPERED: {finding}")
        click.echo(f"{len(findings)} problem(s) in {count} entries")
        raise SystemExit(1)
    click.echo(f"audit trail intact: {count} entries, chain verified")
