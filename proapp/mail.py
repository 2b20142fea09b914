"""The mail gateway, chosen by ``PROAPP_MAIL_GATEWAY``: ``console`` (development: each mail is appended to
``instance/console_mail.jsonl`` and listed at ``/dev/mail``) or ``smtp`` (the standard library's smtplib, with
STARTTLS or implicit TLS and authentication, from ``PROAPP_SMTP_URL``).

A send has one of four outcomes, as an SMS: sent, retry (the server said "try later" or could not be reached, so
the mail certainly did not go), failed (refused for good) or unknown (the connection broke or timed out in the
middle: the mail may have gone, and it is never sent again blindly).
"""

from __future__ import annotations

import re
import smtplib
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qs, unquote, urlsplit

from flask import Blueprint, abort, current_app, render_template

from proapp import jsonlines
from proapp.outbox import Outcome

# One plain address and nothing else: no display name, no list, no route, no quotes, no comment. RFC 5322's
# dot-atom local part (at most 64 characters) and a domain of DNS labels ending in letters (at most 254 in all).
ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
ADDRESS_RE = rf"^{ATOM}(?:\.{ATOM})*@(?:{LABEL}\.)+[A-Za-z]{{2,24}}$"
_ADDRESS = re.compile(ADDRESS_RE)


def plain_address(raw: str | None) -> str | None:
    """``raw`` (trimmed, lower-cased) when it is exactly one plain e-mail address, else None. Refused, for
    instance: ``a@x.fr,b@evil.example`` (two), ``<b@evil.example>@x.fr`` (a route), ``a@b@x.fr``, spaces, quotes,
    non-ASCII."""
    address = (raw or "").strip().lower()
    if len(address) > 254 or not _ADDRESS.fullmatch(address) or len(address.partition("@")[0]) > 64:
        return None
    return address


@dataclass(frozen=True)
class Mail:
    to: str
    subject: str
    body: str
    message_id: str                   # stable per message: a receiving system can tell a copy from a new mail


class Mailer(Protocol):
    name: str

    def send(self, mail: Mail) -> Outcome: ...


class SmtpUrlError(ValueError):
    pass


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int
    implicit_tls: bool
    starttls: bool
    user: str | None
    password: str | None

    @classmethod
    def parse(cls, url: str) -> SmtpSettings:
        """``smtp://[user:password@]host[:port][?starttls=true]`` or ``smtps://...`` (implicit TLS)."""
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise SmtpUrlError("give smtp://[user:password@]host:port (add ?starttls=true) or smtps://...")
        query = parse_qs(parts.query)
        unknown = set(query) - {"starttls"}
        if unknown:
            raise SmtpUrlError(f"unknown option {sorted(unknown)[0]!r} (only starttls)")
        starttls = query.get("starttls", ["false"])[-1].lower() in ("1", "true", "yes")
        if starttls and parts.scheme == "smtps":
            raise SmtpUrlError("smtps:// is already TLS: starttls is for smtp://")
        try:
            port = parts.port or (465 if parts.scheme == "smtps" else 587 if starttls else 25)
        except ValueError as exc:
            raise SmtpUrlError(f"bad port: {exc}") from None
        return cls(parts.hostname, port, parts.scheme == "smtps", starttls,
                   unquote(parts.username) if parts.username else None,
                   unquote(parts.password) if parts.password else None)


def compose(mail: Mail, sender: str) -> EmailMessage:
    if plain_address(mail.to) is None:          # the last guard: one recipient, the one meant
        raise ValueError("the recipient is not one plain e-mail address")
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = mail.to
    msg["Subject"] = mail.subject
    msg["Date"] = format_datetime(datetime.now(UTC))
    msg["Message-ID"] = mail.message_id
    msg["Auto-Submitted"] = "auto-generated"           # RFC 3834: no auto-replies to an automatic message
    msg.set_content(mail.body)
    return msg


class ConsoleMailer:
    """Writes each mail to a JSON-lines file in the instance folder (read by ``/dev/mail``)."""

    name = "console"

    def __init__(self, path: Path, sender: str):
        self.path, self.sender = path, sender

    def send(self, mail: Mail) -> Outcome:
        if plain_address(mail.to) is None:
            return Outcome("failed", "the recipient is not one plain e-mail address")
        record = {"to": mail.to, "subject": mail.subject, "body": mail.body, "message_id": mail.message_id,
                  "from": self.sender, "at": datetime.now(UTC).isoformat(timespec="seconds")}
        jsonlines.append(self.path, record)
        return Outcome("sent")

    def entries(self) -> list[dict[str, Any]]:
        return jsonlines.read(self.path)


class SmtpMailer:
    name = "smtp"

    def __init__(self, settings: SmtpSettings, sender: str, timeout: float = 10):
        self.settings, self.sender, self.timeout = settings, sender, timeout

    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        context = ssl.create_default_context()
        if s.implicit_tls:
            client: smtplib.SMTP = smtplib.SMTP_SSL(s.host, s.port, timeout=self.timeout, context=context)
        else:
            client = smtplib.SMTP(s.host, s.port, timeout=self.timeout)
        try:
            if s.starttls:
                client.starttls(context=context)
            if s.user:
                client.login(s.user, s.password or "")
        except BaseException:
            client.close()
            raise
        return client

    def send(self, mail: Mail) -> Outcome:
        if plain_address(mail.to) is None:
            return Outcome("failed", "the recipient is not one plain e-mail address")
        try:
            client = self._connect()
        except smtplib.SMTPAuthenticationError as exc:
            return Outcome("failed", f"authentication refused: {exc.smtp_code}")
        except (OSError, smtplib.SMTPException) as exc:   # nothing was sent yet
            return Outcome("retry", f"cannot connect: {type(exc).__name__}: {exc}"[:300])
        try:
            with client:
                client.send_message(compose(mail, self.sender))
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _msg in exc.recipients.values()]
            kind = "retry" if all(400 <= c < 500 for c in codes) else "failed"
            return Outcome(kind, f"recipient refused: {codes}")
        except smtplib.SMTPResponseException as exc:       # the server answered no: the mail did not go
            kind = "retry" if 400 <= exc.smtp_code < 500 else "failed"
            return Outcome(kind, f"SMTP {exc.smtp_code}: {exc.smtp_error!r}"[:300])
        except (OSError, smtplib.SMTPException) as exc:   # cut off mid-way: it may have gone
            return Outcome("unknown", f"connection lost while sending: {type(exc).__name__}"[:300])
        return Outcome("sent")


def mail_problems(cfg: Mapping[str, Any]) -> list[str]:
    """Mail settings that cannot work, one sentence each (start-up and ``proapp check``)."""
    gateway = cfg.get("MAIL_GATEWAY")
    if gateway not in ("console", "smtp"):
        return [f"PROAPP_MAIL_GATEWAY must be console or smtp, not {gateway!r}."]
    problems = []
    if gateway == "console" and cfg.get("ENV") == "production":
        problems.append("PROAPP_MAIL_GATEWAY=console sends no e-mail (alerts would reach nobody): use smtp in "
                        "production.")
    if gateway == "smtp":
        try:
            SmtpSettings.parse(cfg.get("SMTP_URL") or "")
        except SmtpUrlError as exc:
            problems.append(f"PROAPP_SMTP_URL: {exc}.")
    sender = cfg.get("MAIL_FROM") or ""
    if "@" not in sender or "\n" in sender or "\r" in sender:
        problems.append("PROAPP_MAIL_FROM must be an address, e.g. proapp <no-reply@hospital.example>.")
    if int(cfg.get("SMTP_TIMEOUT", 10)) < 1 or int(cfg.get("MAIL_MAX_ATTEMPTS", 8)) < 1:
        problems.append("PROAPP_SMTP_TIMEOUT and PROAPP_MAIL_MAX_ATTEMPTS must be at least 1.")
    return problems


def from_config(config: Mapping[str, Any], instance_path: str | Path) -> Mailer:
    if config["MAIL_GATEWAY"] == "smtp":
        return SmtpMailer(SmtpSettings.parse(config["SMTP_URL"]), config["MAIL_FROM"],
                          timeout=config["SMTP_TIMEOUT"])
    return ConsoleMailer(Path(instance_path) / "console_mail.jsonl", config["MAIL_FROM"])


bp = Blueprint("mail", __name__)


@bp.get("/dev/mail")
def dev_mail() -> str:
    """Development only: the mails the console gateway 'sent', newest first."""
    mailer = from_config(current_app.config, current_app.instance_path)
    if current_app.config["PRODUCTION"] or not isinstance(mailer, ConsoleMailer):
        abort(404)
    return render_template("dev_mail.html", entries=list(reversed(mailer.entries()))[:200])


def init_app(app) -> None:
    app.register_blueprint(bp)
