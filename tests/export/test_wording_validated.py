"""Which wording each answer was collected with, and whether it was the validated text: the staff's response page
and the JSON export say it, from the instrument version and language the response recorded."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime

import pytest
import yaml
from sqlalchemy import select

from proapp import db
from proapp.accounts.models import Role
from proapp.accounts.staff import create_user
from proapp.instruments.registry import DATA_DIR as INSTRUMENT_FILES
from proapp.questionnaire.models import Response
from tests.conftest import fresh_app
from tests.dashboard.conftest import PASSWORD, Staff, text_of
from tests.export.conftest import auth, complete_diary, make_key

URL = "/api/v1/studies/ADUSE"


def _pain_validated_in_french(tmp_path):
    """The shipped instrument files, with the pain scale's French wording marked validated (as once licensed)."""
    folder = tmp_path / "instruments"
    shutil.copytree(INSTRUMENT_FILES, folder)
    raw = yaml.safe_load((folder / "PAIN_VAS-1.0.yaml").read_text(encoding="utf-8"))
    raw["languages"]["fr"]["validated"] = True
    (folder / "PAIN_VAS-1.0.yaml").write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    return folder


@pytest.mark.requirement("INS-LICENCE", "EXPORT")
def test_the_export_and_the_staff_page_say_whether_the_wording_was_validated(database_url, instance_dir, tmp_path):
    app = fresh_app(database_url, INSTRUMENTS_DIR=str(_pain_validated_in_french(tmp_path)))
    try:
        pid = complete_diary(app, "ADU-TLS-001", language="fr")
        key = make_key(app)
        items = app.test_client().get(f"{URL}/responses", headers=auth(key)).get_json()["data"]
        assert {(i["instrument"]["code"], i["language"], i["wording_validated"]) for i in items} == {
            ("PAIN_VAS", "fr", True), ("DU_DIARY", "fr", False)}
        with app.app_context():
            s = db.session()
            create_user(s, email="nurse@chu.test", password=PASSWORD, role=Role.COORDINATOR, now=datetime.now(UTC),
                        study_code="ADUSE", language="en")
            s.commit()
            ids = dict(s.execute(select(Response.instrument_code, Response.id)).all())
        staff = Staff(app, None)
        staff.login("nurse@chu.test", PASSWORD, expect=303)
        pain = text_of(staff.get(f"/staff/patients/{pid}/responses/{ids['PAIN_VAS']}"))
        diary = text_of(staff.get(f"/staff/patients/{pid}/responses/{ids['DU_DIARY']}"))
        assert "PAIN_VAS 1.0" in pain and "language FR · validated wording" in pain
        assert "DU_DIARY 2.3" in diary and "language FR · wording not validated" in diary
    finally:
        app.extensions["proapp.engine"].dispose()
