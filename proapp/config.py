"""Configuration: safe defaults, then the environment (``PROAPP_`` prefix), then explicit overrides.

Every setting a deployment may change is listed in ``SETTINGS`` with its default and description;
the README's configuration table is generated from the same list (``proapp config-table``).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

INSECURE_SECRET_KEYS = frozenset({"", "dev", "change-me", "changeme", "secret", "development"})


class ConfigError(RuntimeError):
    """A setting is missing or invalid: start-up stops with this message."""


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
    Setting("PHONE_KEYS", None, "Comma-separated Fernet keys for phone numbers, newest first. "
            "Required in production; in development kept in `instance/phone_keys`."),
    Setting("DEFAULT_PHONE_REGION", "FR", "Region assumed for phone numbers written without +country code."),
    Setting("DEFAULT_LANGUAGE", "fr", "Language of pages when nothing else decides (`fr` or `en`)."),
    Setting("DEFAULT_TIMEZONE", "Europe/Paris", "Time zone for patients enrolled without one."),
    Setting("MAX_CONTENT_LENGTH", 64 * 1024, "Largest request body accepted, in bytes.", int),
)

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


def load_config(instance_path: Path, env: Mapping[str, str] | None = None,
                overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Return the Flask config mapping for this process, or raise ConfigError."""
    env = os.environ if env is None else env
    cfg: dict[str, Any] = {s.name: _env_value(env, s) for s in SETTINGS}
    if overrides:
        cfg.update(overrides)

    mode = cfg["ENV"]
    if mode not in ("development", "production", "testing"):
        raise ConfigError(f"PROAPP_ENV must be development, production or testing, not {mode!r}.")
    production = mode == "production"

    if production:
        problems = production_problems(cfg)
        if problems:
            raise ConfigError("Cannot start in production:\n- " + "\n- ".join(problems))
    else:
        if not cfg["SECRET_KEY"]:
            cfg["SECRET_KEY"] = _instance_secret(instance_path, "secret_key", lambda: secrets.token_hex(32))
        if not cfg["PUBLIC_URL"]:
            cfg["PUBLIC_URL"] = "http://127.0.0.1:5000"
        if not cfg["PHONE_KEYS"]:
            from cryptography.fernet import Fernet

            cfg["PHONE_KEYS"] = _instance_secret(instance_path, "phone_keys",
                                                 lambda: Fernet.generate_key().decode())
    if not cfg["DATABASE_URL"]:
        cfg["DATABASE_URL"] = f"sqlite:///{instance_path / 'proapp.sqlite3'}"
    if cfg["DEFAULT_LANGUAGE"] not in SUPPORTED_LANGUAGES:
        raise ConfigError(f"PROAPP_DEFAULT_LANGUAGE must be one of {', '.join(SUPPORTED_LANGUAGES)}.")
    cfg["PUBLIC_URL"] = str(cfg["PUBLIC_URL"]).rstrip("/")
    cfg["PRODUCTION"] = production
    cfg["TESTING"] = cfg.get("TESTING", mode == "testing")
    # Flask and extension settings derived from ours.
    cfg.setdefault("SESSION_COOKIE_HTTPONLY", True)
    cfg.setdefault("SESSION_COOKIE_SAMESITE", "Lax")
    cfg.setdefault("SESSION_COOKIE_SECURE", production)
    if production:
        cfg.setdefault("SESSION_COOKIE_NAME", "__Host-session")
    cfg.setdefault("WTF_CSRF_TIME_LIMIT", None)
    cfg.setdefault("BABEL_DEFAULT_LOCALE", cfg["DEFAULT_LANGUAGE"])
    cfg.setdefault("BABEL_DEFAULT_TIMEZONE", "UTC")
    return cfg


def production_problems(cfg: Mapping[str, Any]) -> list[str]:
    """What stops a production start, one sentence each (also used by ``proapp check``)."""
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
