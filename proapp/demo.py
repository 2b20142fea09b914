"""``proapp demo``: a demo admin and demo patients whose windows are open now (refused in production)."""

from __future__ import annotations

import secrets
from datetime import timedelta
from zoneinfo import ZoneInfo

import click
from flask import current_app
from flask.cli import with_appcontext
from sqlalchemy import select

from proapp import db, runtime
from proapp.accounts.models import Role, User
from proapp.accounts.staff import create_user
from proapp.cli import fail
from proapp.patients.enrolment import EnrolmentRequest, enroll_patient
from proapp.patients.models import Patient
from proapp.questionnaire.answering import issue_link, open_occurrence_for
from proapp.questionnaire.ulcers import note_ulcer


@click.command("demo")
@with_appcontext
def demo_cmd() -> None:
    """Add a demo admin and demo patients whose questionnaire windows are open now (development only)."""
    if current_app.config["PRODUCTION"]:
        fail("demo data is refused in production")
    s = db.session()
    now = runtime.now()
    email = "admin@demo.invalid"
    if s.scalar(select(User.id).where(User.email == email)) is None:
        password = secrets.token_urlsafe(12)
        with db.transaction():
            create_user(s, email=email, password=password, role=Role.ADMIN, now=now)
        click.echo(f"demo admin: {email} / password: {password}")
    else:
        click.echo(f"demo admin {email} already exists (its password was printed when it was created)")
    # Anchors chosen so that a window is open today in each patient's zone: ADUSE week 1 opens on day 7,
    # IMATINIB-SSC month 1 is open from day 23 to day 37. Phone numbers sit beside libphonenumber's example
    # mobile number; demo data is refused in production, so no real SMS can reach them.
    demo = [
        ("ADUSE", "TLS", "ADU-TLS-901", "+33612345601", "fr", "Europe/Paris", 7),
        ("ADUSE", "TLS", "ADU-TLS-902", "+33612345602", "en", "Indian/Reunion", 7),
        # Injected tomorrow: the baseline before the injection (W0, days -3 to -1), with the treated ulcer the team
        # noted to confirm.
        ("ADUSE", "TLS", "ADU-TLS-903", "+33612345606", "fr", "Europe/Paris", -1),
        ("IMATINIB-SSC", "PSL", "IMA-PSL-901", "+33612345603", "fr", "Europe/Paris", 30),
        ("IMATINIB-SSC", "TLS", "IMA-TLS-902", "+33612345604", "fr", "America/Guadeloupe", 30),
        ("IMATINIB-SSC", "PSL", "IMA-PSL-903", "+33612345605", "en", "Europe/Paris", 30),
    ]
    for study, site, subject, phone, lang, tz, days in demo:
        if s.scalar(select(Patient.id).where(Patient.subject_id == subject)) is not None:
            click.echo(f"{subject} already enrolled")
            continue
        anchor = now.astimezone(ZoneInfo(tz)).date() - timedelta(days=days)
        with db.transaction():
            patient = enroll_patient(s, runtime.studies(), runtime.phone_vault(),
                                     EnrolmentRequest(study, site, subject, phone, lang, anchor, tz, 10,
                                                      agreed_on=min(anchor, now.date())), now=now,
                                     actor="cli:demo")
            if days == -1 and study == "ADUSE":
                note_ulcer(s, runtime.instruments(), patient, hand="L", finger="2", site="TIP", treated=True,
                           noted_on=min(anchor, now.date()), actor="cli:demo", now=now)
        click.echo(f"enrolled demo patient {subject} ({study}/{site}, {lang}, {tz}), anchor date {anchor}")
    click.echo("questionnaire links (each new link replaces the previous one):")

    for _study, _site, subject, *_rest in demo:
        patient = s.scalar(select(Patient).where(Patient.subject_id == subject))
        occ = open_occurrence_for(s, patient, now) if patient else None
        if occ is not None and occ.status.value == "scheduled":
            with db.transaction():
                token = issue_link(s, occ, now)
            click.echo(f"  {subject} {occ.visit_code}: {current_app.config['PUBLIC_URL']}/s/{token}")
    url = current_app.config["PUBLIC_URL"]
    click.echo(f"an ADUSE patient answering 'yes' to signs of infection raises an alert: {url}/staff/alerts, "
               f"and the worker's e-mails to the site are listed at {url}/dev/mail")
