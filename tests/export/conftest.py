"""Export API fixtures: an API key per test, and responses completed through the real questionnaire."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from proapp import db
from proapp.export.keys import create_key
from tests.questionnaire.helpers import Patient, enrol_with_open_window


def make_key(app, study: str = "ADUSE", sites: tuple[str, ...] = ()) -> str:
    with app.app_context():
        s = db.session()
        _row, key = create_key(s, study_code=study, name="EDC", now=datetime.now(UTC), created_by="test",
                               site_codes=sites)
        s.commit()
        return key


@pytest.fixture
def key(app) -> str:
    return make_key(app)


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def complete_diary(app, subject: str, *, ulcers: int = 2, language: str = "fr") -> int:
    """An ADUSE W1 (pain VAS + ulcer diary) completed through the patient's pages; returns the patient id."""
    pid, token = enrol_with_open_window(app, "ADUSE", "W1", subject=subject, language=language)
    client = app.test_client()
    p = Patient(client, token)
    p.open()
    p.start()
    p.diary([("R" if n % 2 == 0 else "L", str(n + 2), "TIP") for n in range(ulcers)], pain="35")
    assert p.path == "/q/review", p.path
    p.submit()
    return pid


def csrf(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
