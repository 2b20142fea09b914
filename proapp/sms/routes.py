"""Twilio's delivery reports (signed webhook) and, in development with the console gateway, the outbox page."""

from __future__ import annotations

import logging

from flask import Blueprint, abort, current_app, render_template, request
from sqlalchemy import select

from proapp import db, runtime
from proapp.extensions import csrf
from proapp.patients.models import Patient
from proapp.sms import delivery as outbox
from proapp.sms.gateways import ConsoleGateway, from_config
from proapp.sms.models import SmsMessage

log = logging.getLogger("proapp.sms")
bp = Blueprint("sms", __name__)


def _signed_url() -> str:
    """The URL Twilio signed: the configured public URL (the app may sit behind a proxy) plus path and query."""
    url = current_app.config["PUBLIC_URL"] + request.path
    if request.query_string:
        url += "?" + request.query_string.decode("latin-1")
    return url


@bp.post("/sms/status/<int:message_id>")
@csrf.exempt
def status_callback(message_id: int) -> tuple[str, int]:
    if current_app.config["SMS_GATEWAY"] != "twilio":
        abort(404)
    from twilio.request_validator import RequestValidator

    validator = RequestValidator(current_app.config["TWILIO_AUTH_TOKEN"])
    signature = request.headers.get("X-Twilio-Signature", "")
    if not signature or not validator.validate(_signed_url(), request.form.to_dict(), signature):
        log.warning("SMS status callback for %s refused: bad or missing signature", message_id)
        abort(403)
    sid = request.form.get("MessageSid", "")
    raw = request.form.get("MessageStatus") or request.form.get("SmsStatus") or ""
    try:
        error_code = int(request.form["ErrorCode"]) if request.form.get("ErrorCode") else None
    except ValueError:
        error_code = None
    s = db.session()
    msg = outbox.locked(s, message_id)
    if msg is None or not sid:
        abort(404)
    outbox.apply_provider_status(s, msg, sid, raw, error_code, runtime.now())
    s.commit()
    return "", 204


@bp.get("/dev/sms")
def dev_outbox() -> str:
    """Development only: the SMS the console gateway 'sent', newest first, with their links to click."""
    gateway = from_config(current_app.config, current_app.instance_path)
    if current_app.config["PRODUCTION"] or not isinstance(gateway, ConsoleGateway):
        abort(404)
    entries = list(reversed(gateway.entries()))[:200]
    waiting = outbox.waiting_messages(db.session())

    ids = [e.get("message_id") for e in entries if isinstance(e.get("message_id"), int)]
    subjects = dict(db.session().execute(select(SmsMessage.id, Patient.subject_id)
                                         .join(Patient, Patient.id == SmsMessage.patient_id)
                                         .where(SmsMessage.id.in_(ids or [-1]))).all())
    return render_template("dev_sms.html", entries=entries, waiting=waiting, subjects=subjects)


def init_app(app) -> None:
    app.register_blueprint(bp)
