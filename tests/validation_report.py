"""The validation report: each requirement of docs/validation/requirements.yaml, the tests that name it
(``@pytest.mark.requirement("ID")``), their outcomes, the commit, the environment and the time.

``--validation-report=PATH.md`` writes PATH.md and PATH.json at the end of the run (the test command does); a
requirement without a passing test is listed as not verified. Works with pytest-xdist: the workers put the
requirement ids in each report's ``user_properties``, the controller writes the file."""

from __future__ import annotations

import json
import os
import platform
import shutil
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
REQUIREMENTS = ROOT / "docs" / "validation" / "requirements.yaml"
RISKS = ("high", "medium", "low")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("validation report")
    group.addoption("--validation-report", metavar="PATH.md", default=None,
                    help="write the validation report (Markdown, and JSON beside it) at the end of the run")
    group.addoption("--requirements", metavar="FILE", default=str(REQUIREMENTS),
                    help="the requirements file (default: docs/validation/requirements.yaml)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "requirement(*ids): the requirements (docs/validation/requirements.yaml) "
                                       "this test verifies")
    config.pluginmanager.register(ValidationReport(config), "proapp-validation-report")


def load_requirements(path: Path) -> list[dict[str, str]]:
    """The requirements, checked: a unique id, a text and a risk each."""
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(raw, list):
        raise pytest.UsageError(f"{path.name}: expected a list of requirements")
    seen: set[str] = set()
    for n, req in enumerate(raw):
        if not isinstance(req, dict) or set(req) != {"id", "text", "risk"} or req["risk"] not in RISKS:
            raise pytest.UsageError(f"{path.name}: requirement {n + 1}: give id, text and risk ({', '.join(RISKS)})")
        if req["id"] in seen:
            raise pytest.UsageError(f"{path.name}: {req['id']} appears twice")
        seen.add(req["id"])
    return raw


class ValidationReport:
    def __init__(self, config: pytest.Config):
        self.config = config
        self.path = Path(config.getoption("requirements"))
        self.requirements = load_requirements(self.path)
        self.outcomes: dict[str, str] = {}              # test id -> passed, failed, skipped
        self.tests: dict[str, list[str]] = {}           # test id -> requirement ids
        self.started = datetime.now(UTC)

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        known = {r["id"] for r in self.requirements}
        for item in items:
            ids = [i for mark in item.iter_markers("requirement") for i in mark.args]
            unknown = sorted(set(ids) - known)
            if unknown:
                raise pytest.UsageError(f"{item.nodeid}: requirement {unknown[0]} is not in {self.path.name}")
            if ids:
                item.user_properties.append(("requirements", ",".join(sorted(set(ids)))))

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        ids = dict(report.user_properties).get("requirements")
        if not ids:
            return
        self.tests[report.nodeid] = ids.split(",")
        before = self.outcomes.get(report.nodeid)
        if report.failed:
            self.outcomes[report.nodeid] = "failed"
        elif report.skipped and before != "failed":
            self.outcomes[report.nodeid] = "skipped"
        elif report.when == "call" and before is None:
            self.outcomes[report.nodeid] = "passed"

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        target = self.config.getoption("validation_report")
        if not target or hasattr(self.config, "workerinput"):       # only the controller of an xdist run writes
            return
        report = self.build()
        md = Path(target)
        md.parent.mkdir(parents=True, exist_ok=True)
        md.write_text(render(report), encoding="utf-8")
        md.with_suffix(".json").write_text(json.dumps(report, indent=1, ensure_ascii=False), encoding="utf-8")

    def build(self) -> dict:
        requirements = []
        for req in self.requirements:
            tests = sorted((t for t, ids in self.tests.items() if req["id"] in ids))
            outcomes = [self.outcomes.get(t, "not run") for t in tests]
            verified = bool(tests) and "passed" in outcomes and "failed" not in outcomes
            status = "verified" if verified else "failed" if "failed" in outcomes else "not verified"
            requirements.append({**req, "status": status,
                                 "tests": [{"test": t, "outcome": o} for t, o in zip(tests, outcomes, strict=True)]})
        return {"generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "started_at": self.started.isoformat(timespec="seconds"),
                "requirements_file": str(self.path.relative_to(ROOT) if self.path.is_relative_to(ROOT)
                                         else self.path.name),
                "command": " ".join(["pytest", *self.config.invocation_params.args]),
                "commit": _commit(), "environment": environment(),
                "summary": {s: sum(r["status"] == s for r in requirements)
                            for s in ("verified", "failed", "not verified")},
                "requirements": requirements}


def _run(*args: str) -> str:
    try:
        out = subprocess.run(args, capture_output=True, text=True, timeout=20, check=True, cwd=ROOT)
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip()


def _commit() -> dict[str, object]:
    return {"id": _run("git", "rev-parse", "HEAD") or "unknown",
            "uncommitted_changes": bool(_run("git", "status", "--porcelain", "--untracked-files=no"))}


def environment() -> dict[str, object]:
    """Python, the installed packages, the database servers, the browser and the web server the tests used."""
    database = os.environ.get("PROAPP_TEST_DATABASE_URL", "").strip()
    env: dict[str, object] = {
        "python": sys.version.split()[0], "platform": platform.platform(),
        "database": "PostgreSQL" if database.startswith("postgres") else "SQLite",
        "sqlite": sqlite3.sqlite_version,
        "postgresql": _postgresql_version(database) if database.startswith("postgres") else None,
        "chromium": _run(os.environ.get("PROAPP_CHROMIUM", "/usr/bin/chromium"), "--version") or None,
        "nginx": _nginx_version(),
        "packages": dict(sorted((d.metadata["Name"].lower(), d.version) for d in metadata.distributions()
                                if d.metadata["Name"])),
    }
    return env


def _postgresql_version(url: str) -> str | None:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    engine = create_engine(parsed)
    try:
        with engine.connect() as conn:
            return str(conn.execute(text("SHOW server_version")).scalar())
    except Exception as exc:            # the report still says what it could not learn
        return f"unknown ({type(exc).__name__})"
    finally:
        engine.dispose()


def _nginx_version() -> str | None:
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
    if not nginx:
        return None
    out = subprocess.run([nginx, "-v"], capture_output=True, text=True, timeout=20, check=False)
    return out.stderr.strip().removeprefix("nginx version: ") or None


def render(report: dict) -> str:
    """The report as Markdown, for a person: the summary, the environment, then each requirement and its tests."""
    env = report["environment"]
    s = report["summary"]
    lines = [
        "# proapp validation report", "",
        f"- Generated: {report['generated_at']} (run started {report['started_at']})",
        f"- Commit: `{report['commit']['id']}`" + (" with uncommitted changes" if report["commit"]
                                                    ["uncommitted_changes"] else ""),
        f"- Command: `{report['command']}`",
        f"- Requirements: `{report['requirements_file']}`: {s['verified']} verified, {s['failed']} failed, "
        f"{s['not verified']} not verified",
        f"- Database: {env['database']} (PostgreSQL server {env['postgresql'] or '—'}, SQLite {env['sqlite']})",
        f"- Python {env['python']} on {env['platform']}",
        f"- Browser: {env['chromium'] or 'not found'}; web server: nginx {env['nginx'] or 'not found'}",
        "- Packages: " + ", ".join(f"{name} {version}" for name, version in env["packages"].items()), "",
        "| requirement | risk | status | tests |", "|---|---|---|---|",
    ]
    for req in report["requirements"]:
        tests = "<br>".join(f"{t['outcome']}: `{t['test']}`" for t in req["tests"]) or "none"
        status = req["status"].upper() if req["status"] != "verified" else "verified"
        lines.append(f"| **{req['id']}** {req['text']} | {req['risk']} | {status} | {tests} |")
    return "\n".join(lines) + "\n"
