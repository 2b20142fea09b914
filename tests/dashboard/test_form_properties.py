"""Property-based tests (hypothesis) over the staff forms: never a 500, nothing stored from invalid input."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from proapp.patients.models import Patient, PatientEvent
from tests.dashboard.conftest import Staff
from tests.test_properties import SETTINGS, count, junk

ENROL_FIELDS = ("study_site", "subject_id", "phone", "language", "timezone", "anchor_date", "sms_hour",
                "agreed_on")


def test_enrol_form(dash_app):
    staff = Staff(dash_app, "coord_psl")

    @SETTINGS
    @given(st.fixed_dictionaries(dict.fromkeys(ENROL_FIELDS, junk)))
    def check(form):
        before = count(dash_app, Patient)
        resp = staff.post("/staff/patients/new", form)
        assert resp.status_code in (303, 400, 422), resp.status_code      # 400: a NUL byte
        if resp.status_code != 303:
            assert count(dash_app, Patient) == before

    check()


def test_patient_actions(dash_app):
    from tests.dashboard.conftest import enrol

    pid = enrol(dash_app, "IMA-PSL-001")
    staff = Staff(dash_app, "coord_psl")

    @SETTINGS
    @given(action=st.sampled_from(["resend", "pause", "resume", "phone", "language", "sms-hour", "withdraw"]),
           form=st.fixed_dictionaries(dict.fromkeys(("reason", "occurrence", "phone", "language", "sms_hour"), junk)))
    def check(action, form):
        if action == "withdraw":
            form["reason"] = ""                      # keep the patient active for the next examples
        before = count(dash_app, PatientEvent)
        resp = staff.post(f"/staff/patients/{pid}/actions/{action}", form)
        assert resp.status_code in (303, 400, 422), (action, resp.status_code)
        if resp.status_code != 303:
            assert count(dash_app, PatientEvent) == before

    check()


def test_sign_in_and_list_filters(dash_app):
    anon = Staff(dash_app, None)
    admin = Staff(dash_app, "admin")

    @SETTINGS
    @given(email=junk, password=junk, q=junk, flag=junk, page=junk, since=junk)
    def check(email, password, q, flag, page, since):
        assert anon.login(email, password).status_code in (200, 400, 429)
        assert admin.get("/staff/patients", query_string={"q": q, "flag": flag, "page": page,
                                                          "status": flag, "site": q}).status_code in (200, 400)
        assert admin.get("/staff/audit", query_string={"subject": q, "action": flag, "since": since,
                                                       "page": page}).status_code in (200, 400)

    check()


def test_on_site_and_correction_forms(dash_app):
    from sqlalchemy import select

    from proapp import db
    from proapp.questionnaire.models import Correction, Response
    from tests.dashboard.conftest import enrol
    from tests.dashboard.helpers import complete

    pid = enrol(dash_app, "IMA-PSL-001", days_ago=30)
    complete(dash_app, pid, "M1", {"DLQI": {"total": 3}})
    with dash_app.app_context():
        rid = db.session().scalar(select(Response.id).where(Response.instrument_code == "DLQI"))
    staff = Staff(dash_app, "coord_psl")

    @SETTINGS
    @given(form=st.fixed_dictionaries(dict.fromkeys(("item", "repeat", "value", "reason", "source", "requested_on",
                                                     "request_method"), junk)), occurrence=junk)
    def check(form, occurrence):
        before = count(dash_app, Correction)
        resp = staff.post(f"/staff/patients/{pid}/responses/{rid}/correct", form)
        assert resp.status_code in (303, 400, 422), resp.status_code
        if resp.status_code != 303:
            assert count(dash_app, Correction) == before
        on_site = staff.post(f"/staff/patients/{pid}/on-site", {"occurrence": occurrence})
        assert on_site.status_code in (400, 422), on_site.status_code  # never an open window here: M1 is done

    check()
