"""Checking a deployment (``proapp check``): everything that would stop proapp or make it misbehave in
production, one sentence per problem. It reads the environment itself, so it also runs when the app would
refuse to start."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click
from flask import current_app
from flask.cli import with_appcontext
from sqlalchemy import select, text
from sqlalchemy.engine import make_url

from proapp import db, runtime
from proapp.audit.keys import generate as generate_audit_keys
from proapp.audit.keys import key_problems as audit_key_problems
from proapp.cli import fail
from proapp.config import SETTINGS, Check, load_config, production_problems, settings_from
from proapp.db import make_engine
from proapp.export.push import insecure_endpoints, push_problems
from proapp.instruments import default_registry
from proapp.mail import mail_problems
from proapp.migrate import current_revision, grant_app_role, head_revision, upgrade
from proapp.sms.gateways import TwilioGateway
from proapp.sms.settings import sms_problems
from proapp.studies.catalog import DATA_DIR, load_studies, missing_information, unvalidated_wording
from proapp.studies.sync import sync_studies

CHECKS: tuple[Check, ...] = (audit_key_problems, sms_problems, mail_problems, push_problems)
"""Each feature's check of its own settings: the app's start-up (``app_config``) and ``proapp check`` run them."""
DEVELOPMENT_SECRETS = {"AUDIT_KEYS": generate_audit_keys}


def app_config(instance_path: Path, env: Mapping[str, str] | None = None,
               overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The Flask config of this process (``proapp.config.load_config``) with every feature's settings checked."""
    return load_config(instance_path, env, overrides, checks=CHECKS, development_secrets=DEVELOPMENT_SECRETS)


def deployment_problems(env: Mapping[str, str] | None = None) -> list[str]:
    env = os.environ if env is None else env
    try:
        cfg = settings_from(env)
    except Exception as exc:             # a setting that is not a number, for example
        return [str(exc)]
    problems = []
    if cfg["ENV"] != "production":
        problems.append(f"PROAPP_ENV is {cfg['ENV']!r}: a deployment runs with PROAPP_ENV=production.")
    production = {**cfg, "ENV": "production"}
    problems += production_problems(production) + [p for check in CHECKS for p in check(production)]
    problems += _study_problems(cfg, env)
    if not cfg["DATABASE_URL"]:
        problems.append("PROAPP_DATABASE_URL is missing (PostgreSQL: postgresql+psycopg://user@host/db).")
    else:
        problems += _database_problems(cfg)
    if cfg["SMS_GATEWAY"] == "twilio" and cfg["TWILIO_ACCOUNT_SID"] and cfg["TWILIO_AUTH_TOKEN"]:
        problems += _twilio_problems(cfg)
    return problems


def _catalog(cfg: dict[str, Any]):
    contacts = Path(cfg["SITE_CONTACTS"]) if cfg.get("SITE_CONTACTS") else None
    return load_studies(Path(cfg["STUDIES_DIR"]) if cfg["STUDIES_DIR"] else DATA_DIR, default_registry(), contacts)


def _study_problems(cfg: dict[str, Any], env: Mapping[str, str]) -> list[str]:
    try:
        catalog = _catalog(cfg)
    except Exception as exc:
        return [f"the study files cannot be loaded: {exc}"]

    out = [f"{problem}." for problem in (*insecure_endpoints(catalog), *missing_information(catalog))]
    for loaded in catalog.all():
        for wording in unvalidated_wording(loaded.definition, default_registry()):
            out.append(("warning: " if wording.accepted else "") + wording.sentence() + ".")
        push = loaded.definition.edc.push
        if push is not None and not env.get(push.secret_env):
            out.append(f"{push.secret_env} is missing: study {loaded.definition.code} pushes responses to "
                       f"{push.url} and signs them with it.")
    return out


def _database_problems(cfg: dict[str, Any]) -> list[str]:
    url = cfg["DATABASE_URL"]
    shown = make_url(url).render_as_string(hide_password=True)
    engine = make_engine(url)
    try:
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            return [f"the database at {shown} cannot be reached: {first[:200]}"]
        current, head = current_revision(engine), head_revision(url)
        if current != head:
            return [f"the database schema is at {current or 'nothing'} but this code needs {head}: run proapp init."]
        out = []
        from proapp.patients.models import PatientContact
        from proapp.studies.models import Study

        with engine.connect() as conn:
            loaded = set(conn.execute(select(Study.code)).scalars())
            try:
                missing = [c for c in _catalog(cfg).codes() if c not in loaded]
            except Exception:
                missing = []
            if missing:
                out.append(f"study {', '.join(missing)} is not loaded in the database: run proapp init.")
            sample = conn.execute(select(PatientContact.phone_ciphertext)
                                  .where(PatientContact.phone_ciphertext.is_not(None)).limit(1)).scalar()
        from proapp.migrate import audit_table_owned_by_current_role

        owner = audit_table_owned_by_current_role(engine)
        if owner:
            out.append(f"warning: the app's database role {owner} owns the audit table: it could disable the "
                       "table's triggers and rewrite it. Run the app as another role (proapp init --app-role, "
                       "see docs/security-and-audit.md).")
        if sample is not None and cfg.get("PHONE_KEYS"):
            from proapp.patients.phones import PhoneVault

            vault = PhoneVault(cfg["PHONE_KEYS"])
            with engine.connect() as conn:
                stored = conn.execute(select(PatientContact.phone_ciphertext)
                                      .where(PatientContact.phone_ciphertext.is_not(None))).scalars().all()
            lost = 0
            for ciphertext in stored:
                try:
                    vault.decrypt(ciphertext)
                except ValueError:
                    lost += 1
            if lost == len(stored):
                out.append("PROAPP_PHONE_KEYS cannot decrypt the stored phone numbers (was the key that wrote them "
                           "removed or replaced?).")
            elif lost:
                # Not a refusal: the app runs for everything else; these patients are flagged for a new number
                # when their next SMS is due (docs/operations.md, "Keys").
                out.append(f"warning: {lost} of {len(stored)} stored phone numbers cannot be decrypted with "
                           "PROAPP_PHONE_KEYS (a lost key): their patients get no SMS and are flagged for a new "
                           "number; restore the key from the safe if you can.")
        return out
    finally:
        engine.dispose()


def _twilio_problems(cfg: dict[str, Any]) -> list[str]:
    from twilio.base.exceptions import TwilioException, TwilioRestException

    gateway = TwilioGateway(account_sid=cfg["TWILIO_ACCOUNT_SID"], auth_token=cfg["TWILIO_AUTH_TOKEN"], sender=None,
                            messaging_service_sid=None, api_base=cfg["TWILIO_API_BASE"],
                            timeout=int(cfg["TWILIO_TIMEOUT"]))
    try:
        client = gateway._client()
        client.api.v2010.accounts(cfg["TWILIO_ACCOUNT_SID"]).fetch()
    except TwilioRestException as exc:
        if exc.status in (401, 403):
            return ["Twilio refused PROAPP_TWILIO_ACCOUNT_SID / PROAPP_TWILIO_AUTH_TOKEN."]
        return [f"Twilio answered {exc.status} when the account was checked."]
    except (TwilioException, OSError) as exc:
        return [f"Twilio cannot be reached at {cfg['TWILIO_API_BASE']}: {type(exc).__name__}."]
    return []


# Commands ---------------------------------------------------------------------------------------------------


@click.command("init")
@with_appcontext
@click.option("--app-role", default=None, help="PostgreSQL: grant this role what the web app and the worker need, "
              "the audit tables append-only (run init as the tables' owner; the app connects as the role).")
def init_cmd(app_role: str | None) -> None:
    """Create or upgrade the database to the newest schema and load the study files (safe to run twice)."""
    upgrade(current_app.config["DATABASE_URL"])
    if app_role:
        try:
            for line in grant_app_role(current_app.config["DATABASE_URL"], app_role):
                click.echo(line)
        except ValueError as exc:
            fail(str(exc))
    with db.transaction() as s:
        changes = sync_studies(s, runtime.studies(), runtime.now())
    for line in changes:
        click.echo(line)
    click.echo(f"database at the newest schema; studies: {', '.join(runtime.studies().codes())}")


@click.command("config-table")
@with_appcontext
def config_table_cmd() -> None:
    """Print the settings as the Markdown table of docs/operations.md."""
    click.echo("| variable | default | meaning |")
    click.echo("|---|---|---|")
    for setting in SETTINGS:
        default = "—" if setting.default is None else f"`{setting.default}`"
        meaning = setting.description.replace("|", "\\|")
        click.echo(f"| `PROAPP_{setting.name}` | {default} | {meaning} |")


def run_check() -> int:
    from proapp.ops import deployment_problems

    found = deployment_problems()
    problems = [p for p in found if not p.startswith("warning: ")]
    for line in problems:
        click.echo(line)
    if not problems:
        click.echo("deployment OK: settings, database (reachable, schema at head, studies loaded), phone keys, "
                   "SMS gateway, instruments' wording validated or accepted by the study files")
    for line in found:
        if line not in problems:
            click.echo(line)
    return 1 if problems else 0


@click.command("check")
@with_appcontext
def check_cmd() -> None:
    """Check a deployment: one line per problem, exit 1 if any (works even when the app refuses to start)."""
    raise SystemExit(run_check())
