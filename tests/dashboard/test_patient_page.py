"""The patient page: timeline states, score trends, and every action with its reason and history."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path

from sqlalchemy import func, select

from proapp import db
from proapp.patients.models import (
    Agreement,
    Occurrence,
    OccurrenceStatus,
    Patient,
    PatientContact,
    PatientEvent,
    PatientStatus,
)
from proapp.questionnaire.models import Response
from proapp.sms.models import SmsMessage, SmsStatus
from tests.dashboard.conftest import NOW, PASSWORD, Staff, enrol, link_for, occurrence, text_of
from tests.dashboard.helpers import complete, enrol_at
from tests.questionnaire.helpers import weekly_screens


def _events(app, pid):
    with app.app_context():
        return [(e.action, e.actor, e.reason, e.details) for e in db.session().scalars(
            select(PatientEvent).where(PatientEvent.patient_id == pid).order_by(PatientEvent.id))]


def test_timeline_states_follow_the_sms_and_the_patient(dash_app):
    pid = enrol(dash_app, "IMA-PSL-001", days_ago=30)
    occ = occurrence(dash_app, pid, "M1")
    staff = Staff(dash_app, "coord_psl")

    def state():
        page = staff.get(f"/staff/patients/{pid}").get_data(as_text=True)
        return re.search(r'<tr class="state-([a-z_]+)">\s*<th scope="row">M1', page).group(1)

    assert state() == "open"
    # The schedule names the questionnaires, not their codes.
    page = staff.get(f"/staff/patients/{pid}").get_data(as_text=True)
    m1 = re.search(r'<th scope="row">M1.*?</th>\s*<td>(.*?)</td>', page, re.S).group(1)
    assert "TOLERANCE" not in m1 and ("Treatment side effects" in m1 or "Effets indésirables du traitement" in m1), m1
    with dash_app.app_context():
        s = db.session()
        s.add(SmsMessage(occurrence_id=occ.id, patient_id=pid, kind="invitation", status=SmsStatus.SENT,
                         created_at=NOW, due_at=NOW, status_at=NOW))
        s.commit()
    assert state() == "invited"
    with dash_app.app_context():
        s = db.session()
        s.scalar(select(SmsMessage)).status = SmsStatus.DELIVERED
        s.commit()
    assert state() == "delivered"
    token = link_for(dash_app, pid, "M1")
    patient = dash_app.test_client()
    patient.get(f"/s/{token}")
    assert state() == "opened"
    welcome = patient.get("/q").get_data(as_text=True)
    first = re.search(r'class="button primary" href="([^"]+)"', welcome).group(1)
    screen = patient.get(first).get_data(as_text=True)
    form = {"csrf_token": re.search(r'name="csrf_token" value="([^"]+)"', screen).group(1)}
    for name, value in re.findall(r'<input type="radio" name="([^"]+)" value="([^"]+)"', screen):
        form.setdefault(name, value)              # every question of the screen (the DLQI shows two)
    assert patient.post(first, data=form).status_code == 303
    assert state() == "in_progress"
    page = text_of(staff.get(f"/staff/patients/{pid}"))
    assert "Upcoming" in page and "SMS log" in page and "Invitation" in page and "Delivered" in page


def test_score_trends_are_svg_charts_with_their_values(dash_app):
    pid = enrol_at(dash_app, "ADU-TLS-001", NOW - timedelta(days=30), study="ADUSE", site="TLS")
    for visit, pain, ulcers, still_open in (("W1", 70, 2, 3), ("W2", 50, 1, 2), ("W3", 30, 0, 0)):
        complete(dash_app, pid, visit, {"PAIN_VAS": {"status": "scored", "pain": pain},
                                        "DU_DIARY": {"status": "scored", "new_ulcer_count": ulcers,
                                                     "active_ulcer_count": still_open}})
    page = Staff(dash_app, "admin").get(f"/staff/patients/{pid}").get_data(as_text=True)
    charts = re.findall(r'<svg class="chart".*?</svg>', page, re.S)
    assert len(charts) == 3                           # pain, open and new ulcers; DLQI and HAQ have none yet
    still_open = next(c for c in charts if 'aria-label="Open digital ulcers"' in c)
    assert "W1: 3" in still_open and "W3: 0" in still_open
    assert "W2: 1" in next(c for c in charts if 'aria-label="New digital ulcers"' in c)
    pain = next(c for c in charts if 'aria-label="Pain VAS (0-100)"' in c)
    assert len(re.findall(r"<circle", pain)) == 3 and "<polyline" in pain
    assert "W1: 70" in pain and "W3: 30" in pain
    ys = [float(y) for y in re.findall(r'<circle cx="[0-9.]+" cy="([0-9.]+)"', pain)]
    assert ys[0] < ys[1] < ys[2]                                     # pain going down: points lower on screen
    assert "<script" not in page and "style=" not in pain
    assert "Not completed yet." in page                              # DLQI and HAQ: W0 was cancelled


def test_the_tolerance_checklist_charts_its_worst_grade(dash_app):
    pid = enrol(dash_app, "IMA-PSL-001", days_ago=40)
    complete(dash_app, pid, "M1", {"TOLERANCE": {"status": "scored", "worst": 3, "severe_count": 1},
                                   "DLQI": {"status": "scored", "total": 12}})
    page = Staff(dash_app, "admin").get(f"/staff/patients/{pid}").get_data(as_text=True)
    worst = re.search(r'<svg class="chart"[^>]*aria-label="Worst side effect \(0-4\)".*?</svg>', page, re.S)
    assert worst and "M1: 3" in worst.group(0)
    assert "Open digital ulcers" not in page                        # no diary in this study


def test_resend_before_the_invitation_went_is_the_invitation(dash_app):
    pid = enrol(dash_app, "IMA-PSL-001", days_ago=30)
    occ = occurrence(dash_app, pid, "M1")
    staff = Staff(dash_app, "admin")
    assert staff.post(f"/staff/patients/{pid}/actions/resend", {"occurrence": occ.id, "reason": "x"}).status_code == 303
    result = dash_app.test_cli_runner().invoke(args=["proapp", "tick"])
    assert "sms_sent=1" in result.output, result.output
    with dash_app.app_context():
        assert [m.kind for m in db.session().scalars(select(SmsMessage))] == ["invitation"]


def test_resend_kills_the_old_link_and_the_worker_sends_a_new_one(dash_app):
    runner = dash_app.test_cli_runner()
    pid = enrol(dash_app, "IMA-PSL-001", days_ago=30)
    assert "sms_sent=1" in runner.invoke(args=["proapp", "tick"]).output      # the invitation
    console = Path(dash_app.instance_path) / "console_sms.jsonl"
    old = re.search(r"/s/(\S+)", json.loads(console.read_text().splitlines()[-1])["body"]).group(1)
    staff = Staff(dash_app, "coord_psl")
    occ = occurrence(dash_app, pid, "M1")
    refused = staff.post(f"/staff/patients/{pid}/actions/resend", {"occurrence": occ.id, "reason": " "})
    assert refused.status_code == 422 and "Give the reason for this change." in text_of(refused)
    assert dash_app.test_client().get(f"/s/{old}").status_code == 303   # nothing changed
    done = staff.post(f"/staff/patients/{pid}/actions/resend", {"occurrence": occ.id,
                                                                "reason": "patient deleted the SMS"})
    assert done.status_code == 303
    assert dash_app.test_client().get(f"/s/{old}").status_code == 303   # the old link works until the SMS goes
    assert "The previous link works until the new SMS has gone." in text_of(staff.get(done.headers["Location"]))
    with dash_app.app_context():
        msg = db.session().scalar(select(SmsMessage).where(SmsMessage.kind == "resend_1"))
        assert (msg.patient_id, msg.status) == (pid, SmsStatus.PENDING)
    before = console.read_text().count("\n") if console.exists() else 0
    result = runner.invoke(args=["proapp", "tick"])
    assert result.exit_code == 0, result.output
    lines = console.read_text().splitlines()
    assert len(lines) == before + 1
    new_link = re.search(r"https?://\S+/s/(\S+)", json.loads(lines[-1])["body"]).group(1)
    assert dash_app.test_client().get(f"/s/{new_link}").status_code == 303
    replaced = dash_app.test_client().get(f"/s/{old}")            # the patient taps the old SMS again
    assert replaced.status_code == 410 and "Un nouveau lien vous a été envoyé" in text_of(replaced)
    assert _events(dash_app, pid) == [("link_resent", "user:psl@chu.test", "patient deleted the SMS",
                                       {"visit": "M1", "sms": "resend_1"})]


def test_resend_is_refused_while_sms_are_paused(dash_app):
    pid = enrol(dash_app, "IMA-PSL-001", days_ago=30)
    staff = Staff(dash_app, "admin")
    occ = occurrence(dash_app, pid, "M1")
    assert staff.post(f"/staff/patients/{pid}/actions/pause", {"reason": "in hospital"}).status_code == 303
    resp = staff.post(f"/staff/patients/{pid}/actions/resend", {"occurrence": occ.id, "reason": "x"})
    assert resp.status_code == 422 and "resume them first" in text_of(resp)
    upcoming = occurrence(dash_app, pid, "M3")
    resp = staff.post(f"/staff/patients/{pid}/actions/resend", {"occurrence": upcoming.id, "reason": "x"})
    assert resp.status_code == 422


def test_pause_and_resume_need_a_reason_and_are_recorded(dash_app):
    pid = enrol(dash_app, "IMA-PSL-001", days_ago=30)
    staff = Staff(dash_app, "coord_psl")
    assert staff.post(f"/staff/patients/{pid}/actions/pause", {"reason": ""}).status_code == 422
    assert staff.post(f"/staff/patients/{pid}/actions/pause", {"reason": "holiday abroad"}).status_code == 303
    again = staff.post(f"/staff/patients/{pid}/actions/pause", {"reason": "twice"})
    assert again.status_code == 422 and "already paused" in text_of(again)
    page = text_of(staff.get(f"/staff/patients/{pid}"))
    assert "paused since" in page and "holiday abroad" in page and "Resume SMS" in page
    assert staff.post(f"/staff/patients/{pid}/actions/resume", {"reason": "back home"}).status_code == 303
    assert [e[:3] for e in _events(dash_app, pid)] == [
        ("sms_pause", "user:psl@chu.test", "holiday abroad"), ("sms_resume", "user:psl@chu.test", "back home")]


def test_change_phone_validates_masks_and_makes_the_number_usable_again(dash_app):
    pid = enrol(dash_app, "IMA-PSL-001", days_ago=30)
    with dash_app.app_context():
        s = db.session()
        s.get(PatientContact, pid).usable = False
        s.commit()
        old_cipher = s.get(PatientContact, pid).phone_ciphertext
    staff = Staff(dash_app, "admin")
    bad = staff.post(f"/staff/patients/{pid}/actions/phone", {"phone": "01 23", "reason": "new phone"})
    assert bad.status_code == 422 and "This is not a valid phone number." in text_of(bad)
    landline = staff.post(f"/staff/patients/{pid}/actions/phone", {"phone": "01 42 34 56 78", "reason": "x"})
    assert "give a mobile number" in text_of(landline)
    ok = staff.post(f"/staff/patients/{pid}/actions/phone", {"phone": "06 98 76 54 32", "reason": "new phone"})
    assert ok.status_code == 303
    with dash_app.app_context():
        contact = db.session().get(PatientContact, pid)
        assert contact.usable and contact.phone_ciphertext != old_cipher
        assert dash_app.extensions["proapp.phones"].decrypt(contact.phone_ciphertext) == "+33698765432"
    [event] = _events(dash_app, pid)
    assert event == ("phone_changed", "user:admin@chu.test", "new phone",
                     {"old": "+336 1 •• •• •• 78", "new": "+336 9 •• •• •• 32"})
    page = staff.get(f"/staff/patients/{pid}").get_data(as_text=True)
    assert "+33698765432" not in page and "06 98 76 54 32" not in page


def test_language_and_sms_hour_changes(dash_app):
    pid = enrol(dash_app, "IMA-PSL-001", days_ago=30)
    staff = Staff(dash_app, "admin")
    url = f"/staff/patients/{pid}/actions/"
    assert staff.post(url + "language", {"language": "de", "reason": "x"}).status_code == 422
    assert staff.post(url + "language", {"language": "en", "reason": "asked"}).status_code == 303
    night = staff.post(f"/staff/patients/{pid}/actions/sms-hour", {"sms_hour": "22", "reason": "x"})
    assert night.status_code == 422 and "between 8 and 20" in text_of(night)
    assert staff.post(url + "sms-hour", {"sms_hour": "18", "reason": "works"}).status_code == 303
    with dash_app.app_context():
        p = db.session().get(Patient, pid)
        assert (p.language, p.sms_hour) == ("en", 18)
    assert [(e[0], e[3]) for e in _events(dash_app, pid)] == [
        ("language_changed", {"old": "fr", "new": "en"}), ("sms_hour_changed", {"old": 10, "new": 18})]
    assert staff.post(f"/staff/patients/{pid}/actions/teleport", {"reason": "x"}).status_code == 404


def test_withdraw_cancels_what_is_not_closed_and_keeps_what_is_completed(dash_app):
    pid = enrol_at(dash_app, "IMA-PSL-001", NOW - timedelta(days=45))
    complete(dash_app, pid, "M1", {})
    staff = Staff(dash_app, "coord_psl")
    assert staff.post(f"/staff/patients/{pid}/actions/withdraw", {"reason": "", "signature_password": PASSWORD}
                      ).status_code == 422
    unsigned = staff.post(f"/staff/patients/{pid}/actions/withdraw", {"reason": "consent withdrawn"})
    assert unsigned.status_code == 422 and "not signed" in unsigned.get_data(as_text=True)
    resp = staff.post(f"/staff/patients/{pid}/actions/withdraw", {"reason": "consent withdrawn",
                                                                 "signature_password": PASSWORD})
    assert resp.status_code == 303
    with dash_app.app_context():
        s = db.session()
        assert s.get(Patient, pid).status == PatientStatus.WITHDRAWN
        states = dict(s.execute(select(Occurrence.visit_code, Occurrence.status)
                                .where(Occurrence.patient_id == pid)).all())
        # M0's window closed before the withdrawal (the worker marks it missed): it is not cancelled.
        assert states == {"M0": OccurrenceStatus.SCHEDULED, "M1": OccurrenceStatus.COMPLETED,
                          "M3": OccurrenceStatus.CANCELLED,
                          "M6": OccurrenceStatus.CANCELLED, "M12": OccurrenceStatus.CANCELLED}
        assert s.scalar(select(func.count()).select_from(Response)) == 3      # DLQI, HAQ, TOLERANCE
    page = staff.get(f"/staff/patients/{pid}").get_data(as_text=True)
    assert "/actions/" not in page and "consent withdrawn" in page
    after = staff.post(f"/staff/patients/{pid}/actions/pause", {"reason": "x"})
    assert after.status_code == 422


def test_on_site_signs_the_staff_out_and_records_the_response_on_site(dash_app):
    pid = enrol(dash_app, "ADU-TLS-001", study="ADUSE", site="TLS", days_ago=7)
    sms_link = link_for(dash_app, pid, "W1")
    staff = Staff(dash_app, "admin")
    occ = occurrence(dash_app, pid, "W1")
    unconfirmed = staff.post(f"/staff/patients/{pid}/on-site", {"occurrence": occ.id})
    assert unconfirmed.status_code == 422 and "Tick the box to confirm" in text_of(unconfirmed)
    assert staff.get(f"/staff/patients/{pid}").status_code == 200          # still signed in
    resp = staff.post(f"/staff/patients/{pid}/on-site", {"occurrence": occ.id, "confirm": "yes"})
    assert resp.status_code == 303 and resp.headers["Location"] == "/q"
    assert staff.get("/staff/").status_code == 303                    # the tablet is no longer signed in
    tablet = staff.client
    page = tablet.get("/q").get_data(as_text=True)
    path = re.search(r'class="button primary" href="([^"]+)"', page).group(1)
    for values in weekly_screens("20"):
        screen = tablet.get(path).get_data(as_text=True)
        token = re.search(r'name="csrf_token" value="([^"]+)"', screen).group(1)
        path = tablet.post(path, data={"csrf_token": token, **values}).headers["Location"]
    review = tablet.get(path).get_data(as_text=True)
    assert path == "/q/review"
    token = re.search(r'name="csrf_token" value="([^"]+)"', review).group(1)
    assert tablet.post("/q/submit", data={"csrf_token": token}).status_code == 303
    with dash_app.app_context():
        s = db.session()
        o = s.get(Occurrence, occ.id)
        assert (o.status, o.completed_on_site) == (OccurrenceStatus.COMPLETED, True)
        assert {r.completed_on_site for r in s.scalars(select(Response))} == {True}
    assert dash_app.test_client().get(f"/s/{sms_link}").status_code == 303   # the SMS link was left alone
    assert _events(dash_app, pid)[0][:2] == ("started_on_site", "user:admin@chu.test")
    again = Staff(dash_app, "admin").get(f"/staff/patients/{pid}").get_data(as_text=True)
    assert "on site" in again


def test_enrol_form_stores_the_patient_and_shows_the_schedule(dash_app):
    staff = Staff(dash_app, "coord_psl")
    form = staff.get("/staff/patients/new").get_data(as_text=True)
    assert 'value="IMATINIB-SSC/PSL"' in form and "IMATINIB-SSC/BSA" not in form and "IMA-PSL-001" in form
    resp = staff.post("/staff/patients/new", {"study_site": "IMATINIB-SSC/PSL", "subject_id": "IMA-PSL-007",
                                              "phone": "06 12 34 56 78", "language": "en",
                                              "anchor_date": "2026-03-02", "timezone": "", "sms_hour": "9",
                                              "agreed_on": "2026-02-27"})
    assert resp.status_code == 303
    page = text_of(staff.get(resp.headers["Location"]))
    assert "IMA-PSL-007 is enrolled" in page and "M12" in page and "09:00" in page
    assert "Agreement to SMS and online answers given on 27 Feb 2026 (information sheet –), recorded by " \
           "psl@chu.test" in page                # the shipped study file gives no information sheet
    with dash_app.app_context():
        p = db.session().scalar(select(Patient).where(Patient.subject_id == "IMA-PSL-007"))
        assert (p.language, p.timezone, p.sms_hour, str(p.anchor_date)) == ("en", "Europe/Paris", 9, "2026-03-02")
        agreement = db.session().scalar(select(Agreement).where(Agreement.patient_id == p.id))
        assert (agreement.kind, str(agreement.given_on), agreement.information_version) == (
            "agreement", "2026-02-27", None)


BAD = [
    ({"study_site": "IMATINIB-SSC/BSA"}, "Choose the study and site."),       # not one of the user's sites
    ({"subject_id": "IMA-BSA-007"}, "does not follow the study's pattern"),
    ({"subject_id": ""}, "Give the subject ID."),
    ({"phone": "12"}, "This is not a valid phone number."),
    ({"anchor_date": "02/03/2026"}, "year-month-day"),
    ({"anchor_date": "2020-01-01"}, "within two years before"),
    ({"sms_hour": "23"}, "between 8 and 20"),
    ({"language": "xx"}, "Language must be fr or en."),
    ({"timezone": "Mars/Olympus"}, "Choose a time zone from the list."),
    ({"agreed_on": ""}, "Give the day the patient agreed to SMS and to answering online."),
    ({"agreed_on": "2099-01-01"}, "The patient's agreement cannot be dated after today."),
]


def test_enrol_form_errors_are_shown_on_the_form_and_nothing_is_stored(dash_app):
    staff = Staff(dash_app, "coord_psl")
    good = {"study_site": "IMATINIB-SSC/PSL", "subject_id": "IMA-PSL-007", "phone": "0612345678",
            "language": "fr", "anchor_date": "2026-03-02", "timezone": "", "sms_hour": "10",
            "agreed_on": "2026-02-27"}
    for change, message in BAD:
        resp = staff.post("/staff/patients/new", {**good, **change})
        assert resp.status_code == 422, change
        assert message in text_of(resp), (change, text_of(resp)[:300])
        assert 'aria-invalid="true"' in resp.get_data(as_text=True)
    enrol(dash_app, "IMA-PSL-008")
    dup = staff.post("/staff/patients/new", {**good, "subject_id": "IMA-PSL-008"})
    assert "already enrolled" in text_of(dup)
    with dash_app.app_context():
        assert db.session().scalar(select(func.count()).select_from(Patient)) == 1


def test_enrol_errors_in_french(dash_app):
    staff = Staff(dash_app, "coord_psl")
    staff.post("/language", data={"lang": "fr", "next": "/staff/"})
    resp = staff.post("/staff/patients/new", {"study_site": "IMATINIB-SSC/PSL", "subject_id": "IMA-PSL-007",
                                              "phone": "12", "language": "fr", "anchor_date": "2026-03-02",
                                              "sms_hour": "10"})
    assert "Ce numéro de téléphone n'est pas valide." in text_of(resp) or "numéro" in text_of(resp)
    assert "Le patient n'est pas encore inclus" in text_of(resp)


def test_every_enrolment_error_shows_at_once_beside_its_field(dash_app):
    """A bad subject ID, a bad phone and no date in one submission: three messages, one submission (not four)."""
    staff = Staff(dash_app, "coord_psl")
    resp = staff.post("/staff/patients/new", {"study_site": "IMATINIB-SSC/PSL", "subject_id": "PSL-7",
                                              "phone": "12", "language": "fr", "anchor_date": "",
                                              "timezone": "", "sms_hour": "10", "agreed_on": "2026-02-27"})
    page = text_of(resp)
    assert resp.status_code == 422
    assert "does not follow the study's pattern (for example IMA-PSL-001)" in page
    assert "This is not a valid phone number." in page
    assert "Give the anchor date (day 0 of the schedule)." in page and "year-month-day" not in page
    assert resp.get_data(as_text=True).count('aria-invalid="true"') == 3


def test_deliveries_say_when_no_study_pushes_to_an_edc(dash_app):
    """The shipped study files name no EDC endpoint (the EDC pulls): the page says so, not "nothing yet"."""
    page = text_of(Staff(dash_app, "admin").get("/staff/deliveries"))
    assert "nothing is sent from here" in page or "rien n'est envoyé d'ici" in page, page
    assert "Nothing yet." not in page and "Rien pour l'instant." not in page
