"""Twilio's voice webhooks: the answered call, each Gather's result, the call's end. Each one is signed by Twilio
(``X-Twilio-Signature``); an unsigned or wrongly signed request is refused with 403 and changes nothing. The
state machine is ``remote.voice``; these only check, call it, commit and render its TwiML."""

from __future__ import annotations

import logging

from flask import Blueprint, Response, abort, current_app, render_template, request
from sqlalchemy import select

from proapp import db, runtime
from proapp.extensions import csrf
from proapp.remote import voice
from proapp.sms.gateways import ConsoleGateway, from_config
from proapp.sms.models import SmsMessage
from proapp.sms.webhooks import require_twilio_signature

log = logging.getLogger("proapp.voice")
bp = Blueprint("voice", __name__)


def _check_signature() -> None:
    require_twilio_signature(f"voice webhook {request.path}")


def _reply() -> voice.Reply:
    form = request.form
    try:
        confidence = float(form["Confidence"]) if form.get("Confidence") else None
    except ValueError:
        confidence = None
    sid = form.get("CallSid", "")
    if not sid:
        abort(400)
    return voice.Reply(sid, digits=form.get("Digits") or None, speech=form.get("SpeechResult") or None,
                       confidence=confidence, answered_by=form.get("AnsweredBy") or None)


def _context() -> voice.Context:
    return voice.Context(runtime.instruments(), runtime.studies(), current_app.config["SMS_SENDER_NAME"])


def _twiml(turn: voice.Turn, message_id: int) -> Response:
    action = f"{current_app.config['PUBLIC_URL']}/voice/step/{message_id}"
    return Response(voice.twiml(turn, action), mimetype="text/xml")


def _turn(advance, message_id: int) -> Response:
    """Check the signature, let the call's state machine take Twilio's input, commit, answer with its TwiML."""
    _check_signature()
    reply = _reply()
    s = db.session()
    turn = advance(s, _context(), message_id, reply, runtime.now())
    if turn is None:
        abort(404)
    s.commit()
    return _twiml(turn, message_id)


@bp.post("/voice/answer/<int:message_id>")
@csrf.exempt
def answer(message_id: int) -> Response:
    return _turn(voice.answered, message_id)


@bp.post("/voice/step/<int:message_id>")
@csrf.exempt
def step(message_id: int) -> Response:
    return _turn(voice.step, message_id)


@bp.post("/voice/status/<int:message_id>")
@csrf.exempt
def status(message_id: int) -> tuple[str, int]:
    _check_signature()
    form = request.form
    s = db.session()
    if not form.get("CallSid") or not voice.call_ended(s, _context(), message_id, form["CallSid"],
                                                       form.get("CallStatus", ""), form.get("AnsweredBy"),
                                                       runtime.now()):
        abort(404)
    s.commit()
    return "", 204


@bp.route("/dev/voice/<int:message_id>", methods=["GET", "POST"])
def dev_call(message_id: int) -> str:
    """Development only: walk a call the console gateway recorded, the page playing the phone (the state machine is
    the one Twilio's webhooks drive)."""
    gateway = from_config(current_app.config, current_app.instance_path)
    if current_app.config["PRODUCTION"] or not isinstance(gateway, ConsoleGateway):
        abort(404)
    s = db.session()
    sid = s.scalar(select(SmsMessage.provider_sid).where(SmsMessage.id == message_id, SmsMessage.channel == "voice"))
    if not sid:
        abort(404)
    ctx, now = _context(), runtime.now()
    if request.method == "GET":
        turn = voice.answered(s, ctx, message_id, voice.Reply(sid, answered_by="human"), now)
    else:
        try:
            confidence = float(request.form.get("confidence") or 1)
        except ValueError:
            confidence = 1.0
        turn = voice.step(s, ctx, message_id, voice.Reply(sid, digits=request.form.get("digits", "").strip() or None,
                                                          speech=request.form.get("speech", "").strip() or None,
                                                          confidence=confidence), now)
    if turn is None:
        abort(404)
    if turn.hangup:
        voice.call_ended(s, ctx, message_id, sid, "completed", "human", now)
    s.commit()
    return render_template("dev_voice.html", turn=turn, message_id=message_id)


def init_app(app) -> None:
    app.register_blueprint(bp)
