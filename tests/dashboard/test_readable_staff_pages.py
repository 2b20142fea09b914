"""The study team's pages say things in words (issue 34): audit actions and who did them, the DLQI's band, why a visit
was cancelled, what the completion rate counts; the enrolment form's errors listed with links to their fields; the
sign-in page in the language chosen on this browser (or the browser's), the pages after it in the account's."""

from __future__ import annotations

import re
from datetime import timedelta

from sqlalchemy import select

from proapp import db
from proapp.audit.trail import record
from proapp.questionnaire.models import Response
from tests.dashboard.conftest import NOW, PASSWORD, USERS, Staff, csrf_of, enrol, text_of
from tests.dashboard.helpers import complete, enrol_at


def test_the_audit_trail_names_each_action_and_who_did_it(dash_app):
    with dash_app.app_context():
        s = db.session()
        for actor, action in (("anonymous:192.0.2.7", "user.password_reset"), ("system:sms", "alert.notification_sent"),
                              ("patient", "answer.dropped"), ("cli", "restore.declared")):
            record(s, actor=actor, action=action, entity="app_user", entity_id=1, at=NOW)
        s.commit()
    page = text_of(Staff(dash_app, "admin").get("/staff/audit"))
    for words in ("Password reset by e-mail", "Someone not signed in (192.0.2.7)", "Alert message sent",
                  "Automatic (SMS)", "Answer dropped (question no longer asked)", "The patient",
                  "Database restore declared", "Command line (server)", "admin@chu.test Signed in"):
        assert words in page, words
    assert "user:admin@chu.test" not in page                  # a staff member is named by their e-mail alone
    french = Staff(dash_app, "admin")
    french.post("/language", {"lang": "fr", "next": "/staff/audit"})
    page = text_of(french.get("/staff/audit"))
    assert "Mot de passe réinitialisé par e-mail" in page and "Automatique (SMS)" in page


def test_a_cancelled_visit_says_why_and_a_band_is_in_words(dash_app):
    pid = enrol_at(dash_app, "IMA-PSL-001", NOW - timedelta(days=45))
    complete(dash_app, pid, "M1", {"DLQI": {"status": "scored", "total": 25, "band": "extremely_large"}})
    late = enrol(dash_app, "IMA-PSL-002", days_ago=200)        # M0 to M3 closed before this enrolment
    staff = Staff(dash_app, "coord_psl")
    assert staff.post(f"/staff/patients/{pid}/actions/withdraw", {"reason": "consent withdrawn",
                                                                 "signature_password": PASSWORD}).status_code == 303
    page = text_of(staff.get(f"/staff/patients/{pid}"))
    assert re.search(r"M3 Month 3 .*? Cancelled the patient was withdrawn on 10 Mar 2026 10:00 CET", page), page
    before = text_of(staff.get(f"/staff/patients/{late}"))
    assert re.search(r"M0 .*? Cancelled its window had closed before enrolment", before), before
    assert "withdrawn on" not in before
    with dash_app.app_context():
        rid = db.session().scalar(select(Response.id).where(Response.instrument_code == "DLQI"))
    response = text_of(staff.get(f"/staff/patients/{pid}/responses/{rid}"))
    assert "Extremely large effect (21-30)" in response and "extremely_large" not in response


def test_the_enrolment_errors_are_listed_each_with_a_link_to_its_field(dash_app):
    staff = Staff(dash_app, "coord_psl")
    resp = staff.post("/staff/patients/new", {"study_site": "", "subject_id": "", "phone": "", "language": "xx",
                                              "anchor_date": "2026-13-40", "timezone": "", "sms_hour": "3",
                                              "agreed_on": ""})
    assert resp.status_code == 422
    html = resp.get_data(as_text=True)
    summary = re.search(r'<div class="error-summary" id="error-summary".*?</div>', html, re.S).group(0)
    targets = re.findall(r'<a href="#([a-z_]+)">', summary)
    assert targets == ["study_site", "subject_id", "phone", "language", "anchor_date", "sms_hour", "agreed_on"]
    for target in targets:                                          # each link leads to its field
        assert re.search(rf'<(input|select|fieldset) id="{target}"', html), target
    assert summary.index("Give the subject ID.") < summary.index("The SMS hour must be between 8 and 20")


def test_the_sign_in_page_keeps_the_chosen_language_and_the_account_then_its_own(dash_app):
    client = dash_app.test_client()
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "fr"
    assert "Se connecter" in text_of(client.get("/staff/login"))          # the browser's language
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "en"
    page = client.get("/staff/login").get_data(as_text=True)
    client.post("/language", data={"lang": "fr", "next": "/staff/login", "csrf_token": csrf_of(page)})
    page = client.get("/staff/login").get_data(as_text=True)
    assert "Se connecter" in text_of(client.get("/staff/login"))          # chosen on this browser
    signed_in = client.post("/staff/login", data={"email": USERS["admin"][0], "password": PASSWORD,
                                                  "csrf_token": csrf_of(page)})
    assert signed_in.status_code == 303
    dashboard = client.get("/staff/")
    assert "Studies" in text_of(dashboard) and "Études" not in text_of(dashboard)   # the account's: English
    client.post("/staff/logout", data={"csrf_token": csrf_of(dashboard.get_data(as_text=True))})
    assert "Se connecter" in text_of(client.get("/staff/login"))          # the browser's choice again
