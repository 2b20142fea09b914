"""The validation report the test command writes: requirements, their tests and outcomes, commit, environment."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.validation_report import REQUIREMENTS, ROOT, load_requirements

SAMPLE_TESTS = '''
import pytest

@pytest.mark.requirement("R-PASS")
def test_passes():
    assert True

@pytest.mark.requirement("R-FAIL", "R-PASS")
def test_fails():
    assert 1 == 2

@pytest.mark.requirement("R-SKIP")
def test_skipped():
    pytest.skip("nothing to see")

def test_without_requirement():
    pass
'''
SAMPLE_REQUIREMENTS = '''
- {id: R-PASS, risk: high, text: Something verified}
- {id: R-FAIL, risk: medium, text: Something broken}
- {id: R-SKIP, risk: low, text: Something skipped}
- {id: R-NONE, risk: low, text: Something no test names}
'''


def _run(tmp_path: Path, *extra: str) -> subprocess.CompletedProcess:
    (tmp_path / "pytest.ini").write_text("[pytest]\naddopts = --strict-markers\n")
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p",
                           "tests.validation_report", "-c", str(tmp_path / "pytest.ini"), "--rootdir", str(tmp_path),
                           "--requirements", str(tmp_path / "requirements.yaml"), *extra],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)


@pytest.mark.requirement("VALIDATION-REPORT")
@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["one process", "xdist"])
def test_the_report_lists_each_requirement_its_tests_outcomes_commit_and_environment(tmp_path, workers):
    (tmp_path / "test_sample.py").write_text(SAMPLE_TESTS)
    (tmp_path / "requirements.yaml").write_text(SAMPLE_REQUIREMENTS)
    out = _run(tmp_path, "--validation-report", str(tmp_path / "out" / "report.md"), *workers,
               str(tmp_path / "test_sample.py"))
    assert out.returncode == 1, out.stdout + out.stderr            # one test fails
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    by_id = {r["id"]: r for r in report["requirements"]}
    assert by_id["R-PASS"]["status"] == "failed"                # one of its two tests failed
    assert {t["test"].rsplit("::", 1)[1]: t["outcome"] for t in by_id["R-PASS"]["tests"]} == {
        "test_passes": "passed", "test_fails": "failed"}
    assert by_id["R-FAIL"]["status"] == "failed"
    assert by_id["R-SKIP"]["status"] == "not verified"
    assert by_id["R-SKIP"]["tests"][0]["outcome"] == "skipped"
    assert by_id["R-NONE"] == {"id": "R-NONE", "risk": "low", "text": "Something no test names",
                               "status": "not verified", "tests": []}
    assert report["summary"] == {"verified": 0, "failed": 2, "not verified": 2}
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    assert report["commit"]["id"] == head
    env = report["environment"]
    assert env["python"] == sys.version.split()[0]
    assert env["packages"]["pytest"] == pytest.__version__
    assert env["chromium"].startswith("Chromium ")
    assert env["database"] in ("SQLite", "PostgreSQL")
    if env["database"] == "PostgreSQL":
        assert env["postgresql"][0].isdigit()
    markdown = (tmp_path / "out" / "report.md").read_text()
    assert f"Commit: `{head}`" in markdown
    assert "| **R-NONE** Something no test names | low | NOT VERIFIED | none |" in markdown


@pytest.mark.requirement("VALIDATION-REPORT")
def test_a_requirement_id_not_in_the_file_stops_the_run(tmp_path):
    (tmp_path / "test_sample.py").write_text(SAMPLE_TESTS.replace('"R-SKIP"', '"R-TYPO"'))
    (tmp_path / "requirements.yaml").write_text(SAMPLE_REQUIREMENTS)
    out = _run(tmp_path, str(tmp_path / "test_sample.py"))
    assert out.returncode == 4
    assert "requirement R-TYPO is not in requirements.yaml" in out.stderr


@pytest.mark.requirement("VALIDATION-REPORT")
def test_the_projects_requirements_are_well_formed_and_the_test_command_writes_the_report():
    ids = [r["id"] for r in load_requirements(REQUIREMENTS)]
    assert len(ids) == len(set(ids)) >= 10
    script = (ROOT / ".ci" / "test").read_text()
    assert "--validation-report=test-results/validation-sqlite.md" in script
    assert "--validation-report=test-results/validation-postgresql.md" in script


@pytest.mark.requirement("VALIDATION-REPORT")
def test_every_requirement_is_named_by_a_test():
    import re

    named: set[str] = set()
    for path in (ROOT / "tests").rglob("test_*.py"):
        for args in re.findall(r"mark\.requirement\(([^)]*)\)", path.read_text(encoding="utf-8")):
            named |= set(re.findall(r'"([A-Z][A-Z0-9-]+)"', args))
    ids = {r["id"] for r in load_requirements(REQUIREMENTS)}
    assert ids - named == set(), "requirements no test names"
    assert named - ids <= {"R-PASS", "R-FAIL", "R-SKIP", "R-TYPO"}          # this file's sample ones
