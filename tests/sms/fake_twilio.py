"""A fake Twilio REST API on 127.0.0.1 for the real ``twilio`` SDK: create, fetch and list messages, with
injectable faults (500, 429, a timeout after the message was taken, slow answers, refusals by number) and
status callbacks signed with Twilio's own algorithm (``twilio.request_validator``)."""

from __future__ import annotations

import base64
import json
import socket
import threading
import time
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from twilio.request_validator import RequestValidator

ACCOUNT_SID = "AC" + "1" * 32
AUTH_TOKEN = "f" * 32


@dataclass
class FakeMessage:
    sid: str
    to: str
    sender: str | None
    service: str | None
    body: str
    status_callback: str | None
    status: str = "queued"
    error_code: int | None = None
    created: datetime = field(default_factory=lambda: datetime.now(UTC))

    def resource(self) -> dict[str, Any]:
        return {
            "sid": self.sid, "account_sid": ACCOUNT_SID, "to": self.to, "from": self.sender,
            "messaging_service_sid": self.service, "body": self.body, "status": self.status,
            "num_segments": "1", "direction": "outbound-api", "api_version": "2010-04-01",
            "date_created": format_datetime(self.created), "date_updated": format_datetime(self.created),
            "date_sent": None, "error_code": self.error_code, "error_message": None, "price": None,
            "uri": f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{self.sid}.json",
        }


class FakeTwilio:
    def __init__(self, account_sid: str = ACCOUNT_SID, auth_token: str = AUTH_TOKEN):
        self.account_sid, self.auth_token = account_sid, auth_token
        self.messages: dict[str, FakeMessage] = {}
        self.calls: dict[str, FakeCall] = {}
        self.requests: Counter[str] = Counter()       # "POST create", "GET fetch", "GET list", "refused"
        self.faults: list[tuple[str, float]] = []     # consumed one per create: ("500"|"429"|"timeout"|"slow", s)
        self.refuse: dict[str, int] = {}              # number -> Twilio error code at create (21610, 21614...)
        self.delay = 0.0                              # added to every answer
        self.deliver_on_lookup = True                 # a message looked up later reads "delivered", as at Twilio
        self.now = lambda: datetime.now(UTC)           # when a message is taken (a test may follow the app's clock)
        self._lock = threading.Lock()
        self._seq = 0
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> FakeTwilio:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    # What the tests look at ---------------------------------------------------------------------------------

    def inject(self, kind: str, count: int = 1, seconds: float = 0.0) -> None:
        self.faults.extend([(kind, seconds)] * count)

    def bodies_by_number(self) -> Counter[str]:
        return Counter(m.to for m in self.messages.values())

    def duplicates(self) -> list[str]:
        """Bodies taken more than once (every body holds a fresh link token, so any repeat is a double send)."""
        counts = Counter(m.body for m in self.messages.values())
        return [b for b, n in counts.items() if n > 1]

    def callback(self, sid: str, status: str, error_code: int | None = None) -> tuple[str, dict[str, str], str]:
        """(URL, form, X-Twilio-Signature) of the status callback Twilio would send for ``sid``."""
        msg = self.messages[sid]
        msg.status = status
        params = {"MessageSid": sid, "SmsSid": sid, "AccountSid": self.account_sid, "MessageStatus": status,
                  "SmsStatus": status, "To": msg.to, "From": msg.sender or "", "ApiVersion": "2010-04-01"}
        if error_code is not None:
            params["ErrorCode"] = str(error_code)
            msg.error_code = error_code
        url = msg.status_callback or ""
        return url, params, RequestValidator(self.auth_token).compute_signature(url, params)

    # The HTTP side ----------------------------------------------------------------------------------------

    def _create(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        to = form.get("To", "")
        if to in self.refuse:
            code = self.refuse[to]
            return 400, {"code": code, "message": f"refused ({code})", "more_info": "", "status": 400}
        if not form.get("Body") or not (form.get("From") or form.get("MessagingServiceSid")):
            return 400, {"code": 21602, "message": "Message body is required.", "status": 400}
        with self._lock:
            self._seq += 1
            sid = f"SM{self._seq:032x}"
            msg = FakeMessage(sid, to, form.get("From"), form.get("MessagingServiceSid"), form["Body"],
                              form.get("StatusCallback"), created=self.now())
            self.messages[sid] = msg
        return 201, msg.resource()

    def _list(self, query: dict[str, list[str]]) -> dict[str, Any]:
        to = query.get("To", [None])[0]
        page_size = int(query.get("PageSize", ["50"])[0])
        found = [m for m in sorted(self.messages.values(), key=lambda m: m.created, reverse=True)
                 if to is None or m.to == to][:page_size]
        return {"messages": [m.resource() for m in found], "next_page_uri": None, "previous_page_uri": None,
                "first_page_uri": None, "page": 0, "page_size": page_size, "start": 0, "end": len(found),
                "uri": f"/2010-04-01/Accounts/{self.account_sid}/Messages.json"}

    # Calls (voice): create, fetch and list ``Calls`` resources; a `CallDriver` plays the phone --------------------

    def _create_call(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        to = form.get("To", "")
        if to in self.refuse:
            code = self.refuse[to]
            return 400, {"code": code, "message": f"refused ({code})", "more_info": "", "status": 400}
        if not form.get("Url") or not form.get("From"):
            return 400, {"code": 21205, "message": "Url and From are required.", "status": 400}
        with self._lock:
            self._seq += 1
            sid = f"CA{self._seq:032x}"
            call = FakeCall(sid, to, form["From"], form["Url"], form.get("StatusCallback"),
                            form.get("MachineDetection"), int(form.get("Timeout") or 60), created=self.now())
            self.calls[sid] = call
        return 201, call.resource()

    def _list_calls(self, query: dict[str, list[str]]) -> dict[str, Any]:
        to = query.get("To", [None])[0]
        page_size = int(query.get("PageSize", ["50"])[0])
        found = [c for c in sorted(self.calls.values(), key=lambda c: c.created, reverse=True)
                 if to is None or c.to == to][:page_size]
        return {"calls": [c.resource() for c in found], "next_page_uri": None, "previous_page_uri": None,
                "first_page_uri": None, "page": 0, "page_size": page_size, "start": 0, "end": len(found),
                "uri": f"/2010-04-01/Accounts/{self.account_sid}/Calls.json"}

    def calls_by_number(self) -> Counter[str]:
        return Counter(c.to for c in self.calls.values())

    def phone(self, client: Any, public_url: str, sid: str | None = None, **timings: float) -> CallDriver:
        """A driver that plays the phone of call ``sid`` (default: the latest call) against a Flask test client."""
        call = self.calls[sid] if sid else max(self.calls.values(), key=lambda c: c.sid)
        return CallDriver(self, call, client, public_url, **timings)

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def log_message(self, *args: Any) -> None:
                pass

            def _authorised(self) -> bool:
                expected = base64.b64encode(f"{fake.account_sid}:{fake.auth_token}".encode()).decode()
                return self.headers.get("Authorization") == f"Basic {expected}"

            def _answer(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _prefix(self) -> str:
                return f"/2010-04-01/Accounts/{fake.account_sid}/Messages"

            def _calls(self) -> str:
                return f"/2010-04-01/Accounts/{fake.account_sid}/Calls"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                if fake.delay:
                    time.sleep(fake.delay)
                if not self._authorised():
                    return self._answer(401, {"code": 20003, "message": "Authenticate", "status": 401})
                calls = urlsplit(self.path).path == self._calls() + ".json"
                if urlsplit(self.path).path != self._prefix() + ".json" and not calls:
                    return self._answer(404, {"code": 20404, "message": "Not found", "status": 404})
                with fake._lock:
                    fault = fake.faults.pop(0) if fake.faults else None
                fake.requests["POST create"] += 1
                if fault and fault[0] == "500":
                    return self._answer(500, {"code": 20500, "message": "Internal error", "status": 500})
                if fault and fault[0] == "429":
                    return self._answer(429, {"code": 20429, "message": "Too many requests", "status": 429})
                if fault and fault[0] == "slow":
                    time.sleep(fault[1])
                status, payload = fake._create_call(form) if calls else fake._create(form)
                if status >= 400:
                    fake.requests["refused"] += 1
                if fault and fault[0] == "timeout":       # the message is taken, the answer never comes in time
                    time.sleep(fault[1])
                self._answer(status, payload)

            def do_GET(self) -> None:
                if fake.delay:
                    time.sleep(fake.delay)
                if not self._authorised():
                    return self._answer(401, {"code": 20003, "message": "Authenticate", "status": 401})
                parts = urlsplit(self.path)
                if parts.path == f"/2010-04-01/Accounts/{fake.account_sid}.json":
                    fake.requests["GET account"] += 1
                    return self._answer(200, {"sid": fake.account_sid, "status": "active",
                                              "friendly_name": "proapp tests", "type": "Full"})
                if parts.path == self._calls() + ".json":
                    fake.requests["GET list calls"] += 1
                    return self._answer(200, fake._list_calls(parse_qs(parts.query)))
                if parts.path.startswith(self._calls() + "/") and parts.path.endswith(".json"):
                    fake.requests["GET fetch call"] += 1
                    call = fake.calls.get(parts.path[len(self._calls()) + 1:-5])
                    if call is None:
                        return self._answer(404, {"code": 20404, "message": "Not found", "status": 404})
                    return self._answer(200, call.resource())
                if parts.path == self._prefix() + ".json":
                    fake.requests["GET list"] += 1
                    return self._answer(200, fake._list(parse_qs(parts.query)))
                if parts.path.startswith(self._prefix() + "/") and parts.path.endswith(".json"):
                    fake.requests["GET fetch"] += 1
                    sid = parts.path[len(self._prefix()) + 1:-5]
                    msg = fake.messages.get(sid)
                    if msg is not None and fake.deliver_on_lookup and msg.status in ("queued", "sent"):
                        msg.status = "delivered"
                    if msg is None:
                        return self._answer(404, {"code": 20404, "message": "Not found", "status": 404})
                    return self._answer(200, msg.resource())
                self._answer(404, {"code": 20404, "message": "Not found", "status": 404})

        return Handler


# Voice calls ----------------------------------------------------------------------------------------------------

@dataclass
class FakeCall:
    sid: str
    to: str
    sender: str
    url: str                                   # the answer webhook
    status_callback: str | None
    machine_detection: str | None
    ring_timeout: int
    status: str = "queued"
    answered_by: str | None = None
    duration: float = 0.0                      # seconds, from the fake's timings
    created: datetime = field(default_factory=lambda: datetime.now(UTC))

    def resource(self) -> dict[str, Any]:
        return {
            "sid": self.sid, "account_sid": ACCOUNT_SID, "to": self.to, "to_formatted": self.to, "from": self.sender,
            "from_formatted": self.sender, "status": self.status, "direction": "outbound-api",
            "api_version": "2010-04-01", "answered_by": self.answered_by, "caller_name": None,
            "date_created": format_datetime(self.created), "date_updated": format_datetime(self.created),
            "start_time": None if self.status == "queued" else format_datetime(self.created), "end_time": None,
            "duration": str(round(self.duration)) if self.status == "completed" else None, "price": None,
            "price_unit": "USD", "parent_call_sid": None, "phone_number_sid": None, "queue_time": "0",
            "forwarded_from": None, "group_sid": None, "trunk_sid": None, "annotation": None,
            "subresource_uris": {}, "uri": f"/2010-04-01/Accounts/{ACCOUNT_SID}/Calls/{self.sid}.json",
        }


@dataclass
class Gathering:
    """The ``<Gather>`` the phone is in: where its result goes and what it accepts."""

    action: str
    attributes: dict[str, str]


class CallDriver:
    """Plays the phone of one call: posts Twilio's webhooks to the app (Flask test client) with Twilio's signature
    (``RequestValidator.compute_signature`` over the full URL and the form), follows the TwiML it gets back, records
    what was said and dialled, and estimates the call's duration with the fake's timings: the time to answer, each
    ``<Say>`` at a speaking rate, each key or spoken answer."""

    def __init__(self, fake: FakeTwilio, call: FakeCall, client: Any, public_url: str, *, answer_delay: float = 8.0,
                 words_per_second: float = 2.5, seconds_per_key: float = 1.0, seconds_per_speech: float = 2.5):
        self.fake, self.call, self.client, self.public_url = fake, call, client, public_url.rstrip("/")
        self.answer_delay, self.words_per_second = answer_delay, words_per_second
        self.seconds_per_key, self.seconds_per_speech = seconds_per_key, seconds_per_speech
        self.said: list[str] = []             # every <Say>, in order
        self.turns: list[list[str]] = []      # what each webhook's answer said
        self.dialled: list[str] = []
        self.gathering: Gathering | None = None
        self.ended = False
        self.seconds = 0.0
        self.last_status: int | None = None
        self.amd_in_status_callback = True    # whether the status callback repeats AnsweredBy

    # Signed webhooks
    def post(self, url: str, params: dict[str, str], *, signature: str | None = None) -> Any:
        params = {"AccountSid": self.fake.account_sid, "CallSid": self.call.sid, "From": self.call.sender,
                  "To": self.call.to, "Direction": "outbound-api", "ApiVersion": "2010-04-01", **params}
        if signature is None:
            signature = RequestValidator(self.fake.auth_token).compute_signature(url, params)
        assert url.startswith(self.public_url), url
        resp = self.client.post(url[len(self.public_url):], data=params, headers={"X-Twilio-Signature": signature})
        self.last_status = resp.status_code
        return resp

    def _follow(self, resp: Any) -> None:
        self.gathering = None
        if resp.status_code != 200:
            self.turns.append([])
            return self.hang_up()
        root = ET.fromstring(resp.get_data(as_text=True))
        turn: list[str] = []
        for verb in root:
            if verb.tag == "Gather":
                for say in verb.iter("Say"):
                    turn.append(say.text or "")
                self.gathering = Gathering(verb.attrib["action"], dict(verb.attrib))
            elif verb.tag == "Say":
                turn.append(verb.text or "")
            elif verb.tag == "Dial":
                self.dialled.append((verb.text or "").strip())
                self.gathering = Gathering(verb.attrib["action"], {"dial": "1"})
            elif verb.tag == "Hangup":
                break
        self.turns.append(turn)
        self.said.extend(turn)
        self.seconds += sum(len(t.split()) for t in turn) / self.words_per_second
        if self.gathering is None:           # nothing more to do: Twilio ends the call
            self.hang_up()

    # What the phone does
    def pick_up(self, answered_by: str = "human") -> CallDriver:
        self.call.status, self.call.answered_by = "in-progress", answered_by
        self.seconds += self.answer_delay
        params = {"CallStatus": "in-progress"}
        if self.call.machine_detection:
            params["AnsweredBy"] = answered_by
        self._follow(self.post(self.call.url, params))
        return self

    def press(self, keys: str) -> CallDriver:
        assert self.gathering is not None and not self.ended, "the call is not waiting for keys"
        self.seconds += self.seconds_per_key * max(1, len(keys))
        self._follow(self.post(self.gathering.action, {"CallStatus": "in-progress", "Digits": keys}))
        return self

    def speak(self, words: str, confidence: float = 0.9) -> CallDriver:
        assert self.gathering is not None and not self.ended, "the call is not listening"
        self.seconds += self.seconds_per_speech
        self._follow(self.post(self.gathering.action, {"CallStatus": "in-progress", "SpeechResult": words,
                                                       "Confidence": f"{confidence:.2f}"}))
        return self

    def end_dial(self, seconds: float = 60.0) -> CallDriver:
        """The site's phone hung up: Twilio posts the ``<Dial>``'s action."""
        assert self.gathering is not None and "dial" in self.gathering.attributes
        self.seconds += seconds
        self._follow(self.post(self.gathering.action, {"CallStatus": "in-progress", "DialCallStatus": "completed"}))
        return self

    def hang_up(self) -> CallDriver:
        """The call ends (the patient hung up, or the TwiML did): Twilio's status callback."""
        if not self.ended:
            self.ended = True
            self.gathering = None
            self.call.status, self.call.duration = "completed", self.seconds
            self.status_callback("completed")
        return self

    def status_callback(self, status: str) -> Any:
        self.call.status = status
        params = {"CallStatus": status, "CallDuration": str(round(self.call.duration))}
        if self.call.answered_by and self.amd_in_status_callback:
            params["AnsweredBy"] = self.call.answered_by
        if self.call.status_callback:
            return self.post(self.call.status_callback, params)
        return None

    def not_answered(self, status: str = "no-answer") -> CallDriver:
        self.ended = True
        self.status_callback(status)
        return self

    @property
    def last(self) -> str:
        return " ".join(self.turns[-1]) if self.turns else ""


# Incoming messages (SMS conversations) -----------------------------------------------------------------------------
# A patient's phone that replies: the incoming-message webhook Twilio posts to the app (form fields as in Twilio's
# "request to your incoming message webhook URL"), signed with the account's auth token, for the Flask test client
# or requests. What the phone received is what the fake Twilio took for its number.

TWILIO_NUMBER = "+33757000000"


class Phone:
    def __init__(self, fake: FakeTwilio, number: str, url: str = "https://pro.example.test/sms/inbound",
                 to: str = TWILIO_NUMBER):
        self.fake, self.number, self.url, self.to = fake, number, url, to
        self._seq = 0

    def received(self) -> list[str]:
        """The bodies sent to this phone, in the order Twilio took them."""
        return [m.body for m in sorted(self.fake.messages.values(), key=lambda m: m.sid) if m.to == self.number]

    def last(self) -> str:
        return self.received()[-1]

    def reply(self, body: str, sid: str | None = None) -> tuple[str, dict[str, str], str]:
        """(URL, form, X-Twilio-Signature) of the webhook Twilio sends when this phone texts ``body``."""
        with self.fake._lock:
            self.fake._seq += 1
            sid = sid or f"SM{self.fake._seq:030x}in"
        segments = 1 if len(body) <= 160 else -(-len(body) // 153)
        params = {"ToCountry": "FR", "ToState": "", "SmsMessageSid": sid, "NumMedia": "0", "ToCity": "",
                  "FromZip": "", "SmsSid": sid, "FromState": "", "SmsStatus": "received", "FromCity": "",
                  "Body": body, "FromCountry": "FR", "To": self.to, "ToZip": "", "NumSegments": str(segments),
                  "MessageSid": sid, "AccountSid": self.fake.account_sid, "From": self.number,
                  "ApiVersion": "2010-04-01"}
        return self.url, params, RequestValidator(self.fake.auth_token).compute_signature(self.url, params)

    def send(self, client: Any, body: str, sid: str | None = None, signature: str | None = None) -> Any:
        """Post the webhook through a Flask test client (the path of the signed URL)."""
        url, params, sig = self.reply(body, sid)
        return client.post(urlsplit(url).path, data=params,
                           headers={"X-Twilio-Signature": sig if signature is None else signature})
