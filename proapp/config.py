"""Configuration: safe defaults, then the environment (``PROAPP_`` prefix), then explicit overrides.

Every setting a deployment may change is listed in ``SETTINGS`` with its default and description;
the README's configuration table is printed from the same list by ``proapp config-table`` (a test compares).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cryptography.fernet import Fernet

PROJECT_ROOT = Path(__file__).resolve().parent.parent     # relative paths in settings start here
INSECURE_SECRET_KEYS = frozenset({"", "dev", "change-me", "changeme", "secret", "development"})


class ConfigError(RuntimeError):
    """A setting is missing or invalid: start-up stops with this message."""


Check = Callable[[Mapping[str, Any]], list[str]]
"""A feature's check of its own settings: what cannot work, one sentence each."""


@dataclass(frozen=True)
class Setting:
    name: str
    default: Any
    description: str
    kind: type = str


SETTINGS: tuple[Setting, ...] = (
    Setting("ENV", "development", "`development`, `production` or `testing`."),
    Setting("SECRET_KEY", None, "Signs sessions and CSRF tokens. Required in production; "
            "in development a random key is kept in `instance/secret_key`."),
    Setting("DATABASE_URL", None, "SQLAlchemy URL. Default: SQLite in `instance/proapp.sqlite3`. "
            "PostgreSQL: `postgresql+psycopg://user@host/db`."),
    Setting("PUBLIC_URL", None, "The https base URL patients and Twilio reach (SMS links, signatures). "
            "Required in production; default `http://127.0.0.1:5000` in development."),
    Setting("STUDIES_DIR", None, "Folder of study files (`*.yaml`) used instead of the shipped ones."),
    Setting("ARCHIVE_DIR", None, "Folder where a closed study's signed archive is written (`proapp study close`). "
            "Default: `archives` in the instance folder."),
    Setting("SITE_CONTACTS", None, "YAML file of each site's phone for patients and on-call e-mail and mobile for "
            "alerts, merged into the study files (see docs/safety-signals.md). Default outside production: "
            "fictional numbers."),
    Setting("PHONE_KEYS", None, "Comma-separated Fernet keys for phone numbers, newest first. "
            "Required in production; in development kept in `instance/phone_keys`."),
    Setting("AUDIT_KEYS", None, "Keys of the audit trail's HMAC chain: comma-separated `<key id>:<secret>` pairs, "
            "newest first, each secret at least 32 random bytes as hex or URL-safe base64 (keep older keys listed "
            "to verify older entries). Required in production; in development kept in `instance/audit_keys`."),
    Setting("AUDIT_CHECKPOINT_SECONDS", 60, "How often the worker writes a signed checkpoint of the audit chains' "
            "ends, when anything was appended since the last.", int),
    Setting("DEFAULT_PHONE_REGION", "FR", "Region assumed for phone numbers written without +country code."),
    Setting("DEFAULT_LANGUAGE", "fr", "Language of pages when nothing else decides (`fr` or `en`)."),
    Setting("DEFAULT_TIMEZONE", "Europe/Paris", "Time zone for patients enrolled without one."),
    Setting("MAX_CONTENT_LENGTH", 64 * 1024, "Largest request body accepted, in bytes.", int),
    Setting("STAFF_IDLE_MINUTES", 30, "Staff are signed out after this many minutes without a request.", int),
    Setting("STAFF_SESSION_HOURS", 12, "A staff session ends this many hours after sign-in, active or not.", int),
    Setting("TWO_FACTOR_ROLES", None, "Roles that must sign in with a second factor (TOTP), comma-separated "
            "(`admin,coordinator,monitor`; empty: nobody). Default: every role (`admin,coordinator,monitor`) in "
            "production, nobody elsewhere."),
    Setting("LOGIN_MAX_FAILURES", 5, "Wrong passwords in a row before a staff account is locked.", int),
    Setting("LOGIN_LOCK_MINUTES", 15, "How long a locked staff account stays locked.", int),
    Setting("BEHIND_THRESHOLD", 80, "Completion percentage under which a site is highlighted as falling behind.",
            int),
    Setting("RATE_LINK_PER_MINUTE", 30, "Unknown, revoked or closed SMS links opened per minute from one network "
            "(IPv4 /24, IPv6 /64) before its next tries get 429 (0: no limit). Working links are not counted, so "
            "patients behind one carrier address (CGNAT) are never locked out by each other.", int),
    Setting("RATE_LINK_PER_TOKEN", 20, "Openings of one working SMS link per minute before 429 (0: no limit).", int),
    Setting("RATE_LOGIN_PER_IP", 30, "Staff sign-in attempts per 15 minutes from one IP address (0: no limit).", int),
    Setting("RATE_LOGIN_PER_ACCOUNT", 10, "Sign-in attempts per 15 minutes for one e-mail (0: no limit).", int),
    Setting("RATE_API_PER_MINUTE", 600, "Export API requests per minute per key (0: no limit).", int),
    Setting("PROXY_HOPS", 0, "Reverse proxies in front of the app whose X-Forwarded-For/-Proto/-Host are trusted "
            "(1 behind one nginx terminating TLS; 0 when clients connect directly).", int),
    Setting("SMS_GATEWAY", "console", "`console` (writes each SMS to `instance/console_sms.jsonl` and lists them "
            "at `/dev/sms`; development only) or `twilio`."),
    Setting("SMS_SENDER_NAME", "SuiviPRO", "The name patients see: it opens every SMS and heads the questionnaire "
            "pages, and is the alphanumeric sender ID when no Twilio number or Messaging Service is set (at most 11 "
            "letters or digits; no disease, drug or study)."),
    Setting("SMS_RATE_PER_SECOND", 10, "Most SMS per second per sender, across all workers (0: no limit).", int),
    Setting("SMS_QUIET_START", 21, "Local hour from which no SMS is sent.", int),
    Setting("SMS_QUIET_END", 8, "Local hour from which SMS may be sent again.", int),
    Setting("SMS_MAX_ATTEMPTS", 5, "Tries for an SMS the gateway could not take (5xx, 429, network errors).", int),
    Setting("SMS_RETRY_SECONDS", 30, "First retry delay, doubled at each further try (at most one hour).", int),
    Setting("SMS_SEND_THREADS", 8, "Requests to the gateway in flight at once per worker.", int),
    Setting("SMS_CLAIM_LEASE_SECONDS", 120, "After this, an SMS claimed by a worker that stopped is looked up at the "
            "gateway (found: kept; not found: sent again).", int),
    Setting("SMS_UNKNOWN_GRACE_SECONDS", 60, "How long an SMS whose outcome is unknown waits before it may be sent "
            "again when the gateway does not know it.", int),
    Setting("SMS_REPLY_TIMEOUT_MINUTES", 240, "An SMS conversation without a reply for this long (and never later "
            "than an hour before the window closes) ends, and the patient is sent the web link.", int),
    Setting("SMS_RECONCILE_SECONDS", 60, "How often the worker looks for abandoned claims, unknown outcomes and "
            "missing delivery reports.", int),
    Setting("MAIL_GATEWAY", "console", "`console` (writes each e-mail to `instance/console_mail.jsonl` and lists "
            "them at `/dev/mail`; development only) or `smtp`."),
    Setting("SMTP_URL", None, "The mail server: `smtp://[user:password@]host:port` (add `?starttls=true`) or "
            "`smtps://...` for implicit TLS."),
    Setting("MAIL_FROM", "proapp <no-reply@localhost>", "Sender of every e-mail (alerts, later invitations)."),
    Setting("SMTP_TIMEOUT", 10, "Seconds to wait for the mail server.", int),
    Setting("MAIL_MAX_ATTEMPTS", 8, "Tries for an e-mail or on-call SMS the server could not take before it is "
            "given up (the alert stays open and is escalated).", int),
    Setting("PUSH_MAX_ATTEMPTS", 48, "Tries of a push to the EDC before it is given up (30 s, 60 s, ... then hourly: "
            "about two days; the deliveries page shows it and the EDC can still pull the response).", int),
    Setting("TWILIO_ACCOUNT_SID", None, "Twilio account SID (`AC...`)."),
    Setting("TWILIO_AUTH_TOKEN", None, "Twilio auth token: authenticates requests and checks status callbacks."),
    Setting("TWILIO_FROM", None, "Sending number or alphanumeric sender ID (default: SMS_SENDER_NAME)."),
    Setting("TWILIO_VOICE_FROM", None, "Caller ID of the voice calls: a Twilio number of the account, or a number "
            "verified as caller ID (default: TWILIO_FROM)."),
    Setting("TWILIO_MESSAGING_SERVICE_SID", None, "Messaging Service SID (`MG...`), used instead of TWILIO_FROM."),
    Setting("TWILIO_API_BASE", "https://api.twilio.com", "Twilio REST base URL (tests point it at a local fake)."),
    Setting("TWILIO_TIMEOUT", 10, "Seconds to wait for Twilio before the outcome is treated as unknown.", int),
    Setting("INSTANCE_PATH", "instance/", "Folder for the SQLite database, development secrets and the console SMS "
            "file (relative paths: from the project's folder)."),
    Setting("BIND", "127.0.0.1:8000", "Where gunicorn listens (`proapp/deploy/gunicorn.conf.py`); the reverse proxy "
            "forwards there."),
    Setting("WEB_WORKERS", None, "gunicorn's worker processes (default: 2 x cores + 1).", int),
    Setting("FORWARDED_ALLOW_IPS", "127.0.0.1", "Addresses gunicorn accepts X-Forwarded-* headers from (the "
            "reverse proxy)."),
    Setting("LOG_FORMAT", "text", "`text` or `json`: the format of gunicorn's request log (one line per request: "
            "time, request ID, client address, method, path without token, status, size, duration)."),
    Setting("METRICS_ALLOW", "127.0.0.1/32,::1/128", "Networks (comma-separated) that may read `/metrics` and "
            "`/readyz` (the Prometheus server, the load balancer); everyone else gets 404."),
    Setting("READY_HEARTBEAT_SECONDS", 120, "`/readyz` answers 503 when no worker has beaten for this long.", int),
    Setting("READY_STUCK_SECONDS", 900, "`/readyz` answers 503 when an outbox holds a message due for this long.",
            int),
)


def env_setting(name: str, env: Mapping[str, str] | None = None) -> Any:
    """One setting from the environment (or its default), for what reads them before any app exists (gunicorn's
    configuration, the instance folder)."""
    setting = next(s for s in SETTINGS if s.name == name)
    return _env_value(os.environ if env is None else env, setting)

SUPPORTED_LANGUAGES = ("fr", "en")


def _env_value(env: Mapping[str, str], setting: Setting) -> Any:
    raw = env.get(f"PROAPP_{setting.name}")
    if raw is None or raw == "":
        return setting.default
    if setting.kind is int:
        try:
            return int(raw)
        except ValueError as exc:
            raise ConfigError(f"PROAPP_{setting.name} must be a whole number, not {raw!r}.") from exc
    return raw


def settings_from(env: Mapping[str, str]) -> dict[str, Any]:
    """Every setting as the environment gives it (or its default), unchecked: raises ConfigError for a number
    that is not one."""
    return {s.name: _env_value(env, s) for s in SETTINGS}


def load_config(instance_path: Path, env: Mapping[str, str] | None = None,
                overrides: Mapping[str, Any] | None = None, *, checks: Sequence[Check] = (),
                development_secrets: Mapping[str, Callable[[], str]] | None = None) -> dict[str, Any]:
    """Return the Flask config mapping for this process, or raise ConfigError.

    ``checks`` are the features' own checks of their settings (``proapp.ops.CHECKS``): what they find stops a
    start in every mode. Outside production a secret missing from ``development_secrets`` is made once and kept in
    the instance folder."""
    env = os.environ if env is None else env
    cfg = settings_from(env)
    if overrides:
        cfg.update(overrides)

    mode = cfg["ENV"]
    if mode not in ("development", "production", "testing"):
        raise ConfigError(f"PROAPP_ENV must be development, production or testing, not {mode!r}.")
    production = mode == "production"

    if production:
        problems = production_problems(cfg) + [p for check in checks for p in check(cfg)]
        if problems:
            raise ConfigError("Cannot start in production:\n- " + "\n- ".join(problems))
    else:
        if not cfg["SECRET_KEY"]:
            cfg["SECRET_KEY"] = _instance_secret(instance_path, "secret_key", lambda: secrets.token_hex(32))
        if not cfg["PUBLIC_URL"]:
            cfg["PUBLIC_URL"] = "http://127.0.0.1:5000"
        if not cfg["PHONE_KEYS"]:
            cfg["PHONE_KEYS"] = _instance_secret(instance_path, "phone_keys",
                                                 lambda: Fernet.generate_key().decode())
        for name, make in (development_secrets or {}).items():
            if not cfg[name]:
                cfg[name] = _instance_secret(instance_path, name.lower(), make)
        problems = [p for check in checks for p in check(cfg)]
        if problems:
            raise ConfigError("Settings that cannot work:\n- " + "\n- ".join(problems))
    if not cfg["DATABASE_URL"]:
        cfg["DATABASE_URL"] = f"sqlite:///{instance_path / 'proapp.sqlite3'}"
    if cfg["DEFAULT_LANGUAGE"] not in SUPPORTED_LANGUAGES:
        raise ConfigError(f"PROAPP_DEFAULT_LANGUAGE must be one of {', '.join(SUPPORTED_LANGUAGES)}.")
    cfg["PUBLIC_URL"] = str(cfg["PUBLIC_URL"]).rstrip("/")
    if not 0 <= int(cfg["PROXY_HOPS"]) <= 5:
        raise ConfigError("PROAPP_PROXY_HOPS must be a number of proxies from 0 to 5.")
    if cfg["TWO_FACTOR_ROLES"] is None:
        cfg["TWO_FACTOR_ROLES"] = "admin,coordinator,monitor" if production else ""   # monitors see every site
    unknown = {r.strip() for r in str(cfg["TWO_FACTOR_ROLES"]).split(",") if r.strip()} - {
        "admin", "coordinator", "monitor"}
    if unknown:
        raise ConfigError(f"PROAPP_TWO_FACTOR_ROLES: {', '.join(sorted(unknown))} is not a role "
                          "(admin, coordinator, monitor).")
    for key in ("STAFF_IDLE_MINUTES", "STAFF_SESSION_HOURS", "LOGIN_MAX_FAILURES", "LOGIN_LOCK_MINUTES"):
        if int(cfg[key]) < 1:
            raise ConfigError(f"PROAPP_{key} must be at least 1.")
    if not 0 <= int(cfg["BEHIND_THRESHOLD"]) <= 100:
        raise ConfigError("PROAPP_BEHIND_THRESHOLD must be a percentage from 0 to 100.")
    cfg["PRODUCTION"] = production
    cfg["TESTING"] = cfg.get("TESTING", mode == "testing")
    # Flask and extension settings derived from ours.
    cfg.setdefault("SESSION_COOKIE_HTTPONLY", True)
    cfg.setdefault("SESSION_COOKIE_SAMESITE", "Lax")
    cfg.setdefault("SESSION_COOKIE_SECURE", production)
    if production:
        cfg.setdefault("SESSION_COOKIE_NAME", "__Host-session")
    cfg.setdefault("WTF_CSRF_TIME_LIMIT", None)
    # Flask-WTF's strict HTTPS check wants a same-origin Referer, and the patient pages send none (no-referrer):
    # every patient form failed behind TLS. The token in the session, the SameSite cookie and the Sec-Fetch-Site
    # check (proapp/web.py) bind a form to this site without it.
    cfg.setdefault("WTF_CSRF_SSL_STRICT", False)
    if production:
        # Only the public host is served: a forged Host or X-Forwarded-Host gets 400, never an echoed URL.
        cfg.setdefault("TRUSTED_HOSTS", [urlsplit(cfg["PUBLIC_URL"]).hostname])
    cfg.setdefault("BABEL_DEFAULT_LOCALE", cfg["DEFAULT_LANGUAGE"])
    cfg.setdefault("BABEL_DEFAULT_TIMEZONE", "UTC")
    return cfg


def production_problems(cfg: Mapping[str, Any]) -> list[str]:
    """The core settings that stop a production start, one sentence each (also used by ``proapp check``); each
    feature states its own (``checks``)."""
    problems = []
    key = cfg.get("SECRET_KEY") or ""
    if key.lower() in INSECURE_SECRET_KEYS or len(key) < 32:
        problems.append("PROAPP_SECRET_KEY is missing, a default value or shorter than 32 characters "
                        "(generate one with: python -c 'import secrets; print(secrets.token_hex(32))').")
    public_url = cfg.get("PUBLIC_URL") or ""
    if not public_url:
        problems.append("PROAPP_PUBLIC_URL is missing (the https address patients open, "
                        "e.g. https://pro.example-hospital.fr).")
    elif not public_url.startswith("https://"):
        problems.append("PROAPP_PUBLIC_URL must start with https:// in production.")
    if not cfg.get("PHONE_KEYS"):
        problems.append("PROAPP_PHONE_KEYS is missing (generate one with: "
                        "python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())').")
    return problems




def _instance_secret(instance_path: Path, name: str, make) -> str:
    """A development secret kept in the instance folder, created on first use (mode 0600)."""
    path = instance_path / name
    if path.exists():
        return path.read_text().strip()
    instance_path.mkdir(parents=True, exist_ok=True)
    value = make()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process created it first: use theirs
        return path.read_text().strip()
    with os.fdopen(fd, "w") as fh:
        fh.write(value + "\n")
    return value
