"""Production operations: `proapp check`, the reverse-proxy setting and the shipped process definitions."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from proapp.studies.catalog import DEMO_CONTACTS
from tests.conftest import PHONE_KEY, PRODUCTION_STUDIES, fresh_app
from tests.export.conftest import complete_diary
from tests.sms.fake_twilio import ACCOUNT_SID, AUTH_TOKEN, FakeTwilio

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def fake_twilio():
    with FakeTwilio() as fake:
        yield fake


def run_check(env: dict[str, str]) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PROAPP_")}
    return subprocess.run([sys.executable, "-m", "proapp", "check"], env={**clean, **env}, cwd=ROOT,
                          capture_output=True, text=True, timeout=60)


def production_env(database_url: str, fake_twilio, instance: Path) -> dict[str, str]:
    return {"PROAPP_ENV": "production", "PROAPP_SECRET_KEY": "s" * 64, "PROAPP_PUBLIC_URL": "https://pro.example.test",
            "PROAPP_DATABASE_URL": database_url, "PROAPP_PHONE_KEYS": PHONE_KEY, "PROAPP_SMS_GATEWAY": "twilio",
            "PROAPP_AUDIT_KEYS": "k1:" + "ab" * 32,
            "PROAPP_TWILIO_ACCOUNT_SID": ACCOUNT_SID, "PROAPP_TWILIO_AUTH_TOKEN": AUTH_TOKEN,
            "PROAPP_TWILIO_API_BASE": fake_twilio.base_url, "PROAPP_INSTANCE_PATH": str(instance),
            "PROAPP_MAIL_GATEWAY": "smtp", "PROAPP_SMTP_URL": "smtp://127.0.0.1:25",
            "PROAPP_MAIL_FROM": "proapp <no-reply@example.test>", "PROAPP_SITE_CONTACTS": str(DEMO_CONTACTS),
            "PROAPP_STUDIES_DIR": str(PRODUCTION_STUDIES)}


def test_a_good_deployment_passes(app, database_url, fake_twilio, tmp_path):
    complete_diary(app, "ADU-TLS-001")               # a stored phone number the keys must decrypt
    result = run_check(production_env(database_url, fake_twilio, tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("deployment OK")
    assert fake_twilio.requests["GET account"] == 1


def test_every_problem_gets_one_line_and_exit_1(app, database_url, fake_twilio, tmp_path):
    complete_diary(app, "ADU-TLS-001")
    env = production_env(database_url, fake_twilio, tmp_path) | {
        "PROAPP_ENV": "development", "PROAPP_SECRET_KEY": "dev", "PROAPP_PUBLIC_URL": "http://pro.example.test",
        "PROAPP_PHONE_KEYS": Fernet.generate_key().decode(), "PROAPP_TWILIO_AUTH_TOKEN": "wrong-token"}
    result = run_check(env)
    assert result.returncode == 1
    lines = [line for line in result.stdout.strip().splitlines() if not line.startswith("warning: ")]
    expected = ["PROAPP_ENV is 'development'", "PROAPP_SECRET_KEY is missing, a default value",
                "PROAPP_PUBLIC_URL must start with https://", "PROAPP_PHONE_KEYS cannot decrypt",
                "Twilio refused PROAPP_TWILIO_ACCOUNT_SID"]
    for start in expected:
        assert sum(line.startswith(start) for line in lines) == 1, (start, lines)
    assert len(lines) == len(expected)
    assert "Traceback" not in result.stderr


def test_database_problems(database_url, fake_twilio, tmp_path, instance_dir):
    env = production_env("postgresql+psycopg://nobody@127.0.0.1:1/none", fake_twilio, tmp_path)
    unreachable = run_check(env)
    assert unreachable.returncode == 1 and "cannot be reached" in unreachable.stdout
    from proapp.migrate import upgrade

    old = f"sqlite:///{tmp_path / 'old.sqlite3'}"
    upgrade(old, "0003")
    behind = run_check(env | {"PROAPP_DATABASE_URL": old})
    assert "the database schema is at 0003 but this code needs" in behind.stdout
    assert "run proapp init" in behind.stdout
    fresh = f"sqlite:///{tmp_path / 'fresh.sqlite3'}"
    upgrade(fresh)
    empty = run_check(env | {"PROAPP_DATABASE_URL": fresh})
    assert "is not loaded in the database: run proapp init" in empty.stdout
    missing = run_check({k: v for k, v in env.items() if k != "PROAPP_DATABASE_URL"})
    assert "PROAPP_DATABASE_URL is missing" in missing.stdout


def test_behind_one_proxy_the_client_address_comes_from_x_forwarded_for(database_url, instance_dir, rate_window):
    from flask import request

    app = fresh_app(database_url, PROXY_HOPS=1, RATE_LINK_PER_MINUTE=1)

    @app.get("/_probe")
    def probe() -> str:
        return f"{request.scheme} {request.remote_addr}"

    try:
        client = app.test_client()
        token = "x" * 22
        # Failed openings are counted per network (IPv4 /24): the proxy's address would put everyone in one.
        assert client.get(f"/s/{token}", headers={"X-Forwarded-For": "203.0.113.1"}).status_code == 404
        assert client.get(f"/s/{token}", headers={"X-Forwarded-For": "198.51.100.2"}).status_code == 404
        assert client.get(f"/s/{token}", headers={"X-Forwarded-For": "203.0.113.77"}).status_code == 429
        resp = client.get("/_probe", headers={"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9"})
        assert resp.get_data(as_text=True) == "https 203.0.113.9"
    finally:
        app.extensions["proapp.engine"].dispose()


def test_the_shipped_process_definitions(tmp_path):
    deploy = ROOT / "proapp" / "deploy"
    web, worker = (deploy / "proapp-web.service").read_text(), (deploy / "proapp-worker.service").read_text()
    assert "gunicorn -c proapp/deploy/gunicorn.conf.py wsgi:app" in web and "proapp check" in web
    assert "ExecStart=/opt/proapp/.venv/bin/proapp worker" in worker and "KillSignal=SIGTERM" in worker
    procfile = (deploy / "Procfile").read_text()
    assert "web: gunicorn" in procfile and "worker: proapp worker" in procfile
    settings: dict = {}
    exec(compile((deploy / "gunicorn.conf.py").read_text(), "gunicorn.conf.py", "exec"), settings)
    assert settings["worker_class"] == "sync" and settings["workers"] >= 1 and "%(U)s" in settings["access_log_format"]
    example = (deploy / "proapp.env.example").read_text()
    names = {line.split("=", 1)[0] for line in example.splitlines() if line and not line.startswith("#")}
    from proapp.config import SETTINGS

    known = {f"PROAPP_{s.name}" for s in SETTINGS} | {"PROAPP_INSTANCE_PATH", "PROAPP_WEB_WORKERS"}
    assert names <= known, names - known


@pytest.mark.postgres
def test_check_warns_when_the_app_role_owns_the_audit_table(app, database_url, fake_twilio, tmp_path):
    from tests.conftest import OWNER_URLS

    as_app = run_check(production_env(database_url, fake_twilio, tmp_path))
    # (the only warnings: the instruments' wording the study files accept unvalidated, by name)
    warnings = [line for line in as_app.stdout.splitlines() if "warning" in line and "accept_unvalidated" not in line]
    assert as_app.returncode == 0 and warnings == [], as_app.stdout
    as_owner = run_check(production_env(OWNER_URLS[database_url], fake_twilio, tmp_path))
    assert as_owner.returncode == 0, as_owner.stdout          # a warning, not a refusal
    assert "warning: the app's database role postgres owns the audit table" in as_owner.stdout


def test_init_app_role_refuses_what_it_cannot_grant(runner, dialect):
    """SQLite has no roles; on PostgreSQL a role name that is not a plain identifier never reaches the SQL."""
    if dialect == "sqlite":
        result = runner.invoke(args=["proapp", "init", "--app-role", "proapp_app"])
        assert result.exit_code != 0 and "PostgreSQL feature" in result.output
    else:
        result = runner.invoke(args=["proapp", "init", "--app-role", 'x"; DROP TABLE audit_event; --'])
        assert result.exit_code != 0 and "is not a PostgreSQL role name" in result.output


def test_check_names_a_push_endpoint_that_is_not_https(app, database_url, fake_twilio, tmp_path):
    from proapp.studies.catalog import DATA_DIR

    studies = tmp_path / "studies"
    studies.mkdir()
    for path in Path(DATA_DIR).glob("*.yaml"):
        text = path.read_text()
        if path.name == "ADUSE.yaml":
            text = text.replace("\nedc:\n", "\nedc:\n  push: {url: \"http://edc.example.test/in\", "
                                "secret_env: PROAPP_EDC_SECRET_ADUSE}\n", 1)
        (studies / path.name).write_text(text)
    env = production_env(database_url, fake_twilio, tmp_path) | {"PROAPP_STUDIES_DIR": str(studies),
                                                                  "PROAPP_EDC_SECRET_ADUSE": "s" * 32}
    result = run_check(env)
    assert result.returncode == 1
    assert ("study ADUSE pushes responses to http://edc.example.test/in: in production the EDC endpoint must be "
            "https://.") in result.stdout.splitlines()
