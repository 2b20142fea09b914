"""Commands of the SMS feature: a patient's SMS log, pause and resume."""

from __future__ import annotations

import click
from flask.cli import AppGroup
from sqlalchemy import select

from proapp import db, runtime
from proapp.cli import fail
from proapp.patients import preferences
from proapp.patients.lookup import find_patient
from proapp.patients.models import Occurrence, PatientEvent
from proapp.patients.phones import mask
from proapp.patients.preferences import PreferenceError
from proapp.sms.models import SmsMessage


@click.group("sms", cls=AppGroup)
def sms_group() -> None:
    """A patient's SMS: log, pause, resume."""


@sms_group.command("log")
@click.argument("subject")
@click.option("--study", default=None)
def sms_log_cmd(subject: str, study: str | None) -> None:
    """Every SMS of a patient with its fate, and the changes to their SMS preferences."""
    patient = find_patient(subject, study)
    s = db.session()
    contact = patient.contact
    if contact is not None and contact.phone_ciphertext:
        state = ("opted out" if contact.opted_out_at else "paused" if contact.sms_paused_at
                 else f"unusable ({contact.unusable_reason})" if not contact.usable else "active")
        click.echo(f"phone {mask(runtime.phone_vault().decrypt(contact.phone_ciphertext))}: SMS {state}")
    rows = s.execute(select(SmsMessage, Occurrence.visit_code).join(Occurrence)
                     .where(SmsMessage.patient_id == patient.id).order_by(SmsMessage.due_at, SmsMessage.id))
    for msg, visit in rows:
        detail = msg.cancel_reason or (f"error {msg.error_code}" if msg.error_code else msg.error_message or "")
        click.echo(f"{visit:<6} {msg.kind:<11} due {msg.due_at:%Y-%m-%d %H:%M}Z  {msg.status.value:<11} "
                   f"attempts={msg.attempts} {detail}".rstrip())
    for ev in s.scalars(select(PatientEvent).where(PatientEvent.patient_id == patient.id).order_by(PatientEvent.id)):
        click.echo(f"{ev.at:%Y-%m-%d %H:%M}Z {ev.action} by {ev.actor}" + (f": {ev.reason}" if ev.reason else ""))


def _change_sms(subject: str, study: str | None, by: str, reason: str, change) -> None:
    patient = find_patient(subject, study)
    if patient.contact is None:
        fail(f"{subject} has no phone number")
    try:
        with db.transaction() as s:
            change(s, patient.contact, runtime.now(), f"user:{by}", reason)
    except PreferenceError as exc:
        fail(str(exc))


def _sms_change_command(name: str, service: str, done: str, help_text: str) -> None:
    @sms_group.command(name, help=help_text)
    @click.argument("subject")
    @click.option("--reason", required=True, help="Why (recorded).")
    @click.option("--by", required=True, help="Who asks (recorded), e.g. your e-mail.")
    @click.option("--study", default=None)
    def command(subject: str, reason: str, by: str, study: str | None) -> None:
        _change_sms(subject, study, by, reason, getattr(preferences, service))
        click.echo(f"SMS {done} for {subject}")


_sms_change_command("pause", "pause", "paused", "Stop sending SMS to a patient until resumed.")


_sms_change_command("resume", "resume", "resumed",
                    "Send SMS to a patient again (after a pause, or an opt-out the patient took back).")
