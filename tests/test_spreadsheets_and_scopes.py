"""Issue 28, the remaining input and scope findings: a formula hidden after a separator inside a CSV cell (French
Excel splits on semicolons), the certified copy's semicolon variant, a site-restricted API key's metadata, and
the production default of who must use two-factor sign-in."""

from __future__ import annotations

import csv
import io
import json

import pytest

from proapp import csvfiles
from proapp.config import load_config
from tests.dashboard.conftest import PASSWORD, Staff
from tests.export.conftest import auth, make_key
from tests.questionnaire.helpers import enrol_with_open_window
from tests.test_config import GOOD_PROD

TYPED = ("x;=HYPERLINK(\"http://evil\")", "a,@SUM(1)", "note; -2+3", "ok,+cmd|' /c calc'!A0", "=1+2", "plain; text")


def cells(data: str, delimiter: str) -> list[str]:
    return [cell for row in csv.reader(io.StringIO(data), delimiter=delimiter) for cell in row]


@pytest.mark.parametrize("written_with", [",", ";"])
def test_no_cell_starts_a_formula_whichever_separator_the_spreadsheet_splits_on(written_with):
    out = io.StringIO()
    csvfiles.writer(out, written_with).writerows([TYPED, (12, -3.5, None)])
    for read_with in (",", ";"):                   # English Excel (commas) and French Excel (semicolons)
        found = [c for c in cells(out.getvalue(), read_with) if c.lstrip(" ").startswith(csvfiles.FORMULA_STARTS)]
        assert found == [] or found == ["-3.5"], (written_with, read_with, found)      # a number stays a number
    back = cells(out.getvalue(), written_with)
    assert back[:len(TYPED)] == ["x;'=HYPERLINK(\"http://evil\")", "a,'@SUM(1)", "note;' -2+3",
                                 "ok,'+cmd|' /c calc'!A0", "'=1+2", "plain; text"]     # the text, still readable


def test_the_certified_copy_comes_with_semicolons_for_french_excel_and_no_formula_after_either(app):
    from sqlalchemy import select

    from proapp import db
    from proapp.accounts.models import Role, User
    from proapp.accounts.staff import create_user
    from proapp.runtime import now

    with app.app_context():
        create_user(db.session(), email="c@chu.test", password=PASSWORD, role=Role.ADMIN, now=now())
        db.session().commit()
        assert db.session().scalar(select(User.id).where(User.email == "c@chu.test"))
    pid, _token = enrol_with_open_window(app, "ADUSE", "W1")
    staff = Staff(app, None)
    staff.login("c@chu.test", PASSWORD, expect=303)
    for n, reason in enumerate(("called;=cmd|' /c calc'!A0", "called,@SUM(A1)")):
        resp = staff.post(f"/staff/patients/{pid}/actions/{'pause' if n == 0 else 'resume'}", data={"reason": reason})
        assert resp.status_code == 303, resp.text[:300]
    assert f"/staff/patients/{pid}/audit.csv?sep=semicolon" in staff.get(f"/staff/patients/{pid}").text
    comma = staff.get(f"/staff/patients/{pid}/audit.csv").get_data(as_text=True)
    semicolon = staff.get(f"/staff/patients/{pid}/audit.csv?sep=semicolon").get_data(as_text=True)
    assert comma.startswith("\ufeffentry,at_utc,actor") and semicolon.startswith("\ufeffentry;at_utc;actor")
    header = next(csv.reader(io.StringIO(semicolon), delimiter=";"))
    assert all(len(row) == len(header) for row in csv.reader(io.StringIO(semicolon), delimiter=";"))
    for data in (comma, semicolon):
        for read_with in (",", ";"):
            assert not [c for c in cells(data, read_with) if c.startswith(csvfiles.FORMULA_STARTS)], read_with
    assert "called;'=cmd" in semicolon and "called,'@SUM(A1)" in comma


def test_a_site_restricted_key_sees_only_its_sites_in_the_metadata(app):
    every, bordeaux = make_key(app, "IMATINIB-SSC"), make_key(app, "IMATINIB-SSC", sites=("BSA", "LIB"))
    client = app.test_client()
    whole = client.get("/api/v1/studies/IMATINIB-SSC/metadata", headers=auth(every)).get_json()
    assert len({s["code"] for s in whole["sites"]}) > 2
    mine = client.get("/api/v1/studies/IMATINIB-SSC/metadata", headers=auth(bordeaux)).get_json()
    assert [s["code"] for s in mine["sites"]] == ["BSA", "LIB"]
    odm = client.get("/api/v1/studies/IMATINIB-SSC/metadata", headers=auth(bordeaux), query_string={"format": "odm"})
    assert odm.status_code == 200
    others = {s["code"] for s in whole["sites"]} - {"BSA", "LIB"}
    assert "BSA" in odm.text and not [code for code in others if f'"{code}"' in odm.text or f">{code}<" in odm.text]
    assert json.dumps(mine).count("Pellegrin") == 0


def test_production_asks_every_role_for_a_second_factor_by_default(tmp_path):
    cfg = load_config(tmp_path, env=GOOD_PROD)
    assert set(cfg["TWO_FACTOR_ROLES"].split(",")) == {"admin", "coordinator", "monitor"}
    assert load_config(tmp_path, env={**GOOD_PROD, "PROAPP_TWO_FACTOR_ROLES": "admin"})["TWO_FACTOR_ROLES"] == "admin"
