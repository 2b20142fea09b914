"""proapp: patient-reported outcomes for clinical trials.

``create_app(config=None)`` builds the web application (no scheduler inside it: the SMS worker is the
separate ``proapp worker`` process).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask
from flask.cli import AppGroup
from sqlalchemy.orm import configure_mappers

import proapp.models  # noqa: F401  (every mapper known before configure_mappers and the first query)
from proapp import db, demo, mail, ops, web
from proapp.accounts import commands as account_commands
from proapp.accounts import routes as accounts_routes
from proapp.alerts import commands as alert_commands
from proapp.alerts import routes as alert_routes
from proapp.alerts.raising import connect_signals as connect_alerts
from proapp.alerts.raising import raised_telling_patient, rules_telling_patient
from proapp.audit import commands as audit_commands
from proapp.audit.keys import AuditKeyError, parse
from proapp.audit.trail import install as install_audit_trail
from proapp.cli import proapp_cli
from proapp.clock import Clock
from proapp.closure import commands as closure_commands
from proapp.closure import routes as closure_routes
from proapp.config import PROJECT_ROOT, ConfigError, env_setting
from proapp.dashboard import audit_pages
from proapp.dashboard import commands as dashboard_commands
from proapp.dashboard import routes as dashboard_routes
from proapp.export import commands as export_commands
from proapp.export import routes as export_routes
from proapp.export.formats.odm import oid_problems
from proapp.export.formats.redcap import Project
from proapp.export.push import insecure_endpoints
from proapp.extensions import babel, csrf
from proapp.i18n import compile_catalogues, select_locale, stale_catalogues
from proapp.i18n import init_app as i18n_init
from proapp.instruments import commands as instrument_commands
from proapp.instruments import default_registry, load_directory
from proapp.jobs import commands as job_commands
from proapp.jobs import metrics
from proapp.logs import install as redact_logs
from proapp.patients import commands as patient_commands
from proapp.patients.phones import PhoneVault
from proapp.questionnaire import commands as questionnaire_commands
from proapp.questionnaire import routes as questionnaire_routes
from proapp.questionnaire.answering import connect_signals as connect_questionnaire
from proapp.remote import sms_replies, voice_routes
from proapp.remote import sms_routes as sms_routes_replies
from proapp.sms import commands as sms_commands
from proapp.sms import routes as sms_routes
from proapp.sms.delivery import Replies, connect_signals, register_replies
from proapp.studies.catalog import DATA_DIR as STUDY_DIR
from proapp.studies.catalog import DEMO_CONTACTS, StudyFileError, load_studies, missing_information, refused_wording

__all__ = ["PROJECT_ROOT", "create_app", "load_commands"]


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app. ``config`` overrides settings (tests); everything else comes from ``PROAPP_*``.

    Raises ``ConfigError``, ``InstrumentFileError`` or ``StudyFileError`` with a message naming what to fix.
    """
    instance_path = (PROJECT_ROOT / env_setting("INSTANCE_PATH")).resolve()     # an absolute path stays as it is
    app = Flask(__name__, instance_path=str(instance_path), template_folder="../templates",
                static_folder="static")
    app.config.update(ops.app_config(instance_path, overrides=config))

    app.extensions["proapp.clock"] = Clock(app.config.pop("NOW", None))     # tests may start it stopped

    redact_logs(app.logger)
    hops = int(app.config["PROXY_HOPS"])
    if hops:
        from werkzeug.middleware.proxy_fix import ProxyFix

        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)  # type: ignore[method-assign]
    app.config["BABEL_TRANSLATION_DIRECTORIES"] = str(PROJECT_ROOT / "translations")
    if app.config["ENV"] != "production":
        compile_catalogues(app.config["BABEL_TRANSLATION_DIRECTORIES"])
    elif stale := stale_catalogues(app.config["BABEL_TRANSLATION_DIRECTORIES"]):
        # Compiled at install (.ci/setup, python -m proapp.i18n): the code's tree is read-only in production.
        raise ConfigError(f"the compiled translations are missing or older than {', '.join(map(str, stale))}: "
                          "run python -m proapp.i18n (or .ci/setup) when installing or upgrading.")

    _load_definitions(app)

    configure_mappers()  # a mapping mistake stops start-up here, and the first patient request does not pay for it

    db.init_app(app)

    install_audit_trail(app.extensions["proapp.sessionmaker"])  # the app's sessions write their audit entries at commit

    connect_signals()           # a pause, an opt-out or a withdrawal cancels the SMS waiting to go
    connect_questionnaire()     # a withdrawal disables the patient's links

    connect_alerts()            # an occurrence completed, or closed with answers in progress, raises its alerts
    babel.init_app(app, locale_selector=select_locale)
    csrf.init_app(app)

    web.init_app(app)
    i18n_init(app)

    questionnaire_routes.init_app(app)
    # The urgent and same-day advice on the patient's pages comes from the alerts feature, above the questionnaire.
    questionnaire_routes.register_safety_advice(app, questionnaire_routes.SafetyAdvice(
        met=rules_telling_patient, raised=raised_telling_patient))

    sms_routes.init_app(app)
    voice_routes.init_app(app)
    sms_routes_replies.init_app(app)          # SMS conversations: the incoming message webhook
    register_replies(Replies(compose=sms_replies.compose, busy=sms_replies.busy))

    mail.init_app(app)

    accounts_routes.init_app(app)
    dashboard_routes.init_app(app)
    audit_pages.init_app(app)

    alert_routes.init_app(app)

    export_routes.init_app(app)

    closure_routes.init_app(app)

    metrics.init_app(app)

    app.cli.add_command(load_commands())
    return app


def load_commands() -> AppGroup:
    """The ``proapp`` command group with every feature's commands."""
    proapp_cli.add_command(ops.init_cmd)
    proapp_cli.add_command(ops.config_table_cmd)
    proapp_cli.add_command(ops.check_cmd)
    proapp_cli.add_command(demo.demo_cmd)
    proapp_cli.add_command(instrument_commands.instruments_cmd)
    proapp_cli.add_command(account_commands.user_group)
    proapp_cli.add_command(audit_commands.audit_group)
    proapp_cli.add_command(questionnaire_commands.link_cmd)
    proapp_cli.add_command(sms_commands.sms_group)
    proapp_cli.add_command(alert_commands.alerts_cli)
    proapp_cli.add_command(export_commands.api_key_group)
    proapp_cli.add_command(job_commands.tick_cmd)
    proapp_cli.add_command(job_commands.worker_cmd)
    proapp_cli.add_command(job_commands.restore_group)
    proapp_cli.add_command(closure_commands.study_group)
    proapp_cli.add_command(patient_commands.enroll_cmd)
    proapp_cli.add_command(patient_commands.schedule_cmd)
    proapp_cli.add_command(dashboard_commands.reschedule_cmd)
    proapp_cli.add_command(patient_commands.phones_group)
    proapp_cli.add_command(patient_commands.purge_contacts_cmd)
    return proapp_cli


def _load_definitions(app: Flask) -> None:
    """Instrument and study files are checked at start-up: a malformed file stops the app here."""
    instrument_dir = app.config.get("INSTRUMENTS_DIR")
    registry = load_directory(Path(instrument_dir)) if instrument_dir else default_registry()
    app.extensions["proapp.instruments"] = registry
    studies_dir = Path(app.config["STUDIES_DIR"]) if app.config.get("STUDIES_DIR") else STUDY_DIR
    contacts = app.config.get("SITE_CONTACTS")
    demo = not contacts and not app.config["PRODUCTION"]
    app.extensions["proapp.studies"] = load_studies(studies_dir, registry,
                                                    Path(contacts) if contacts else DEMO_CONTACTS if demo else None,
                                                    demo_contacts=demo)

    if app.config["PRODUCTION"]:       # patients informed; the licensed wording, or what the sponsor accepted
        refused = missing_information(app.extensions["proapp.studies"]) + refused_wording(
            app.extensions["proapp.studies"], registry)
        if refused:
            raise StudyFileError(f"{refused[0]} ({len(refused)} such problem(s); proapp check lists them)")
    for loaded in app.extensions["proapp.studies"].all():      # ODM and a REDCap project the EDC can import
        problems = oid_problems(loaded.definition, registry) or Project(loaded.definition, registry).problems()
        if problems:
            raise StudyFileError(f"study file {loaded.filename}: {problems[0]}")
    if app.config["PRODUCTION"]:
        for problem in insecure_endpoints(app.extensions["proapp.studies"]):
            raise StudyFileError(problem)
    app.extensions["proapp.phones"] = PhoneVault(app.config["PHONE_KEYS"])

    try:
        app.extensions["proapp.audit_keys"] = parse(app.config["AUDIT_KEYS"])
    except AuditKeyError as exc:
        raise ConfigError(f"PROAPP_AUDIT_KEYS: {exc}.") from None
