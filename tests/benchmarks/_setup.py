"""Shared set-up for benchmarks: a throw-away instance folder with a database, a demo patient and a link."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def prepared_instance(database_url: str | None = None) -> tuple[Path, str, str]:
    """Return (instance folder, database URL, link token) for ADU-TLS-901 with week 1 open now."""
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
    link = runner.invoke(args=["proapp", "link", "ADU-TLS-901"]).output.strip()
    return folder, url, link.rsplit("/", 1)[-1]
