"""Every benchmark runs here in a smoke mode: tiny counts, a few seconds, asserting only that it completes and that
its own correctness checks hold (answers stored once, SMS neither doubled nor lost, pages served), so that none rots
unseen. The figures themselves come from full runs (docs/benchmarks.md)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DATABASE = os.environ.get("PROAPP_TEST_DATABASE_URL", "")
ON_POSTGRES = DATABASE.startswith("postgres")

SMOKE = {
    "bench_page_weight": [],
    "bench_rps": ["--smoke"],            # fails when a ratio falls below half its goal
    "bench_dashboard": ["--patients", "60", "--requests", "2"],
    "bench_export": ["--responses", "30", "--answers-per-response", "5", "--limit", "7"],
    "bench_load": ["--users", "4", "--seconds", "4", "--patients", "40", "--workers", "2"],
    "bench_lighthouse": [],              # three pages, about 40 s with lighthouse's installation from npm
    "bench_audit": ["--entries", "1500", "--requests", "3"],
}
TAKES_DATABASE = {"bench_rps", "bench_dashboard", "bench_export", "bench_load", "bench_audit"}


def _run(name: str, args: list[str]) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROAPP_")}
    return subprocess.run([sys.executable, "-m", f"tests.benchmarks.{name}", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SMOKE))
def test_benchmark_runs(name):
    args = list(SMOKE[name])
    if ON_POSTGRES and name in TAKES_DATABASE:
        args += ["--database-url", DATABASE]
    done = _run(name, args)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]


@pytest.mark.slow
@pytest.mark.postgres
def test_sms_benchmark_runs():
    """Two real ``proapp worker`` processes on PostgreSQL, one killed and restarted: no SMS twice, none lost."""
    done = _run("bench_sms", ["--count", "30", "--rate-count", "10", "--rate", "20", "--timeout", "90",
                              "--database-url", DATABASE])
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
