"""Twilio's webhooks are signed (``X-Twilio-Signature``, HMAC of the URL and the form with the auth token): the one
check every webhook of the app makes first (delivery reports, calls, incoming messages)."""

from __future__ import annotations

import logging

from flask import abort, current_app, request

log = logging.getLogger("proapp.sms")


def signed_url() -> str:
    """The URL Twilio signed: the configured public URL (the app may sit behind a proxy) plus path and query."""
    url = current_app.config["PUBLIC_URL"] + request.path
    if request.query_string:
        url += "?" + request.query_string.decode("latin-1")
    return url


def require_twilio_signature(what: str) -> None:
    """404 unless the app sends through Twilio; 403 (logged, nothing else) unless Twilio signed this request."""
    if current_app.config["SMS_GATEWAY"] != "twilio":
        abort(404)
    from twilio.request_validator import RequestValidator

    validator = RequestValidator(current_app.config["TWILIO_AUTH_TOKEN"])
    signature = request.headers.get("X-Twilio-Signature", "")
    if not signature or not validator.validate(signed_url(), request.form.to_dict(), signature):
        log.warning("%s refused: bad or missing signature", what)
        abort(403)
