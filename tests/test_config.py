"""Configuration from PROAPP_* variables; production refuses unsafe or incomplete settings."""

import pytest

from proapp.config import ConfigError
from proapp.ops import app_config

GOOD_PROD = {
    "PROAPP_ENV": "production",
    "PROAPP_SECRET_KEY": "a" * 64,
    "PROAPP_PUBLIC_URL": "https://pro.chu-example.fr/",
    "PROAPP_PHONE_KEYS": "k" * 44,
    "PROAPP_AUDIT_KEYS": "k1:" + "ab" * 32,
    "PROAPP_DATABASE_URL": "postgresql+psycopg://proapp@db/proapp",
    "PROAPP_SMS_GATEWAY": "twilio",
    "PROAPP_TWILIO_ACCOUNT_SID": "AC" + "0" * 32,
    "PROAPP_TWILIO_AUTH_TOKEN": "t" * 32,
    "PROAPP_MAIL_GATEWAY": "smtp",
    "PROAPP_SMTP_URL": "smtp://alerts:secret@mail.chu-example.fr:587?starttls=true",
    "PROAPP_MAIL_FROM": "proapp <no-reply@chu-example.fr>",
}


def test_development_defaults_use_sqlite_in_instance_and_keep_generated_secrets(tmp_path):
    cfg = app_config(tmp_path, env={})
    assert cfg["DATABASE_URL"] == f"sqlite:///{tmp_path / 'proapp.sqlite3'}"
    assert cfg["PUBLIC_URL"] == "http://127.0.0.1:5000"
    assert len(cfg["SECRET_KEY"]) == 64
    again = app_config(tmp_path, env={})
    assert again["SECRET_KEY"] == cfg["SECRET_KEY"]          # kept in instance/, same across restarts
    assert again["PHONE_KEYS"] == cfg["PHONE_KEYS"]
    assert (tmp_path / "secret_key").stat().st_mode & 0o777 == 0o600


def test_environment_settings_are_read(tmp_path):
    cfg = app_config(tmp_path, env={"PROAPP_DATABASE_URL": "postgresql+psycopg://u@h/db",
                                     "PROAPP_DEFAULT_LANGUAGE": "en", "PROAPP_MAX_CONTENT_LENGTH": "1000"})
    assert cfg["DATABASE_URL"] == "postgresql+psycopg://u@h/db"
    assert cfg["BABEL_DEFAULT_LOCALE"] == "en"
    assert cfg["MAX_CONTENT_LENGTH"] == 1000


def test_production_with_everything_set_starts(tmp_path):
    cfg = app_config(tmp_path, env=GOOD_PROD)
    assert cfg["PRODUCTION"] is True
    assert cfg["PUBLIC_URL"] == "https://pro.chu-example.fr"
    assert cfg["SESSION_COOKIE_SECURE"] is True
    assert cfg["SESSION_COOKIE_NAME"] == "__Host-session"
    assert not (tmp_path / "secret_key").exists()


@pytest.mark.parametrize(("change", "message"), [
    ({"PROAPP_SECRET_KEY": ""}, "PROAPP_SECRET_KEY is missing"),
    ({"PROAPP_SECRET_KEY": "change-me"}, "PROAPP_SECRET_KEY is missing, a default value"),
    ({"PROAPP_SECRET_KEY": "short"}, "shorter than 32 characters"),
    ({"PROAPP_PUBLIC_URL": ""}, "PROAPP_PUBLIC_URL is missing"),
    ({"PROAPP_PUBLIC_URL": "http://pro.chu-example.fr"}, "must start with https://"),
    ({"PROAPP_PHONE_KEYS": ""}, "PROAPP_PHONE_KEYS is missing"),
    ({"PROAPP_AUDIT_KEYS": ""}, "PROAPP_AUDIT_KEYS is missing"),
    ({"PROAPP_AUDIT_KEYS": "k1:" + "ab" * 16}, "the secret of key k1 has 16 bytes; at least 32"),
    ({"PROAPP_AUDIT_KEYS": "no-secret"}, "each key is <key id>:<secret>"),
    ({"PROAPP_AUDIT_KEYS": "k1:" + "ab" * 32 + ",k1:" + "cd" * 32}, "the key id k1 is listed twice"),
])
def test_production_refuses_to_start(tmp_path, change, message):
    with pytest.raises(ConfigError, match=message):
        app_config(tmp_path, env=GOOD_PROD | change)


@pytest.mark.requirement("DEPLOYED")
def test_production_lists_every_problem_at_once(tmp_path):
    with pytest.raises(ConfigError) as exc:
        app_config(tmp_path, env={"PROAPP_ENV": "production"})
    text = str(exc.value)
    assert "PROAPP_SECRET_KEY" in text and "PROAPP_PUBLIC_URL" in text and "PROAPP_PHONE_KEYS" in text


@pytest.mark.parametrize(("env", "message"), [
    ({"PROAPP_ENV": "staging"}, "PROAPP_ENV must be"),
    ({"PROAPP_MAX_CONTENT_LENGTH": "lots"}, "PROAPP_MAX_CONTENT_LENGTH must be a whole number"),
    ({"PROAPP_DEFAULT_LANGUAGE": "de"}, "PROAPP_DEFAULT_LANGUAGE"),
])
def test_invalid_settings(tmp_path, env, message):
    with pytest.raises(ConfigError, match=message):
        app_config(tmp_path, env=env)


def test_wsgi_start_up_stops_in_production_without_secret(tmp_path, monkeypatch):
    import subprocess
    import sys

    env = {"PROAPP_ENV": "production", "PROAPP_INSTANCE_PATH": str(tmp_path), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([sys.executable, "-c", "import wsgi"], env=env, capture_output=True, text=True,
                          check=False)
    assert proc.returncode != 0
    assert "Cannot start in production" in proc.stderr
    assert "PROAPP_SECRET_KEY" in proc.stderr


@pytest.mark.parametrize(("env", "message"), [
    ({"PROAPP_SMS_GATEWAY": "carrier-pigeon"}, "must be console or twilio"),
    ({"PROAPP_SMS_GATEWAY": "twilio"}, "TWILIO_ACCOUNT_SID and PROAPP_TWILIO_AUTH_TOKEN are needed"),
    ({"PROAPP_SMS_SENDER_NAME": "Sclérodermie Toulouse"}, "1 to 11 ASCII letters"),
    ({"PROAPP_SMS_QUIET_START": "25"}, "hour from 0 to 23"),
    ({"PROAPP_SMS_QUIET_START": "8", "PROAPP_SMS_QUIET_END": "8"}, "must differ"),
    ({"PROAPP_SMS_MAX_ATTEMPTS": "0"}, "at least 1"),
])
def test_sms_settings_that_cannot_work_stop_start_up(tmp_path, env, message):
    with pytest.raises(ConfigError, match=message):
        app_config(tmp_path, env=env)


def test_production_refuses_the_console_gateway(tmp_path):
    env = {**GOOD_PROD, "PROAPP_SMS_GATEWAY": "console"}
    with pytest.raises(ConfigError, match="console sends no SMS"):
        app_config(tmp_path, env=env)


def test_the_claim_lease_must_outlast_a_twilio_request(tmp_path):
    with pytest.raises(ConfigError, match="longer than PROAPP_TWILIO_TIMEOUT"):
        app_config(tmp_path, env={"PROAPP_SMS_CLAIM_LEASE_SECONDS": "10", "PROAPP_TWILIO_TIMEOUT": "10"})
