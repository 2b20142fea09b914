"""SMS gateways, chosen by ``PROAPP_SMS_GATEWAY``: ``console`` (development) and ``twilio`` (the real SDK).

A gateway turns one send into one of four outcomes: accepted (with the gateway's message ID), retry (the
gateway could not take it: 5xx, 429, the connection could not be made), failed (refused for good) or
unknown (the request may have gone out: a timeout while waiting for the answer). An unknown outcome is never
resent blindly: ``find`` looks for the message at the gateway by recipient and body hash first.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import requests

from proapp import jsonlines
from proapp.outbox import Outcome
from proapp.patients.phones import mask

log = logging.getLogger("proapp.sms")

# Twilio error codes meaning the number will never receive our SMS.
UNUSABLE_CODES = {
    21211: "invalid number",
    21610: "opted out at the carrier (replied STOP)",
    21614: "not a mobile number",
    30006: "landline or unreachable carrier",
}
TWILIO_API = "https://api.twilio.com"
CALL_RING_SECONDS = 30              # how long a call rings before Twilio gives up ("no-answer")


def body_hash(body: str) -> str:
    return hashlib.sha256(body.encode()).hexdigest()


@dataclass(frozen=True)
class Outgoing:
    message_id: int
    to: str
    body: str
    callback_url: str | None
    channel: str = "sms"               # "sms", "sms_replies" (a text too), "voice" (a call placed)
    answer_url: str | None = None      # a call: the webhook Twilio asks what to say when it is answered


@dataclass(frozen=True)
class Found:
    sid: str
    provider_status: str
    error_code: int | None = None


class Gateway(Protocol):
    name: str

    def send(self, out: Outgoing) -> Outcome: ...

    def find(self, to: str, body_sha256: str) -> Found | None: ...

    def fetch(self, sid: str) -> Found | None: ...

    def sent_since(self, to: str, since: datetime) -> list[Sent]: ...

    def find_call(self, to: str, since: datetime) -> Found | None: ...


@dataclass(frozen=True)
class Sent:
    """A message the gateway's log holds (after a restore, what went out since the backup)."""

    sid: str
    body: str
    provider_status: str
    created: datetime


class ConsoleGateway:
    """Logs each SMS and appends it to a JSON-lines file in the instance folder (read by ``/dev/sms``)."""

    name = "console"

    def __init__(self, path: Path):
        self.path = path

    def send(self, out: Outgoing) -> Outcome:
        if out.channel == "voice":
            return self._call(out)
        sid = "CONSOLE" + secrets.token_hex(12)
        record = {"sid": sid, "message_id": out.message_id, "to": mask(out.to),
                  "to_sha256": hashlib.sha256(out.to.encode()).hexdigest(), "body": out.body,
                  "body_sha256": body_hash(out.body), "at": datetime.now(UTC).isoformat(timespec="seconds")}
        jsonlines.append(self.path, record)
        log.info("SMS to %s: %s", mask(out.to), out.body)
        return Outcome("sent", reference=sid, provider_status="delivered")

    def _call(self, out: Outgoing) -> Outcome:
        """A call is recorded, never placed: /dev/sms lists it, linked to /dev/voice/<id> that walks it."""
        sid = "CONSOLECA" + secrets.token_hex(12)
        body = f"Voice call: {(out.answer_url or '').replace('/voice/answer/', '/dev/voice/')}"
        record = {"sid": sid, "message_id": out.message_id, "channel": "voice", "to": mask(out.to),
                  "to_sha256": hashlib.sha256(out.to.encode()).hexdigest(), "body": body,
                  "body_sha256": body_hash(body), "answer_url": out.answer_url, "callback_url": out.callback_url,
                  "at": datetime.now(UTC).isoformat(timespec="seconds")}
        jsonlines.append(self.path, record)
        log.info("Voice call to %s (console: not placed): %s", mask(out.to), out.answer_url)
        return Outcome("sent", reference=sid, provider_status="queued")

    def entries(self) -> list[dict[str, Any]]:
        return jsonlines.read(self.path)

    def find_call(self, to: str, since: datetime) -> Found | None:
        to_sha = hashlib.sha256(to.encode()).hexdigest()
        for e in reversed(self.entries()):
            if (e.get("channel") == "voice" and e.get("to_sha256") == to_sha
                    and datetime.fromisoformat(e["at"]) >= since):
                return Found(e["sid"], "queued")
        return None

    def find(self, to: str, body_sha256: str) -> Found | None:
        to_sha = hashlib.sha256(to.encode()).hexdigest()
        for entry in self.entries():
            if entry.get("body_sha256") == body_sha256 and entry.get("to_sha256") == to_sha:
                return Found(entry["sid"], "delivered")
        return None

    def fetch(self, sid: str) -> Found | None:
        return next((Found(sid, "delivered") for e in self.entries() if e.get("sid") == sid), None)

    def sent_since(self, to: str, since: datetime) -> list[Sent]:
        to_sha = hashlib.sha256(to.encode()).hexdigest()
        return [Sent(e["sid"], e["body"], "delivered", datetime.fromisoformat(e["at"])) for e in self.entries()
                if e.get("to_sha256") == to_sha and datetime.fromisoformat(e["at"]) >= since]


class TwilioGateway:
    """The official ``twilio`` SDK. ``api_base`` replaces https://api.twilio.com (tests use a local fake)."""

    name = "twilio"

    def __init__(self, *, account_sid: str, auth_token: str, sender: str | None, messaging_service_sid: str | None,
                 api_base: str = TWILIO_API, timeout: float = 10, voice_from: str | None = None,
                 ring_seconds: int = CALL_RING_SECONDS):
        self.account_sid, self.auth_token = account_sid, auth_token
        self.voice_from, self.ring_seconds = voice_from or sender, ring_seconds
        self.sender, self.messaging_service_sid = sender, messaging_service_sid
        self.api_base, self.timeout = api_base.rstrip("/"), timeout
        self._client_instance: Any = None

    def _client(self):
        """One SDK client shared by the sending threads (requests' connection pool is thread-safe), built and
        warmed up once so that the first SMS of a worker is not late."""
        if self._client_instance is None:
            from requests.adapters import HTTPAdapter
            from twilio.http.http_client import TwilioHttpClient
            from twilio.rest import Client

            base = self.api_base

            class _Http(TwilioHttpClient):
                def request(self, method: str, url: str, *args: Any, **kwargs: Any):
                    if url.startswith(TWILIO_API):
                        url = base + url[len(TWILIO_API):]
                    return super().request(method, url, *args, **kwargs)

            http = _Http(timeout=self.timeout, pool_connections=True)
            for prefix in ("https://", "http://"):
                http.session.mount(prefix, HTTPAdapter(pool_connections=4, pool_maxsize=64, max_retries=0))
            client = Client(self.account_sid, self.auth_token, http_client=http)
            _ = client.messages                 # loads the SDK's API modules now
            self._client_instance = client
        return self._client_instance

    def send(self, out: Outgoing) -> Outcome:
        if out.channel == "voice":
            return self._call(out)
        return self._request(lambda: self._client().messages.create(**self._sms_params(out)))

    def _sms_params(self, out: Outgoing) -> dict[str, Any]:
        params: dict[str, Any] = {"to": out.to, "body": out.body}
        if self.messaging_service_sid:
            params["messaging_service_sid"] = self.messaging_service_sid
        else:
            params["from_"] = self.sender
        if out.callback_url:
            params["status_callback"] = out.callback_url
        return params

    def _call(self, out: Outgoing) -> Outcome:
        """Place a call (``calls.create``): Twilio asks ``answer_url`` what to say once it is answered, with
        answering machine detection (``AnsweredBy``), and posts the call's end to ``callback_url``. The
        Outcome's reference is the CallSid."""
        return self._request(lambda: self._client().calls.create(
            to=out.to, from_=self.voice_from, url=out.answer_url, method="POST",
            status_callback=out.callback_url, status_callback_method="POST", machine_detection="Enable",
            timeout=self.ring_seconds))

    def _request(self, create: Any) -> Outcome:
        from twilio.base.exceptions import TwilioRestException

        try:
            msg = create()
        except TwilioRestException as exc:
            if exc.status == 429 or exc.status >= 500:
                return Outcome("retry", f"HTTP {exc.status}: {exc.msg}"[:300], error_code=exc.code)
            return Outcome("failed", f"HTTP {exc.status}: {exc.msg}"[:300], error_code=exc.code)
        except requests.exceptions.RequestException as exc:
            if _never_left(exc):
                return Outcome("retry", f"connection failed: {type(exc).__name__}")
            return Outcome("unknown", f"no answer from Twilio: {type(exc).__name__}")
        return Outcome("sent", getattr(msg, "error_message", None), reference=msg.sid, provider_status=msg.status,
                       error_code=getattr(msg, "error_code", None))

    def find_call(self, to: str, since: datetime) -> Found | None:
        """A call to ``to`` created since ``since`` (an unknown outcome: the request may have placed it). Twilio's
        own StartTime filter leaves out the calls not dialled yet (no start time), so the filter is ours, on the
        creation time."""
        for call in self._client().calls.list(to=to, limit=50):
            created = call.date_created or call.start_time
            if created is None or created >= since:
                return Found(call.sid, call.status)
        return None

    def find(self, to: str, body_sha256: str) -> Found | None:
        for msg in self._client().messages.list(to=to, limit=100):
            if msg.body is not None and body_hash(msg.body) == body_sha256:
                return Found(msg.sid, msg.status, msg.error_code)
        return None

    def sent_since(self, to: str, since: datetime) -> list[Sent]:
        """Twilio's message log for ``to`` since ``since`` (its own date filter is by day; this one is exact)."""
        out = []
        for msg in self._client().messages.list(to=to, date_sent_after=since, page_size=100):
            created = msg.date_created or msg.date_sent
            if msg.body is not None and created is not None and created >= since:
                out.append(Sent(msg.sid, msg.body, msg.status, created))
        return out

    def fetch(self, sid: str) -> Found | None:
        from twilio.base.exceptions import TwilioRestException

        try:
            if sid.startswith("CA"):                       # a call's sid
                call = self._client().calls(sid).fetch()
                return Found(call.sid, call.status)
            msg = self._client().messages(sid).fetch()
        except TwilioRestException as exc:
            if exc.status == 404:
                return None
            raise
        return Found(msg.sid, msg.status, msg.error_code)


def _never_left(exc: Exception) -> bool:
    """True when the request certainly did not reach the gateway (connection refused or connect timeout)."""
    from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    if isinstance(exc, requests.exceptions.ConnectionError) and not isinstance(exc, requests.exceptions.ReadTimeout):
        reason = getattr(exc.args[0], "reason", None) if exc.args else None
        return isinstance(reason, NewConnectionError | ConnectTimeoutError)
    return False


def from_config(config: Mapping[str, Any], instance_path: str | Path) -> Gateway:
    if config["SMS_GATEWAY"] == "twilio":
        return TwilioGateway(account_sid=config["TWILIO_ACCOUNT_SID"], auth_token=config["TWILIO_AUTH_TOKEN"],
                             sender=config.get("TWILIO_FROM") or config["SMS_SENDER_NAME"],
                             messaging_service_sid=config.get("TWILIO_MESSAGING_SERVICE_SID"),
                             api_base=config["TWILIO_API_BASE"], timeout=config["TWILIO_TIMEOUT"],
                             voice_from=config.get("TWILIO_VOICE_FROM") or config.get("TWILIO_FROM"))
    return ConsoleGateway(Path(instance_path) / "console_sms.jsonl")
