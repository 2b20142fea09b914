"""The SMS feature's settings (``PROAPP_SMS_*``, ``PROAPP_TWILIO_*``) that cannot work: start-up refuses them in
every mode and ``proapp check`` lists them (``proapp.ops.CHECKS``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def sms_problems(cfg: Mapping[str, Any]) -> list[str]:
    """SMS settings that cannot work, one sentence each."""
    problems = []
    gateway = cfg.get("SMS_GATEWAY")
    if gateway not in ("console", "twilio"):
        problems.append(f"PROAPP_SMS_GATEWAY must be console or twilio, not {gateway!r}.")
    if gateway == "console" and cfg.get("ENV") == "production":
        problems.append("PROAPP_SMS_GATEWAY=console sends no SMS: use twilio in production.")
    if gateway == "twilio" and (not cfg.get("TWILIO_ACCOUNT_SID") or not cfg.get("TWILIO_AUTH_TOKEN")):
        problems.append("PROAPP_TWILIO_ACCOUNT_SID and PROAPP_TWILIO_AUTH_TOKEN are needed for the twilio gateway.")
    name = cfg.get("SMS_SENDER_NAME") or ""
    if not (1 <= len(name) <= 11 and name.replace(" ", "").isalnum() and name.isascii()):
        problems.append("PROAPP_SMS_SENDER_NAME must be 1 to 11 ASCII letters, digits or spaces.")
    for key in ("SMS_QUIET_START", "SMS_QUIET_END"):
        if not 0 <= int(cfg.get(key, 0)) <= 23:
            problems.append(f"PROAPP_{key} must be an hour from 0 to 23.")
    if int(cfg.get("SMS_CLAIM_LEASE_SECONDS", 120)) <= int(cfg.get("TWILIO_TIMEOUT", 10)) + 1:
        problems.append("PROAPP_SMS_CLAIM_LEASE_SECONDS must be longer than PROAPP_TWILIO_TIMEOUT plus one second "
                        "(a send in progress must never look abandoned).")
    if cfg.get("SMS_QUIET_START") == cfg.get("SMS_QUIET_END"):
        problems.append("PROAPP_SMS_QUIET_START and PROAPP_SMS_QUIET_END must differ.")
    for key, low in (("SMS_RATE_PER_SECOND", 0), ("SMS_MAX_ATTEMPTS", 1), ("SMS_RETRY_SECONDS", 1),
                     ("SMS_SEND_THREADS", 1), ("TWILIO_TIMEOUT", 1), ("SMS_CLAIM_LEASE_SECONDS", 2),
                     ("SMS_UNKNOWN_GRACE_SECONDS", 0), ("SMS_RECONCILE_SECONDS", 1)):
        if int(cfg.get(key, low)) < low:
            problems.append(f"PROAPP_{key} must be at least {low}.")
    return problems
