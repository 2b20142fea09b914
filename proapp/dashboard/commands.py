"""Commands of the study team's actions that a staff account signs: moving a patient's anchor date (the patient
page's signed form, from the command line)."""

from __future__ import annotations

from datetime import timedelta

import click
from flask import current_app
from flask.cli import with_appcontext
from flask_babel import force_locale
from sqlalchemy import select

from proapp import db, runtime
from proapp.accounts.access import Viewer
from proapp.accounts.models import User
from proapp.accounts.signatures import SignatureRefused, sign
from proapp.accounts.staff import scopes_of
from proapp.cli import fail
from proapp.patients.actions import ChangeRefused, reschedule
from proapp.patients.commands import parse_date, print_schedule
from proapp.patients.lookup import find_patient


@click.command("reschedule")
@with_appcontext
@click.argument("subject")
@click.option("--date", "new_date", required=True, help="The new anchor date (YYYY-MM-DD).")
@click.option("--reason", required=True, help="Why the date moves (kept in the history and the audit trail).")
@click.option("--signer", required=True, help="The e-mail of the staff account that signs the change.")
@click.option("--study", default=None, help="Study code, when the subject ID is not unique.")
@click.password_option("--password", confirmation_prompt=False, prompt="Password of the signer",
                       help="The signer's password (asked when not given).")
@click.option("--code", default="", help="A code of the signer's authenticator app, when they use one.")
def reschedule_cmd(subject: str, new_date: str, reason: str, signer: str, study: str | None, password: str,
                   code: str) -> None:
    """Move a patient's anchor date, signed by a staff account: the visits not yet completed move (their SMS follow),
    completed ones stay; refused when it would move a completed visit. Prints the new schedule."""
    new_anchor = parse_date(new_date, "--date")
    patient = find_patient(subject, study)
    cfg = current_app.config
    with force_locale("en"):
        with db.transaction() as s:
            user = s.scalar(select(User).where(User.email == signer.strip().lower()))
            who = None if user is None else Viewer(user.id, user.email, user.role, tuple(scopes_of(s, user.id)))
            if user is None or who is None or not (user.active and who.can_change
                                                    and who.sees(patient.study_id, patient.site_id)):
                fail(f"{signer} is not an active staff account that may change this patient")
            try:
                signature = sign(s, user.id, "reschedule", password=password, code=code, vault=runtime.phone_vault(),
                                 now=runtime.now(), max_failures=cfg["LOGIN_MAX_FAILURES"],
                                 lock_for=timedelta(minutes=cfg["LOGIN_LOCK_MINUTES"]))
            except SignatureRefused as exc:
                refused = str(exc.message)
            else:
                refused = None
                try:
                    moved = reschedule(s, s.merge(patient), new_anchor, actor=f"user:{user.email}", reason=reason,
                                       now=runtime.now(), signature=signature.record())
                except ChangeRefused as exc:
                    s.rollback()
                    fail(str(exc.message))
        if refused:                            # the failed signature is committed: it counts towards the lockout
            fail(refused)
    click.echo(f"{subject}: anchor date {moved.old_anchor.isoformat()} -> {moved.new_anchor.isoformat()}; "
               f"{len(moved.moved)} visits moved" + (f", kept: {', '.join(moved.kept)}" if moved.kept else ""))
    print_schedule(patient.id)
