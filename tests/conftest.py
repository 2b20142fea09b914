"""Shared fixtures. The database is real: SQLite by default, PostgreSQL when PROAPP_TEST_DATABASE_URL
names one (each run works in its own schema, dropped at the end, and the app connects as a role of its own that
may only append to the audit tables, as a deployment does). A configured PostgreSQL that cannot be reached fails
the run: it is never skipped."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from flask import Flask
from hypothesis import HealthCheck, settings
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from proapp import create_app, db
from proapp.db import Base, make_engine
from proapp.migrate import grant_app_role, upgrade
from proapp.studies.catalog import DATA_DIR as SHIPPED_STUDIES
from proapp.studies.catalog import DEMO_CONTACTS
from tests.validation_report import pytest_addoption, pytest_configure  # noqa: F401  (the validation report)

# Property tests judge what the code does, not how fast a busy 2-core machine generates inputs: no deadline and no
# "too slow" health check, which fail a correct run when other processes hold the cores.
settings.register_profile("proapp", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("proapp")

PHONE_KEY = Fernet.generate_key().decode()


# The information a sponsor gives its patients (fictional: the shipped study files hold none, production needs it).
INFORMATION = {
    "version": "2.1", "sponsor": "CHU Exemple, direction de la recherche, 1 rue de l'Exemple, 31000 Toulouse",
    "purpose": {"en": "To follow how you feel during the study, from your answers.",
                "fr": "Suivre votre état pendant l'étude, à partir de vos réponses."},
    "legal_basis": {"en": "A task in the public interest (GDPR article 6.1.e), scientific research (article 9.2.j).",
                    "fr": "Une mission d'intérêt public (RGPD article 6.1.e), la recherche scientifique "
                          "(article 9.2.j)."},
    "methodology": "MR-001",
    "collected": {"en": "Your answers to the questionnaires and when you gave them.",
                  "fr": "Vos réponses aux questionnaires et leur date."},
    "retention": {"en": "Until the study report, then archived for 25 years.",
                  "fr": "Jusqu'au rapport de l'étude, puis archivées 25 ans."},
    "data_protection_officer": "dpo@chu-exemple.example",
    "sms_provider": {"name": "Twilio Inc.", "country": {"en": "the United States", "fr": "États-Unis"},
                     "safeguard": {"en": "the European Commission's standard contractual clauses.",
                                   "fr": "les clauses contractuelles types de la Commission européenne."}},
}


def production_study_files(folder: Path) -> Path:
    """The shipped study files as a sponsor deploying them would edit them: the information for its patients, and
    the instruments' unvalidated wording accepted by name (production refuses either missing). Returns
    ``folder``."""
    import yaml

    from proapp.instruments import default_registry

    registry = default_registry()
    folder.mkdir(parents=True, exist_ok=True)
    for path in sorted(SHIPPED_STUDIES.glob("*.yaml")):
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        for code, use in raw["instruments"].items():
            languages = registry.get(code, use["version"]).languages.items()
            use["accept_unvalidated"] = sorted(lang for lang, st in languages if not st.validated)
        raw["information"] = INFORMATION
        (folder / path.name).write_text(yaml.safe_dump(raw, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return folder


PRODUCTION_STUDIES = production_study_files(Path(tempfile.mkdtemp(prefix="proapp-studies-")) / "studies")
atexit.register(shutil.rmtree, PRODUCTION_STUDIES.parent, ignore_errors=True)
# What a production-mode app needs beyond the keys: a mail server (an address nothing listens on, for apps that send
# no mail), the site contacts (the fictional ones) and study files that accept their instruments' wording.
PRODUCTION_MAIL = {"MAIL_GATEWAY": "smtp", "SMTP_URL": "smtp://127.0.0.1:9",
                   "MAIL_FROM": "proapp <no-reply@example.test>", "SITE_CONTACTS": str(DEMO_CONTACTS),
                   "STUDIES_DIR": str(PRODUCTION_STUDIES)}
CHROMIUM = os.environ.get("PROAPP_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-sync",
                 "--disable-background-networking", "--disable-component-update"]


# PostgreSQL: the URL the app gets (a role of its own, the audit tables append-only for it, as deployed) -> the URL
# of the tables' owner, for what only the owner may do (emptying the tables between tests, playing the attacker).
OWNER_URLS: dict[str, str] = {}
_OWNER_ENGINES: dict[str, Engine] = {}


def owner_engine(app_url: str) -> Engine:
    """An engine connected as the tables' owner (SQLite: the same database; it has no roles)."""
    url = OWNER_URLS.get(app_url, app_url)
    if url not in _OWNER_ENGINES:
        _OWNER_ENGINES[url] = make_engine(url)
    return _OWNER_ENGINES[url]


def _database_url(tmp_root: Path) -> tuple[str, str | None, str | None]:
    """(URL for the app, PostgreSQL schema or None, the app's role or None); the schema is at head."""
    configured = os.environ.get("PROAPP_TEST_DATABASE_URL", "").strip()
    if not configured or configured.startswith("sqlite"):
        url = configured or f"sqlite:///{tmp_root / 'test.sqlite3'}"
        upgrade(url)
        return url, None, None
    url = make_url(configured)
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    schema = f"proapp_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(url)
    try:
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    except Exception as exc:
        pytest.exit(f"PostgreSQL at {url.render_as_string(hide_password=True)} is not reachable: {exc}",
                    returncode=3)
    finally:
        admin.dispose()
    owner = url.update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(hide_password=False)
    upgrade(owner)
    role = f"{schema}_app"
    admin = create_engine(url)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE ROLE "{role}" LOGIN'))
    admin.dispose()
    grant_app_role(owner, role)                       # what `proapp init --app-role` does
    app_url = make_url(owner).set(username=role, password=None).render_as_string(hide_password=False)
    OWNER_URLS[app_url] = owner
    return app_url, schema, role


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url, schema, role = _database_url(tmp_path_factory.mktemp("db"))
    yield url
    for engine in _OWNER_ENGINES.values():
        engine.dispose()
    if schema:
        engine = create_engine(OWNER_URLS[url])
        with engine.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
            conn.execute(text(f'DROP ROLE "{role}"'))
        engine.dispose()


@pytest.fixture(scope="session")
def instance_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("instance")
    os.environ["PROAPP_INSTANCE_PATH"] = str(path)
    return path


def make_app(database_url: str, **overrides) -> Flask:
    config = {
        "ENV": "testing",
        "DATABASE_URL": database_url,
        "SECRET_KEY": "test-" + "x" * 40,
        "PHONE_KEYS": PHONE_KEY,
        "PUBLIC_URL": "https://pro.example.test",
        "WTF_CSRF_ENABLED": True,
    }
    config.update(overrides)
    return create_app(config)


def fresh_app(database_url: str, **overrides) -> Flask:
    """An app on an emptied database with the shipped studies loaded."""
    app = make_app(database_url, **overrides)
    with app.app_context():
        _empty_tables()
        from proapp.studies.sync import sync_studies

        with db.transaction() as s:
            sync_studies(s, app.extensions["proapp.studies"], datetime.now(UTC))
    return app


@pytest.fixture
def app(database_url: str, instance_dir: Path) -> Iterator[Flask]:
    app = fresh_app(database_url)
    yield app
    app.extensions["proapp.engine"].dispose()


def _empty_tables() -> None:
    from flask import current_app

    from proapp.audit.guard import suspended

    engine = owner_engine(current_app.config["DATABASE_URL"])
    with engine.begin() as conn, suspended(conn):   # the audit table refuses this, except for tests starting afresh
        if engine.dialect.name == "postgresql":
            names = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
            conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        else:
            for table in reversed(Base.metadata.sorted_tables):
                conn.execute(table.delete())


@pytest.fixture
def rate_window(monkeypatch: pytest.MonkeyPatch) -> float:
    """Rate limits count in windows of the clock (a minute, a quarter of an hour): a test counting requests against
    a limit runs with the limiter's clock stopped, so a window boundary crossed on a busy machine never resets the
    count halfway. Returns the stopped time."""
    import time
    import types

    from proapp import ratelimit

    stopped = time.time()
    monkeypatch.setattr(ratelimit, "time", types.SimpleNamespace(time=lambda: stopped))
    return stopped


@pytest.fixture
def session(app: Flask) -> Iterator[Session]:
    with app.app_context():
        yield db.session()


@pytest.fixture
def client(app: Flask):
    return app.test_client()


@pytest.fixture
def runner(app: Flask):
    return app.test_cli_runner()


@pytest.fixture
def dialect(database_url: str) -> str:
    return make_url(database_url).get_backend_name()


@pytest.fixture(scope="session")
def browser():
    """Debian's chromium driven by Playwright (never a downloaded browser build), one per test run."""
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: the test command installs Debian's chromium package")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


def pytest_collection_modifyitems(config, items):
    """Tests marked ``postgres`` exercise PostgreSQL itself (a database outage through a relay): they run in the
    PostgreSQL pass of the test command and are deselected, not skipped, in the SQLite pass."""
    configured = os.environ.get("PROAPP_TEST_DATABASE_URL", "")
    if configured.startswith("postgres"):
        return
    selected = [i for i in items if i.get_closest_marker("postgres") is None]
    deselected = [i for i in items if i.get_closest_marker("postgres") is not None]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = selected
