"""Twilio's incoming message webhook (set it in the Twilio console on the sending number or the Messaging Service:
``<PUBLIC_URL>/sms/inbound``, HTTP POST). Signed by Twilio (403 otherwise); the answer is always an empty TwiML
``<Response/>``: every message of the conversation goes through the SMS outbox (proapp/remote/sms_replies.py)."""

from __future__ import annotations

import logging

from flask import Blueprint, Flask, Response, request

from proapp import db, runtime
from proapp.extensions import csrf
from proapp.patients.phones import PhoneError, normalise
from proapp.remote import sms_replies
from proapp.sms.webhooks import require_twilio_signature

log = logging.getLogger("proapp.sms")
bp = Blueprint("sms_replies", __name__)
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'
MAX_BODY = 1600                     # Twilio's longest message



def _twiml() -> Response:
    return Response(EMPTY_TWIML, mimetype="text/xml")


@bp.post("/sms/inbound")
@csrf.exempt
def inbound() -> Response:
    require_twilio_signature("incoming SMS")
    sid = request.form.get("MessageSid", "")[:64]
    body = request.form.get("Body", "")[:MAX_BODY]
    try:
        number = normalise(request.form.get("From", ""))
    except PhoneError:
        return _twiml()                         # not a mobile number we could know: nothing stored, nothing logged
    s = db.session()
    contact = sms_replies.contact_for(s, runtime.phone_vault().lookup(number))
    if contact is None:
        s.rollback()
        return _twiml()                         # an unknown number: nothing stored, nothing about it logged
    ctx = sms_replies.Context(runtime.instruments(), runtime.studies(), runtime.now())
    done = sms_replies.receive(s, contact, body, sid, ctx)
    s.commit()
    log.info("incoming SMS %s of patient %s: %s", sid, contact.patient_id, done)
    return _twiml()


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
