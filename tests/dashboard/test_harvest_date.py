"""Issue 30: the fat-harvest question (DU_HARVEST) is asked in the weeks after the liposuction only. The team records
the liposuction date at enrolment or on the patient's page (audited, with a reason); a date after the injection or in
the future is refused; without a date the question is asked as before and the patient's page shows a to-do; a
reschedule of the injection never moves the liposuction date."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import select

from proapp import db
from proapp.audit.models import AuditEvent
from proapp.patients.enrolment import EnrolmentRequest, enroll_patient
from proapp.patients.models import Occurrence, Patient, PatientEvent
from proapp.questionnaire.models import Answer, Response
from tests.dashboard.conftest import NOW, PASSWORD, Staff, link_for, text_of
from tests.helpers import agreed
from tests.questionnaire.helpers import Patient as PatientPages
from tests.questionnaire.helpers import text

INJECTION = NOW.date() + timedelta(days=2)           # 2026-03-12; W1 opens on 03-19, W2 on 03-26, W3 on 04-02
LIPOSUCTION = date(2026, 3, 1)                       # followed for 28 days: until 03-29, within W2's window
HARVEST_FIRST = "Since the fat was taken for the injection, have you had a problem where it was taken"
HARVEST_AGAIN = "Since your last entry, have you had a problem where the fat was taken"


def _at(app, day: date) -> None:
    """The clock at 10:00 in Paris on ``day``."""
    app.extensions["proapp.clock"].set(datetime(day.year, day.month, day.day, 9, 0, tzinfo=UTC))


def _enrol_form(staff: Staff, subject: str, anchor: date, harvest: str):
    return staff.post("/staff/patients/new", {
        "study_site": "ADUSE/TLS", "subject_id": subject, "phone": "+33612345678", "language": "en",
        "timezone": "", "anchor_date": anchor.isoformat(), "sms_hour": "10", "agreed_on": NOW.date().isoformat(),
        "harvest_date": harvest})


def _entry(app, pid: int, visit: str, send: bool = True, p: PatientPages | None = None) -> list[tuple[str, str]]:
    """The patient answers the visit's questionnaires through their pages ("No" to every yes/no question, the pain
    line at 20) and sends them (``send``); returns each screen's key and text, in order."""
    p = p or PatientPages(app.test_client(), link_for(app, pid, visit))
    p.open()
    p.start()
    seen = []
    while p.path != "/q/review":
        assert p.page.status_code == 200 and p.path.startswith("/q/"), (p.path, p.page.status_code)
        html = p.page.text
        seen.append((p.screen_key, text(html)))
        choices: dict[str, list[str]] = {}
        for name, value in re.findall(r'<input type="radio" name="([^"]+)" value="([^"]+)"', html):
            choices.setdefault(name, []).append(value)
        values = {name: "N" if "N" in options else options[0] for name, options in choices.items()}
        for name in re.findall(r'name="([^"]+)" type="number"', html):
            values[name] = "20"
        p.answer(**values)
    if send:
        p.submit()
    return seen


def _harvest_screen(seen: list[tuple[str, str]]) -> str | None:
    return next((page for key, page in seen if key == "DU_DIARY.DU_HARVEST"), None)


def _wording(app, pid: int, visit: str) -> dict[str, str]:
    with app.app_context():
        r = db.session().scalar(select(Response).join(Occurrence, Occurrence.id == Response.occurrence_id).where(
            Occurrence.patient_id == pid, Occurrence.visit_code == visit, Response.instrument_code == "DU_DIARY"))
        assert r.instrument_version == "2.3"
        return (r.flow_state or {}).get("wording", {})


def _harvest_answers(app, pid: int) -> list[str]:
    """The visits whose diary has an answer to DU_HARVEST."""
    with app.app_context():
        return list(db.session().scalars(
            select(Occurrence.visit_code).join(Response, Response.occurrence_id == Occurrence.id)
            .join(Answer, Answer.response_id == Response.id)
            .where(Occurrence.patient_id == pid, Answer.item_code == "DU_HARVEST").order_by(Occurrence.visit_day)))


def _patient(app, pid: int) -> Patient:
    with app.app_context():
        p = db.session().get(Patient, pid)
        db.session().expunge(p)
        return p


def test_asked_in_the_weeks_after_the_liposuction_and_not_after(dash_app):
    staff = Staff(dash_app, "admin")
    # At enrolment: a liposuction date in the future, or after the injection, is refused beside its field.
    future = _enrol_form(staff, "ADU-TLS-101", INJECTION, (NOW.date() + timedelta(days=1)).isoformat())
    assert future.status_code == 422
    assert "The liposuction date cannot be in the future" in text_of(future)
    after = _enrol_form(staff, "ADU-TLS-101", NOW.date() - timedelta(days=5), (NOW.date() - timedelta(days=2))
                        .isoformat())
    assert after.status_code == 422
    assert "cannot be after the injection (the anchor date, 2026-03-05)" in text_of(after)
    typo = _enrol_form(staff, "ADU-TLS-101", INJECTION, "01/03/2026")
    assert typo.status_code == 422 and "year-month-day" in text_of(typo)
    with dash_app.app_context():
        assert db.session().scalar(select(Patient.id).where(Patient.subject_id == "ADU-TLS-101")) is None

    done = _enrol_form(staff, "ADU-TLS-101", INJECTION, LIPOSUCTION.isoformat())
    assert done.status_code == 303, text_of(done)[:400]
    pid = int(done.headers["Location"].rsplit("/", 1)[-1])
    assert _patient(dash_app, pid).harvest_date == LIPOSUCTION
    page = text_of(staff.get(f"/staff/patients/{pid}"))
    assert "Liposuction date" in page and "harvest site followed until" in page
    assert "Liposuction date not recorded" not in page
    with dash_app.app_context():
        entry = db.session().scalar(select(AuditEvent).where(AuditEvent.patient_id == pid,
                                                             AuditEvent.action == "patient.enrolled"))
        assert entry.new["harvest_date"] == "2026-03-01"

    # W1 (03-19 to 03-22): within the 28 days after the liposuction, the first time asked: "since the fat was taken".
    _at(dash_app, date(2026, 3, 19))
    first = _harvest_screen(_entry(dash_app, pid, "W1"))
    assert first is not None and HARVEST_FIRST in first
    assert _wording(dash_app, pid, "W1")["DU_HARVEST"] == "first_harvest_entry"
    # W2 (03-26 to 03-29): the follow-up's last days: asked again, since the last entry.
    _at(dash_app, date(2026, 3, 26))
    again = _harvest_screen(_entry(dash_app, pid, "W2"))
    assert again is not None and HARVEST_AGAIN in again and HARVEST_FIRST not in again
    assert "DU_HARVEST" not in _wording(dash_app, pid, "W2")
    # W3 (04-02 on): the weeks after the liposuction are over: not asked, and nothing else is missing.
    _at(dash_app, date(2026, 4, 2))
    later = _entry(dash_app, pid, "W3")
    assert _harvest_screen(later) is None
    assert [k for k, _t in later][-2:] == ["DU_DIARY.DU_INJECTED", "PAIN_VAS.PAIN_VAS"]
    _at(dash_app, date(2026, 4, 9))
    assert _harvest_screen(_entry(dash_app, pid, "W4")) is None
    assert _harvest_answers(dash_app, pid) == ["W1", "W2"]


def test_without_a_date_it_is_asked_and_the_team_has_a_to_do_until_recorded(dash_app):
    staff = Staff(dash_app, "admin")
    done = _enrol_form(staff, "ADU-TLS-102", NOW.date() - timedelta(days=7), "")      # W1 open now (03-10)
    assert done.status_code == 303
    pid = int(done.headers["Location"].rsplit("/", 1)[-1])
    page = text_of(staff.get(f"/staff/patients/{pid}"))
    assert "Liposuction date not recorded: the diary asks about the place where the fat was taken in every entry" \
        in page
    assert _patient(dash_app, pid).harvest_date is None

    # Never silently dropped: asked, the first time since the fat was taken (whenever that was).
    first = _harvest_screen(_entry(dash_app, pid, "W1"))
    assert first is not None and HARVEST_FIRST in first

    # Recorded on the patient's page: a reason, a date on or before the injection and not in the future.
    url = f"/staff/patients/{pid}/actions/harvest-date"
    refused = {
        "": "Give the date as year-month-day",
        (NOW.date() + timedelta(days=1)).isoformat(): "The liposuction date cannot be in the future",
        (NOW.date() - timedelta(days=2)).isoformat(): "cannot be after the injection (the anchor date, 2026-03-03)",
        "2024-01-10": "more than a year before the injection",
    }
    for value, message in refused.items():
        resp = staff.post(url, {"harvest_date": value, "reason": "Operating note received"})
        assert resp.status_code == 422 and message in text_of(resp), (value, text_of(resp)[:300])
    no_reason = staff.post(url, {"harvest_date": "2026-02-01", "reason": " "})
    assert no_reason.status_code == 422 and "Give the reason for this change." in text_of(no_reason)
    assert _patient(dash_app, pid).harvest_date is None

    ok = staff.post(url, {"harvest_date": "2026-02-01", "reason": "Operating note received"})
    assert ok.status_code == 303
    assert _patient(dash_app, pid).harvest_date == date(2026, 2, 1)
    page = text_of(staff.get(f"/staff/patients/{pid}"))
    assert "Liposuction date not recorded" not in page and "Liposuction date recorded" in page
    assert "Operating note received" in page
    same = staff.post(url, {"harvest_date": "2026-02-01", "reason": "Again"})
    assert same.status_code == 422 and "already the patient's liposuction date" in text_of(same)
    # A monitor may not change it.
    assert Staff(dash_app, "monitor").post(url, {"harvest_date": "2026-02-02", "reason": "x"}).status_code == 403
    with dash_app.app_context():
        s = db.session()
        [event] = s.scalars(select(PatientEvent).where(PatientEvent.patient_id == pid,
                                                       PatientEvent.action == "harvest_date_recorded")).all()
        assert (event.actor, event.details) == ("user:admin@chu.test", {"old": None, "new": "2026-02-01"})
        audit = s.scalar(select(AuditEvent).where(AuditEvent.patient_id == pid,
                                                  AuditEvent.action == "patient.harvest_date_recorded"))
        assert audit.old == {"value": None} and audit.new == {"value": "2026-02-01"}
        assert audit.reason == "Operating note received"

    # The 28 days after 02-01 ended before W2 (03-17): no longer asked.
    _at(dash_app, date(2026, 3, 17))
    assert _harvest_screen(_entry(dash_app, pid, "W2")) is None
    assert _harvest_answers(dash_app, pid) == ["W1"]


def test_a_reschedule_of_the_injection_does_not_move_the_liposuction_date(dash_app):
    with dash_app.app_context():
        s = db.session()
        pid = enroll_patient(s, dash_app.extensions["proapp.studies"], dash_app.extensions["proapp.phones"],
                             EnrolmentRequest("ADUSE", "TLS", "ADU-TLS-103", "+33612345678", "en", INJECTION,
                                              "Europe/Paris", agreed_on=agreed(NOW), harvest_date=LIPOSUCTION),
                             now=NOW).id
        s.commit()
    staff = Staff(dash_app, "admin")
    url = f"/staff/patients/{pid}/actions/reschedule"
    later = INJECTION + timedelta(days=14)
    moved = staff.post(url, {"anchor_date": later.isoformat(), "reason": "Cells not ready",
                             "signature_password": PASSWORD})
    assert moved.status_code == 303
    patient = _patient(dash_app, pid)
    assert (patient.anchor_date, patient.harvest_date) == (later, LIPOSUCTION)
    # The injection cannot move before the liposuction: the cells are taken first.
    before = staff.post(url, {"anchor_date": "2026-02-27", "reason": "Typing error", "signature_password": PASSWORD})
    assert before.status_code == 422
    assert "The liposuction was on 2026-03-01: the injection (the anchor date) cannot be before it" in text_of(before)
    assert _patient(dash_app, pid).anchor_date == later
    # The diary follows the liposuction, not the injection: W1 (now 04-02 to 04-05) is past its 28 days, yet the
    # question was never asked: W1 asks it once, since the fat was taken (those weeks are never left unasked) ...
    _at(dash_app, date(2026, 4, 2))
    first = _harvest_screen(_entry(dash_app, pid, "W1"))
    assert first is not None and HARVEST_FIRST in first
    # ... and W2 no more.
    _at(dash_app, date(2026, 4, 9))
    assert _harvest_screen(_entry(dash_app, pid, "W2")) is None


def test_a_study_without_a_harvest_follow_up_refuses_the_date(dash_app):
    staff = Staff(dash_app, "admin")
    enrol = staff.get("/staff/patients/new")
    assert "Liposuction date (optional)" in text_of(enrol)       # for ADUSE: the hint names it
    resp = staff.post("/staff/patients/new", {
        "study_site": "IMATINIB-SSC/PSL", "subject_id": "IMA-PSL-101", "phone": "+33612345678", "language": "en",
        "timezone": "", "anchor_date": NOW.date().isoformat(), "sms_hour": "10",
        "agreed_on": NOW.date().isoformat(), "harvest_date": "2026-03-01"})
    assert resp.status_code == 422 and "This study follows no liposuction" in text_of(resp)


def test_the_enrol_command_takes_the_liposuction_date(dash_app):
    runner = dash_app.test_cli_runner()
    args = ["proapp", "enroll", "--study", "ADUSE", "--site", "TLS", "--subject", "ADU-TLS-104", "--phone",
            "+33612345678", "--anchor-date", INJECTION.isoformat(), "--agreed-on", NOW.date().isoformat()]
    bad = runner.invoke(args=[*args, "--harvest-date", "2026-03-15"])
    assert bad.exit_code != 0 and "harvest_date: The liposuction date cannot be in the future" in bad.output
    ok = runner.invoke(args=[*args, "--harvest-date", "2026-03-01"])
    assert ok.exit_code == 0, ok.output
    with dash_app.app_context():
        assert db.session().scalar(select(Patient.harvest_date).where(Patient.subject_id == "ADU-TLS-104")) == \
            LIPOSUCTION


def test_an_answer_given_before_the_date_was_recorded_is_not_sent_when_no_longer_asked(dash_app):
    staff = Staff(dash_app, "admin")
    pid = int(_enrol_form(staff, "ADU-TLS-105", NOW.date() - timedelta(days=7), "").headers["Location"]
              .rsplit("/", 1)[-1])
    assert _harvest_screen(_entry(dash_app, pid, "W1")) is not None      # no date yet: asked, and sent
    _at(dash_app, NOW.date() + timedelta(days=7))
    p = PatientPages(dash_app.test_client(), link_for(dash_app, pid, "W2"))
    assert _harvest_screen(_entry(dash_app, pid, "W2", send=False, p=p)) is not None   # answered, not sent yet
    assert _harvest_answers(dash_app, pid) == ["W1", "W2"]
    # The team records a liposuction whose 28 days ended before W2, while the entry waits on its review page.
    staff = Staff(dash_app, "admin")                   # a week later: signed in again
    assert staff.post(f"/staff/patients/{pid}/actions/harvest-date",
                      {"harvest_date": "2026-01-20", "reason": "Operating note"}).status_code == 303
    p.submit()
    assert _harvest_answers(dash_app, pid) == ["W1"]       # W2's not sent: the patient no longer sees the question
    with dash_app.app_context():
        dropped = db.session().scalar(select(AuditEvent).where(AuditEvent.patient_id == pid,
                                                               AuditEvent.action == "answer.dropped"))
        assert dropped.entity_id.endswith(":DU_HARVEST:0") and dropped.reason == "no longer asked when sent"
        occ = db.session().scalar(select(Occurrence).where(Occurrence.patient_id == pid,
                                                           Occurrence.visit_code == "W2"))
        assert occ.completed_at is not None
