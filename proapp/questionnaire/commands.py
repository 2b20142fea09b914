"""Commands of the questionnaire feature: a fresh link for staff and tests."""

from __future__ import annotations

import click
from flask import current_app
from flask.cli import with_appcontext

from proapp import db, runtime
from proapp.cli import fail
from proapp.patients.lookup import find_patient
from proapp.questionnaire.answering import issue_link, open_occurrence_for


@click.command("link")
@with_appcontext
@click.argument("subject")
@click.option("--visit", default=None, help="Visit code (default: the open one).")
@click.option("--study", default=None, help="Study code, when the subject ID is not unique.")
def link_cmd(subject: str, visit: str | None, study: str | None) -> None:
    """Print a fresh questionnaire link for an open occurrence; the previous link stops working."""
    patient = find_patient(subject, study)
    occ = open_occurrence_for(db.session(), patient, runtime.now(), visit)
    if occ is None:
        fail(f"{subject} has no open questionnaire" + (f" for visit {visit}" if visit else ""))
    with db.transaction() as s:
        token = issue_link(s, occ, runtime.now())
    click.echo(f"{current_app.config['PUBLIC_URL']}/s/{token}")
