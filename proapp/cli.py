"""The ``proapp`` command (console script, and ``flask --app wsgi proapp``).

Errors are one line on stderr and exit code 2; nothing is stored from a refused command.
"""

from __future__ import annotations

import secrets
import sys
from datetime import date, timedelta
from typing import NoReturn
from zoneinfo import ZoneInfo

import click
from flask.cli import AppGroup, ScriptInfo
from flask_babel import force_locale

from proapp import db, services
from proapp.patients.models import Occurrence


def fail(message: str) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(2)


proapp_cli = AppGroup("proapp", help="proapp: patient-reported outcomes for clinical trials.")


@proapp_cli.command("init")
def init_cmd() -> None:
    """Create or upgrade the database to the newest schema and load the study files (safe to run twice)."""
    from flask import current_app

    from proapp.migrate import upgrade
    from proapp.studies.services import sync_studies

    upgrade(current_app.config["DATABASE_URL"])
    with db.transaction() as s:
        changes = sync_studies(s, services.studies(), services.now())
    for line in changes:
        click.echo(line)
    click.echo(f"database at the newest schema; studies: {', '.join(services.studies().codes())}")


def _parse_date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        fail(f"--anchor-date {value!r} is not a date (YYYY-MM-DD)")


@proapp_cli.command("enroll")
@click.option("--study", required=True, help="Study code, e.g. ADUSE.")
@click.option("--site", required=True, help="Site code, e.g. TLS.")
@click.option("--subject", required=True, help="Subject ID following the study's pattern.")
@click.option("--phone", required=True, help="Mobile number (E.164 or national).")
@click.option("--language", default="fr", show_default=True, help="fr or en.")
@click.option("--anchor-date", required=True, help="Day 0 of the schedule (YYYY-MM-DD).")
@click.option("--timezone", default=None, help="Patient's time zone (default: the site's).")
@click.option("--hour", "sms_hour", default=10, show_default=True, type=int, help="Preferred local SMS hour.")
def enroll_cmd(study: str, site: str, subject: str, phone: str, language: str, anchor_date: str,
               timezone: str | None, sms_hour: int) -> None:
    """Enrol a patient and print their schedule."""
    from flask import current_app

    from proapp.patients.services import EnrolmentError, EnrolmentRequest, enroll_patient

    req = EnrolmentRequest(study_code=study, site_code=site, subject_id=subject, phone=phone,
                           language=language, anchor_date=_parse_date(anchor_date), timezone=timezone,
                           sms_hour=sms_hour)
    with force_locale("en"):
        try:
            with db.transaction() as s:
                patient = enroll_patient(s, services.studies(), services.phone_vault(), req,
                                         now=services.now(), actor="cli",
                                         phone_region=current_app.config["DEFAULT_PHONE_REGION"])
        except EnrolmentError as exc:
            fail(f"{exc.field}: {exc.message}")
    click.echo(f"enrolled {patient.subject_id} ({study}/{site}), time zone {patient.timezone}")
    _print_schedule(patient.id)


def _print_schedule(patient_id: int) -> None:
    from proapp.patients.services import occurrence_state, schedule_of

    now = services.now()
    click.echo(f"{'visit':<6} {'opens':<10}  {'closes':<10}  {'state':<9}  instruments")
    for occ in schedule_of(db.session(), patient_id):
        click.echo(f"{occ.visit_code:<6} {occ.window_opens_on.isoformat()}  {occ.window_closes_on.isoformat()}"
                   f"  {occurrence_state(occ, now):<9}  {', '.join(occ.instruments)}")


@proapp_cli.command("schedule")
@click.argument("subject")
@click.option("--study", default=None, help="Study code, when the subject ID is not unique.")
def schedule_cmd(subject: str, study: str | None) -> None:
    """Print a patient's schedule (local dates, state, instruments)."""
    _print_schedule(_find_patient(subject, study).id)


def _find_patient(subject: str, study: str | None):
    from sqlalchemy import select

    from proapp.patients.models import Patient
    from proapp.studies.models import Study

    q = select(Patient).where(Patient.subject_id == subject)
    if study:
        q = q.join(Study, Study.id == Patient.study_id).where(Study.code == study)
    found = list(db.session().scalars(q))
    if not found:
        fail(f"no patient {subject}")
    if len(found) > 1:
        fail(f"{subject} is enrolled in several studies: add --study")
    return found[0]


@proapp_cli.command("link")
@click.argument("subject")
@click.option("--visit", default=None, help="Visit code (default: the open one).")
@click.option("--study", default=None, help="Study code, when the subject ID is not unique.")
def link_cmd(subject: str, visit: str | None, study: str | None) -> None:
    """Print a fresh questionnaire link for an open occurrence; the previous link stops working."""
    from flask import current_app

    from proapp.questionnaire.services import issue_link, open_occurrence_for

    patient = _find_patient(subject, study)
    occ = open_occurrence_for(db.session(), patient, services.now(), visit)
    if occ is None:
        fail(f"{subject} has no open questionnaire" + (f" for visit {visit}" if visit else ""))
    with db.transaction() as s:
        token = issue_link(s, occ, services.now())
    click.echo(f"{current_app.config['PUBLIC_URL']}/s/{token}")


@proapp_cli.command("instruments")
def instruments_cmd() -> None:
    """List the instruments, their versions and whether each language's wording is validated."""
    for inst in services.instruments().all():
        langs = ", ".join(f"{lang} {'validated' if st.validated else 'NOT VALIDATED'}"
                          for lang, st in sorted(inst.languages.items()))
        click.echo(f"{inst.code} {inst.version}: {len(inst.items)} items; {langs}")


@proapp_cli.group("user")
def user_group() -> None:
    """Staff accounts."""


@user_group.command("create")
@click.option("--email", required=True)
@click.option("--role", required=True, type=click.Choice(["admin", "coordinator", "monitor"]))
@click.option("--study", default=None)
@click.option("--site", multiple=True, help="A site of the study (repeat for several); none: every site.")
@click.option("--language", default="fr", type=click.Choice(["fr", "en"]))
def user_create_cmd(email: str, role: str, study: str | None, site: tuple[str, ...], language: str) -> None:
    """Create an account; the password is read from standard input."""
    from proapp.accounts.models import Role
    from proapp.accounts.services import AccountError, create_user

    password = sys.stdin.readline().rstrip("\n")
    try:
        with db.transaction() as s:
            create_user(s, email=email, password=password, role=Role(role), now=services.now(),
                        study_code=study, site_code=site, language=language)
    except AccountError as exc:
        fail(str(exc))
    click.echo(f"account {email.strip().lower()} created ({role})")


def _account(s, email: str):
    from sqlalchemy import select

    from proapp.accounts.models import User

    user = s.scalar(select(User).where(User.email == email.strip().lower()))
    if user is None:
        fail(f"no account {email.strip().lower()}")
    return user


@user_group.command("set-password")
@click.argument("email")
def user_password_cmd(email: str) -> None:
    """Set a new password (read from standard input); every open session of the account ends."""
    from proapp.accounts.services import AccountError, set_password

    password = sys.stdin.readline().rstrip("\n")
    try:
        with db.transaction() as s:
            set_password(s, _account(s, email), password, services.now(), actor="cli")
    except AccountError as exc:
        fail(str(exc))
    click.echo(f"password of {email.strip().lower()} changed; its sessions ended")


@user_group.command("disable")
@click.argument("email")
@click.option("--reason", required=True)
def user_disable_cmd(email: str, reason: str) -> None:
    """Disable an account (it cannot sign in; its sessions end at once)."""
    from proapp.accounts.services import AccountError, set_active

    try:
        with db.transaction() as s:
            set_active(s, _account(s, email), False, services.now(), actor="cli", reason=reason)
    except AccountError as exc:
        fail(str(exc))
    click.echo(f"account {email.strip().lower()} disabled")


@user_group.command("enable")
@click.argument("email")
@click.option("--reason", required=True)
def user_enable_cmd(email: str, reason: str) -> None:
    """Enable a disabled account again."""
    from proapp.accounts.services import AccountError, set_active

    try:
        with db.transaction() as s:
            set_active(s, _account(s, email), True, services.now(), actor="cli", reason=reason)
    except AccountError as exc:
        fail(str(exc))
    click.echo(f"account {email.strip().lower()} enabled")


@user_group.command("end-sessions")
@click.argument("email")
@click.option("--reason", required=True)
def user_end_sessions_cmd(email: str, reason: str) -> None:
    """End every open session of an account at once (e.g. a lost laptop)."""
    from proapp.accounts.services import end_all_sessions

    with db.transaction() as s:
        user = _account(s, email)
        ended = end_all_sessions(s, user.id, services.now(), actor="cli", reason=reason)
    click.echo(f"{ended} session(s) of {email.strip().lower()} ended")


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


@proapp_cli.group("phones")
def phones_group() -> None:
    """Phone numbers (encrypted at rest)."""


@phones_group.command("rotate")
def phones_rotate_cmd() -> None:
    """Re-encrypt every number with the newest key of PROAPP_PHONE_KEYS (list the new key first, keep the old
    ones until this has run), and recompute the lookup hashes."""
    from proapp.patients.contacts import rotate_keys

    with db.transaction() as s:
        out = rotate_keys(s, services.phone_vault(), services.now(), "cli")
    click.echo(f"{out.rotated} numbers re-encrypted with the newest key"
               + (f"; {out.unreadable} could not be read with the configured keys" if out.unreadable else ""))
    if out.unreadable:
        raise SystemExit(1)


@proapp_cli.command("purge-contacts")
@click.option("--dry-run", is_flag=True, help="Only list the patients whose number would be erased.")
def purge_contacts_cmd(dry_run: bool) -> None:
    """Erase the phone numbers of patients whose follow-up has ended (withdrawn, finished, or no window left)."""
    from proapp.patients.contacts import purge_contacts

    with db.transaction() as s:
        subjects = purge_contacts(s, services.now(), "cli", dry_run=dry_run)
    verb = "would erase" if dry_run else "erased"
    click.echo(f"{verb} {len(subjects)} phone number(s)" + (f": {', '.join(subjects)}" if subjects else ""))


@proapp_cli.group("api-key")
def api_key_group() -> None:
    """Keys of the export API (one study each)."""


@api_key_group.command("create")
@click.option("--study", required=True)
@click.option("--name", required=True, help="Who uses it, e.g. 'EDC nightly import'.")
@click.option("--site", multiple=True, help="Restrict to a site (repeat for several); none: every site.")
@click.option("--by", "by", default="cli", help="Who creates it (recorded).")
def api_key_create_cmd(study: str, name: str, site: tuple[str, ...], by: str) -> None:
    """Create a key and print it once (only its hash is stored)."""
    from proapp.export.keys import KeyError_, create_key

    try:
        with db.transaction() as s:
            row, key = create_key(s, study_code=study, name=name, now=services.now(), created_by=by,
                                  site_codes=site)
    except KeyError_ as exc:
        fail(str(exc))
    click.echo(f"key pk_{row.prefix} for {study}{' sites ' + ','.join(site) if site else ''} ({name}); "
               "it is shown only now:")
    click.echo(key)


@api_key_group.command("revoke")
@click.argument("prefix")
def api_key_revoke_cmd(prefix: str) -> None:
    """Revoke a key (give its pk_... prefix); requests with it get 401 at once."""
    from proapp.export.keys import KeyError_, revoke_key

    try:
        with db.transaction() as s:
            row = revoke_key(s, prefix, services.now())
    except KeyError_ as exc:
        fail(str(exc))
    click.echo(f"key pk_{row.prefix} revoked")


@api_key_group.command("list")
def api_key_list_cmd() -> None:
    """Every key: prefix, study, name, created, last used, revoked."""
    from sqlalchemy import select

    from proapp.export.models import ApiKey
    from proapp.studies.models import Study

    s = db.session()
    for key, code in s.execute(select(ApiKey, Study.code).join(Study, Study.id == ApiKey.study_id)
                               .order_by(ApiKey.id)):
        state = f"revoked {key.revoked_at:%Y-%m-%d %H:%M}Z" if key.revoked_at else "live"
        used = f"{key.last_used_at:%Y-%m-%d %H:%M}Z" if key.last_used_at else "never"
        click.echo(f"pk_{key.prefix}  {code}  {key.name}  created {key.created_at:%Y-%m-%d} by {key.created_by}  "
                   f"last used {used}  {state}")


def _worker():
    from flask import current_app

    from proapp.sms.worker import SmsWorker, problems

    found = problems(current_app._get_current_object())  # type: ignore[attr-defined]
    if found:
        fail("; ".join(found))
    return SmsWorker(current_app._get_current_object())  # type: ignore[attr-defined]


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
        current_app.config["NOW"] = fixed if fixed.tzinfo else fixed.replace(tzinfo=UTC)
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


@proapp_cli.group("sms")
def sms_group() -> None:
    """A patient's SMS: log, pause, resume."""


@sms_group.command("log")
@click.argument("subject")
@click.option("--study", default=None)
def sms_log_cmd(subject: str, study: str | None) -> None:
    """Every SMS of a patient with its fate, and the changes to their SMS preferences."""
    from sqlalchemy import select

    from proapp.patients.phones import mask
    from proapp.sms.models import PatientEvent, SmsMessage

    patient = _find_patient(subject, study)
    s = db.session()
    contact = patient.contact
    if contact is not None and contact.phone_ciphertext:
        state = ("opted out" if contact.opted_out_at else "paused" if contact.sms_paused_at
                 else f"unusable ({contact.unusable_reason})" if not contact.usable else "active")
        click.echo(f"phone {mask(services.phone_vault().decrypt(contact.phone_ciphertext))}: SMS {state}")
    rows = s.execute(select(SmsMessage, Occurrence.visit_code).join(Occurrence)
                     .where(SmsMessage.patient_id == patient.id).order_by(SmsMessage.due_at, SmsMessage.id))
    for msg, visit in rows:
        detail = msg.cancel_reason or (f"error {msg.error_code}" if msg.error_code else msg.error_message or "")
        click.echo(f"{visit:<6} {msg.kind:<11} due {msg.due_at:%Y-%m-%d %H:%M}Z  {msg.status.value:<11} "
                   f"attempts={msg.attempts} {detail}".rstrip())
    for ev in s.scalars(select(PatientEvent).where(PatientEvent.patient_id == patient.id).order_by(PatientEvent.id)):
        click.echo(f"{ev.at:%Y-%m-%d %H:%M}Z {ev.action} by {ev.actor}" + (f": {ev.reason}" if ev.reason else ""))


def _change_sms(subject: str, study: str | None, by: str, reason: str, change) -> None:
    from proapp.sms.services import PreferenceError

    patient = _find_patient(subject, study)
    if patient.contact is None:
        fail(f"{subject} has no phone number")
    try:
        with db.transaction() as s:
            change(s, patient.contact, services.now(), f"user:{by}", reason)
    except PreferenceError as exc:
        fail(str(exc))


def _sms_change_command(name: str, service: str, done: str, help_text: str) -> None:
    @sms_group.command(name, help=help_text)
    @click.argument("subject")
    @click.option("--reason", required=True, help="Why (recorded).")
    @click.option("--by", required=True, help="Who asks (recorded), e.g. your e-mail.")
    @click.option("--study", default=None)
    def command(subject: str, reason: str, by: str, study: str | None) -> None:
        from proapp.sms import services as sms_services

        _change_sms(subject, study, by, reason, getattr(sms_services, service))
        click.echo(f"SMS {done} for {subject}")


_sms_change_command("pause", "pause", "paused", "Stop sending SMS to a patient until resumed.")
_sms_change_command("resume", "resume", "resumed",
                    "Send SMS to a patient again (after a pause, or an opt-out the patient took back).")


@proapp_cli.command("config-table")
def config_table_cmd() -> None:
    """Print the settings as the README's Markdown table."""
    from proapp.config import SETTINGS

    click.echo("| variable | default | meaning |")
    click.echo("|---|---|---|")
    for setting in SETTINGS:
        default = "—" if setting.default is None else f"`{setting.default}`"
        meaning = setting.description.replace("|", "\\|")
        click.echo(f"| `PROAPP_{setting.name}` | {default} | {meaning} |")
    click.echo("| `PROAPP_INSTANCE_PATH` | `instance/` | Folder for the SQLite database, development secrets and the "
               "console SMS file. |")


@proapp_cli.command("demo")
def demo_cmd() -> None:
    """Add a demo admin and demo patients whose questionnaire windows are open now (development only)."""
    from flask import current_app
    from sqlalchemy import select

    from proapp.accounts.models import Role, User
    from proapp.accounts.services import create_user
    from proapp.patients.models import Patient
    from proapp.patients.services import EnrolmentRequest, enroll_patient

    if current_app.config["PRODUCTION"]:
        fail("demo data is refused in production")
    s = db.session()
    now = services.now()
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
        ("IMATINIB-SSC", "PSL", "IMA-PSL-901", "+33612345603", "fr", "Europe/Paris", 30),
        ("IMATINIB-SSC", "TLS", "IMA-TLS-902", "+33612345604", "fr", "America/Guadeloupe", 30),
    ]
    for study, site, subject, phone, lang, tz, days in demo:
        if s.scalar(select(Patient.id).where(Patient.subject_id == subject)) is not None:
            click.echo(f"{subject} already enrolled")
            continue
        anchor = now.astimezone(ZoneInfo(tz)).date() - timedelta(days=days)
        with db.transaction():
            enroll_patient(s, services.studies(), services.phone_vault(),
                           EnrolmentRequest(study, site, subject, phone, lang, anchor, tz, 10), now=now,
                           actor="cli:demo")
        click.echo(f"enrolled demo patient {subject} ({study}/{site}, {lang}, {tz}), anchor date {anchor}")
    click.echo("questionnaire links (each new link replaces the previous one):")
    from proapp.questionnaire.services import issue_link, open_occurrence_for

    for _study, _site, subject, *_rest in demo:
        patient = s.scalar(select(Patient).where(Patient.subject_id == subject))
        occ = open_occurrence_for(s, patient, now) if patient else None
        if occ is not None and occ.status.value == "scheduled":
            with db.transaction():
                token = issue_link(s, occ, now)
            click.echo(f"  {subject} {occ.visit_code}: {current_app.config['PUBLIC_URL']}/s/{token}")


def run_check() -> int:
    from proapp.ops import deployment_problems

    problems = deployment_problems()
    for problem in problems:
        click.echo(problem)
    if not problems:
        click.echo("deployment OK: settings, database (reachable, schema at head, studies loaded), phone keys, "
                   "SMS gateway")
    return 1 if problems else 0


@proapp_cli.command("check")
def check_cmd() -> None:
    """Check a deployment: one line per problem, exit 1 if any (works even when the app refuses to start)."""
    raise SystemExit(run_check())


def main() -> None:
    """Console-script entry point: the same commands, with the app built from the environment."""
    if sys.argv[1:2] == ["check"]:                 # before building the app: it may refuse to start
        raise SystemExit(run_check())
    from proapp import create_app

    proapp_cli.main(obj=ScriptInfo(create_app=lambda: create_app()), prog_name="proapp")


if __name__ == "__main__":
    main()
