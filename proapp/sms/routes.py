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
from proapp.sms.webhooks import require_twilio_signature

log = logging.getLogger("proapp.sms")
bp = Blueprint("sms", __name__)



@bp.post("/sms/status/<int:message_id>")
@csrf.exempt
def status_callback(message_id: int) -> tuple[str, int]:
    require_twilio_signature(f"SMS status callback for {message_id}")
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
