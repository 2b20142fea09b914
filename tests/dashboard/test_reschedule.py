"""Rescheduling the anchor date (issue 30: the ADUSE injection postponed): signed, audited, the visits not yet
completed move, completed ones stay, and a date that would move a completed visit is refused."""

from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy import select

from proapp import db
from proapp.accounts.models import User
from proapp.audit.models import AuditEvent
from proapp.patients.models import Occurrence, OccurrenceStatus, Patient, PatientEvent
from proapp.questionnaire.ulcers import ulcer_list
from tests.dashboard.conftest import NOW, PASSWORD, Staff, enrol, text_of
from tests.dashboard.helpers import complete

INJECTION = NOW.date() + timedelta(days=2)        # W0 (days -3 to -1) is open when the team enrols


def _windows(app, pid) -> dict[str, tuple[date, date, date, OccurrenceStatus]]:
    with app.app_context():
        return {o.visit_code: (o.due_on, o.window_opens_on, o.window_closes_on, o.status)
                for o in db.session().scalars(select(Occurrence).where(Occurrence.patient_id == pid))}


def _anchor(app, pid) -> date:
    with app.app_context():
        return db.session().get(Patient, pid).anchor_date


def test_a_signed_reschedule_moves_what_is_not_completed_and_keeps_what_is(dash_app):
    pid = enrol(dash_app, "ADU-TLS-001", study="ADUSE", site="TLS", days_ago=-2)
    complete(dash_app, pid, "W0", {})
    before = _windows(dash_app, pid)
    staff = Staff(dash_app, "admin")
    new = INJECTION + timedelta(days=14)
    form = {"anchor_date": new.isoformat(), "reason": "Cultured cells not ready"}
    unsigned = staff.post(f"/staff/patients/{pid}/actions/reschedule", form)
    assert unsigned.status_code == 422 and "not signed" in text_of(unsigned)
    assert staff.post(f"/staff/patients/{pid}/actions/reschedule", {**form, "reason": "",
                                                                    "signature_password": PASSWORD}).status_code == 422
    bad = staff.post(f"/staff/patients/{pid}/actions/reschedule", {**form, "anchor_date": "26/03",
                                                                   "signature_password": PASSWORD})
    assert bad.status_code == 422 and "year-month-day" in text_of(bad)
    assert _anchor(dash_app, pid) == INJECTION and _windows(dash_app, pid) == before

    done = staff.post(f"/staff/patients/{pid}/actions/reschedule", {**form, "signature_password": PASSWORD})
    assert done.status_code == 303
    after = _windows(dash_app, pid)
    assert _anchor(dash_app, pid) == new
    assert after["W0"] == before["W0"]                                  # completed before the injection: kept
    for visit in ("W1", "W8", "W16", "W16Q"):                          # every visit not completed moves 14 days
        assert after[visit][:3] == tuple(d + timedelta(days=14) for d in before[visit][:3])
    assert after["W1"][:3] == (new + timedelta(days=7), new + timedelta(days=7), new + timedelta(days=10))
    with dash_app.app_context():
        s = db.session()
        [event] = s.scalars(select(PatientEvent).where(PatientEvent.patient_id == pid,
                                                       PatientEvent.action == "anchor_rescheduled")).all()
        assert (event.reason, event.actor) == ("Cultured cells not ready", "user:admin@chu.test")
        assert event.details["old"] == INJECTION.isoformat() and event.details["new"] == new.isoformat()
        assert event.details["kept"] == ["W0"] and len(event.details["moved"]) == 17
        assert event.details["signature"]["signer"] == "admin@chu.test"
        assert event.details["signature"]["meaning"].startswith("I am moving this patient's anchor date")
        audit = s.scalar(select(AuditEvent).where(AuditEvent.patient_id == pid,
                                                  AuditEvent.action == "patient.anchor_rescheduled"))
        assert audit.old == {"value": INJECTION.isoformat()} and audit.new["value"] == new.isoformat()
        # Days to healing count from the new injection day: the registry reads it.
        assert ulcer_list(s.connection(), pid, dash_app.extensions["proapp.instruments"], "en").anchor == new
    page = text_of(staff.get(f"/staff/patients/{pid}"))
    assert "Anchor date rescheduled" in page and "Cultured cells not ready" in page

    # Back to a day on or before W0's completion: its answers would no longer be from before the injection.
    back = staff.post(f"/staff/patients/{pid}/actions/reschedule",
                      {**form, "anchor_date": (NOW.date() - timedelta(days=1)).isoformat(),
                       "signature_password": PASSWORD})
    assert back.status_code == 422 and "not before the new date" in text_of(back)
    same = staff.post(f"/staff/patients/{pid}/actions/reschedule", {**form, "signature_password": PASSWORD})
    assert same.status_code == 422 and "already the patient's anchor date" in text_of(same)
    # Once a diary is completed, counting from the date, the date cannot move any more.
    complete(dash_app, pid, "W1", {})
    late = staff.post(f"/staff/patients/{pid}/actions/reschedule",
                      {**form, "anchor_date": (new + timedelta(days=3)).isoformat(), "signature_password": PASSWORD})
    assert late.status_code == 422 and "Visit W1 is completed" in text_of(late)
    assert _anchor(dash_app, pid) == new


def test_a_missed_visit_before_the_old_date_opens_again_for_the_new_one(dash_app):
    # Enrolled late: W0's window had closed (cancelled at enrolment); the injection is postponed: W0 opens again.
    pid = enrol(dash_app, "ADU-TLS-002", study="ADUSE", site="TLS", days_ago=1)
    assert _windows(dash_app, pid)["W0"][3] == OccurrenceStatus.CANCELLED
    staff = Staff(dash_app, "admin")
    new = NOW.date() + timedelta(days=3)
    assert staff.post(f"/staff/patients/{pid}/actions/reschedule",
                      {"anchor_date": new.isoformat(), "reason": "Infected ulcer: injection postponed",
                       "signature_password": PASSWORD}).status_code == 303
    w0 = _windows(dash_app, pid)["W0"]
    assert w0[1:] == (new - timedelta(days=3), new - timedelta(days=1), OccurrenceStatus.SCHEDULED)
    with dash_app.app_context():
        event = db.session().scalar(select(PatientEvent).where(PatientEvent.action == "anchor_rescheduled"))
        assert event.details["reopened"] == [["W0", "cancelled"]]


def test_the_command_signs_with_a_staff_account_and_prints_the_schedule(dash_app):
    pid = enrol(dash_app, "ADU-TLS-003", study="ADUSE", site="TLS", days_ago=-2)
    runner = dash_app.test_cli_runner()
    new = INJECTION + timedelta(days=7)
    args = ["proapp", "reschedule", "ADU-TLS-003", "--date", new.isoformat(), "--reason", "Cells not ready",
            "--signer", "admin@chu.test"]
    wrong = runner.invoke(args=[*args, "--password", "not the password"])
    assert wrong.exit_code == 2 and "password does not match" in wrong.output
    with dash_app.app_context():
        assert db.session().scalar(select(User.failed_logins).where(User.email == "admin@chu.test")) == 1
    # A coordinator of another study may not sign it.
    other = runner.invoke(args=[*args[:-1], "psl@chu.test", "--password", PASSWORD])
    assert other.exit_code == 2 and "may change this patient" in other.output
    assert _anchor(dash_app, pid) == INJECTION
    ok = runner.invoke(args=[*args, "--password", PASSWORD])
    assert ok.exit_code == 0, ok.output
    assert f"anchor date {INJECTION.isoformat()} -> {new.isoformat()}; 18 visits moved" in ok.output
    assert f"W1     {(new + timedelta(days=7)).isoformat()}" in ok.output
    assert _anchor(dash_app, pid) == new
    with dash_app.app_context():
        event = db.session().scalar(select(PatientEvent).where(PatientEvent.action == "anchor_rescheduled"))
        assert event.actor == "user:admin@chu.test" and event.details["signature"]["method"] == "password"
