"""Shared set-up for benchmarks: a throw-away instance folder with a database, a demo patient and a link; a free
loopback port; gunicorn started and ready."""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_gunicorn(target: str, port: int, env: dict[str, str], *, workers: int = 2, ready_path: str = "/healthz",
                   extra: tuple[str, ...] = ()) -> subprocess.Popen:
    """gunicorn serving ``target`` on 127.0.0.1:``port``, returned once it answers ``ready_path`` (the port accepts
    connections before the workers have loaded the app)."""
    proc = subprocess.Popen([str(ROOT / ".venv/bin/gunicorn"), "-w", str(workers), "-b", f"127.0.0.1:{port}",
                             "--log-level", "warning", *extra, target], cwd=ROOT, env=env)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", ready_path)
            if conn.getresponse().status < 500:
                conn.close()
                return proc
            conn.close()
        except OSError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"gunicorn {target} did not start")


def prepared_instance(database_url: str | None = None, patients: int = 1) -> tuple[Path, str, list[str]]:
    """Return (instance folder, database URL, link tokens) for ``patients`` ADUSE patients with week 1 open now
    (ADU-TLS-901 of the demo data, then ADU-TLS-801, -802 ...)."""
    from datetime import UTC, datetime, timedelta
    from zoneinfo import ZoneInfo

    folder = Path(tempfile.mkdtemp(prefix="proapp-bench-"))
    os.environ["PROAPP_INSTANCE_PATH"] = str(folder)
    url = database_url or f"sqlite:///{folder / 'bench.sqlite3'}"
    os.environ["PROAPP_DATABASE_URL"] = url

    from proapp import create_app

    app = create_app()
    runner = app.test_cli_runner()
    assert runner.invoke(args=["proapp", "init"]).exit_code == 0
    result = runner.invoke(args=["proapp", "demo"])
    assert result.exit_code == 0, result.output
    subjects = ["ADU-TLS-901"]
    anchor = (datetime.now(UTC).astimezone(ZoneInfo("Europe/Paris")).date() - timedelta(days=7)).isoformat()
    for n in range(1, patients):
        subject = f"ADU-TLS-{800 + n}"
        result = runner.invoke(args=["proapp", "enroll", "--study", "ADUSE", "--site", "TLS", "--subject", subject,
                                     "--phone", f"+336123458{n:02d}", "--anchor-date", anchor,
                                     "--timezone", "Europe/Paris", "--agreed-on", anchor])
        assert result.exit_code == 0, result.output
        subjects.append(subject)
    links = [runner.invoke(args=["proapp", "link", subject]).output.strip() for subject in subjects]
    app.extensions["proapp.engine"].dispose()
    return folder, url, [link.rsplit("/", 1)[-1] for link in links]


def schema_url(base: str) -> tuple[str, str]:
    url = make_url(base)
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    schema = f"proapp_bench_{uuid.uuid4().hex[:8]}"
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine.dispose()
    return url.update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(hide_password=False), schema


def drop_schema(base: str, schema: str) -> None:
    url = make_url(base)
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    engine.dispose()


@contextmanager
def bench_database(database_url: str | None, folder: Path, filename: str = "bench.sqlite3") -> Iterator[str]:
    """The benchmark's database: SQLite in ``folder``, or a schema of its own in the PostgreSQL database
    ``database_url``, dropped afterwards."""
    if not database_url:
        yield f"sqlite:///{folder / filename}"
        return
    url, schema = schema_url(database_url)
    try:
        yield url
    finally:
        drop_schema(database_url, schema)
