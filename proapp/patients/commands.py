"""Commands of the patients feature: enrolment, schedules, phone numbers. (Moving a patient's anchor date, which a
staff account signs, is the dashboard's: proapp/dashboard/commands.py.)"""

from __future__ import annotations

from datetime import date

import click
from flask import current_app
from flask.cli import AppGroup, with_appcontext
from flask_babel import force_locale

from proapp import db, runtime
from proapp.cli import fail
from proapp.patients.contacts import purge_contacts, rotate_keys
from proapp.patients.enrolment import EnrolmentError, EnrolmentRequest, enroll_patient, occurrence_state, schedule_of
from proapp.patients.lookup import find_patient


def parse_date(value: str, option: str = "--anchor-date") -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        fail(f"{option} {value!r} is not a date (YYYY-MM-DD)")


@click.command("enroll")
@with_appcontext
@click.option("--study", required=True, help="Study code, e.g. ADUSE.")
@click.option("--site", required=True, help="Site code, e.g. TLS.")
@click.option("--subject", required=True, help="Subject ID following the study's pattern.")
@click.option("--phone", required=True, help="Mobile number (E.164 or national).")
@click.option("--language", default="fr", show_default=True, help="fr or en.")
@click.option("--anchor-date", required=True, help="Day 0 of the schedule (YYYY-MM-DD).")
@click.option("--timezone", default=None, help="Patient's time zone (default: the site's).")
@click.option("--hour", "sms_hour", default=10, show_default=True, type=int, help="Preferred local SMS hour.")
@click.option("--agreed-on", "agreed_on", required=True,
              help="The day the patient agreed to SMS and to answering online, after reading the information sheet "
                   "(YYYY-MM-DD).")
@click.option("--harvest-date", "harvest_date", default=None,
              help="The liposuction date, when it is done (a study with a fat_harvest follow-up; YYYY-MM-DD): on or "
                   "before the anchor date, not after today. Later: the patient's page.")
@click.option("--channel", "answer_channel", default="web", show_default=True,
              type=click.Choice(["web", "voice", "sms"]),
              help="How the patient answers: the web link, a voice call or SMS replies (the visits the study allows "
                   "so; the others by web link).")
@click.option("--sms-answers-agreed", is_flag=True,
              help="With --channel sms: the patient agrees that the questions and answers travel by SMS.")
def enroll_cmd(study: str, site: str, subject: str, phone: str, language: str, anchor_date: str,
               timezone: str | None, sms_hour: int, agreed_on: str, harvest_date: str | None, answer_channel: str,
               sms_answers_agreed: bool) -> None:
    """Enrol a patient and print their schedule. With --channel voice, the PIN typed with the patient is asked
    (hidden), never given as an option (it would stay in the shell's history)."""
    pin = None
    if answer_channel == "voice":
        pin = click.prompt("Voice call PIN typed with the patient (4 to 6 digits)", hide_input=True, default="",
                           show_default=False)
    req = EnrolmentRequest(study_code=study, site_code=site, subject_id=subject, phone=phone,
                           language=language, anchor_date=parse_date(anchor_date), timezone=timezone,
                           sms_hour=sms_hour, agreed_on=parse_date(agreed_on, "--agreed-on"),
                           harvest_date=parse_date(harvest_date, "--harvest-date") if harvest_date else None,
                           answer_channel=answer_channel, voice_pin=pin, sms_answers_agreed=sms_answers_agreed)
    with force_locale("en"):
        try:
            with db.transaction() as s:
                patient = enroll_patient(s, runtime.studies(), runtime.phone_vault(), req,
                                         now=runtime.now(), actor="cli",
                                         phone_region=current_app.config["DEFAULT_PHONE_REGION"])
        except EnrolmentError as exc:
            fail(f"{exc.field}: {exc.message}")
    click.echo(f"enrolled {patient.subject_id} ({study}/{site}), time zone {patient.timezone}")
    print_schedule(patient.id)


def print_schedule(patient_id: int) -> None:

    now = runtime.now()
    click.echo(f"{'visit':<6} {'opens':<10}  {'closes':<10}  {'state':<9}  instruments")
    for occ in schedule_of(db.session(), patient_id):
        click.echo(f"{occ.visit_code:<6} {occ.window_opens_on.isoformat()}  {occ.window_closes_on.isoformat()}"
                   f"  {occurrence_state(occ, now):<9}  {', '.join(occ.instruments)}")


@click.command("schedule")
@with_appcontext
@click.argument("subject")
@click.option("--study", default=None, help="Study code, when the subject ID is not unique.")
def schedule_cmd(subject: str, study: str | None) -> None:
    """Print a patient's schedule (local dates, state, instruments)."""
    print_schedule(find_patient(subject, study).id)


@click.group("phones", cls=AppGroup)
def phones_group() -> None:
    """Phone numbers (encrypted at rest)."""


@phones_group.command("rotate")
def phones_rotate_cmd() -> None:
    """Re-encrypt every number with the newest key of PROAPP_PHONE_KEYS (list the new key first, keep the old
    ones until this has run), and recompute the lookup hashes."""

    with db.transaction() as s:
        out = rotate_keys(s, runtime.phone_vault(), runtime.now(), "cli")
    click.echo(f"{out.rotated} numbers re-encrypted with the newest key"
               + (f"; {out.unreadable} could not be read with the configured keys" if out.unreadable else ""))
    if out.unreadable:
        raise SystemExit(1)


@click.command("purge-contacts")
@with_appcontext
@click.option("--dry-run", is_flag=True, help="Only list the patients whose number would be erased.")
def purge_contacts_cmd(dry_run: bool) -> None:
    """Erase the phone numbers of patients whose follow-up has ended (withdrawn, finished, or no window left)."""

    with db.transaction() as s:
        subjects = purge_contacts(s, runtime.now(), "cli", dry_run=dry_run)
    verb = "would erase" if dry_run else "erased"
    click.echo(f"{verb} {len(subjects)} phone number(s)" + (f": {', '.join(subjects)}" if subjects else ""))
