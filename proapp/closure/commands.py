"""``proapp study close STUDY`` and ``proapp study verify-archive FILE``."""

from __future__ import annotations

from pathlib import Path

import click
from flask import current_app
from flask.cli import AppGroup
from flask_babel import force_locale

from proapp.cli import fail
from proapp.closure.archive import verify
from proapp.closure.steps import ClosureRefused, archive_dir, run, sources


@click.group("study", cls=AppGroup)
def study_group() -> None:
    """A study's end: its closure and its archive."""


@study_group.command("close")
@click.argument("study")
@click.option("--force", "force_reason", default=None, metavar="REASON",
              help="Close although visits are still open or to come; the reason is recorded and audited.")
@click.option("--archive-dir", "directory", type=click.Path(file_okay=False), default=None,
              help="Where the archive is written (default: PROAPP_ARCHIVE_DIR, or archives/ in the instance folder).")
def close_cmd(study: str, force_reason: str | None, directory: str | None) -> None:
    """Close STUDY: closed to patients at once (no enrolment, links say it is closed, no SMS), then the final export
    in every format and the signed archive, the phone numbers erased, the live data removed or kept as the study
    file says. Each step is audited; run it again to continue a closure that was interrupted."""
    if force_reason is not None and not force_reason.strip():
        fail("--force needs the reason the study is closed while visits are still open")
    with force_locale("en"):
        try:
            for line in run(study, current_app.extensions["proapp.audit_keys"], Path(directory) if directory else
                            archive_dir(), sources(), actor="cli", force_reason=force_reason):
                click.echo(line)
        except ClosureRefused as exc:
            fail(str(exc.message))


@study_group.command("verify-archive")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
def verify_archive_cmd(file: str) -> None:
    """Verify a closed study's archive with the audit key alone (PROAPP_AUDIT_KEYS; no database needed): its
    seal over every byte, its manifest's signature and every member's SHA-256. Exit 1 if anything differs."""
    verdict = verify(Path(file), current_app.extensions["proapp.audit_keys"])
    if not verdict.intact:
        for problem in verdict.problems:
            click.echo(f"TAMPERED: {problem}")
        click.echo(f"{len(verdict.problems)} problem(s): the archive is not as it was signed")
        raise SystemExit(1)
    click.echo(f"archive intact: {verdict.members} members, manifest and seal signed with key {verdict.key_id}")
