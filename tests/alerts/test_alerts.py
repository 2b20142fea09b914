"""Safety signals end to end: a patient's answer raises an alert once, the patient is told whom to call, the site
hears of it by e-mail (and SMS when urgent) through a real SMTP server and the fake Twilio, nobody acknowledging it
escalates it, and everything is in the audit trail."""

from __future__ import annotations

import re
import threading

import pytest
from sqlalchemy import select

from proapp import db
from proapp.alerts.models import Alert, AlertNotification
from proapp.audit.models import AuditEvent
from proapp.patients.models import Patient as PatientRow
from proapp.questionnaire.answering import issue_link, open_occurrence_for
from tests.alerts.conftest import (
    ON_CALL_EMAIL,
    ON_CALL_MOBILE,
    at,
    diary,
    later,
    now_utc,
    worker,
)
from tests.questionnaire.helpers import Patient, answer_tolerance, enrol_with_open_window, text, weekly_screens
from tests.questionnaire.test_flow import DLQI_EN, answer_dlqi, answer_haq

pytestmark = pytest.mark.requirement("ALERTS")


def alerts(app):
    with app.app_context():
        return db.session().scalars(select(Alert).order_by(Alert.id)).all()


def notifications(app):
    with app.app_context():
        return db.session().scalars(select(AlertNotification).order_by(AlertNotification.id)).all()


def audit(app, action):
    with app.app_context():
        return db.session().scalars(select(AuditEvent).where(AuditEvent.action == action)
                                    .order_by(AuditEvent.id)).all()


def test_an_infection_reaches_the_site_once_and_no_mail_carries_an_answer(alert_app, smtp, fake_twilio):
    pid, _patient = diary(alert_app, "ADU-TLS-101", infect="Y", pain=83)
    [alert] = alerts(alert_app)
    assert (alert.rule_code, alert.severity, alert.source, alert.state.value) == (
        "DU_INFECTION", "same_day", "answer_saved", "open")          # raised on save; submitting raised no other
    assert alert.evidence == [{"ref": "DU_DIARY.DU_INFECT", "kind": "item", "value": "Y"}]
    [raised] = audit(alert_app, "alert.raised")
    assert raised.patient_id == pid and raised.new["rule"] == "DU_INFECTION"

    report = worker(alert_app).alerts()
    assert (report["notified"], report["sent"]) == (1, 2)
    coordinator, = smtp.to("tls@chu.test")
    on_call, = smtp.to(ON_CALL_EMAIL)
    assert len(smtp.all()) == 2                   # not another study's coordinator, not the admin at first
    assert coordinator["Subject"].startswith("[ADUSE] Alerte (dans la journée) : ADU-TLS-101")
    body = coordinator.get_content()
    assert "Nouveaux signes d'infection d'un ulcère du doigt" in body and f"/staff/alerts/{alert.id}" in body
    both = on_call.get_content()
    assert "Étude : ADUSE" in both and "Study: ADUSE" in both            # an on-call address gets both languages
    for message in smtp.all():
        content = message.get_content()
        # No answer, score or contact: not the pain (83, 60), not the answer's wording, not the phone.
        for leak in ("83", "60", "Oui", "Yes", "rougeur", "redness", "12345678", "+336"):
            assert leak not in content, leak
    assert fake_twilio.messages == {} or all(m.to != ON_CALL_MOBILE for m in fake_twilio.messages.values())

    again = worker(alert_app, "w2").alerts()
    assert again["claimed"] == 0 and len(smtp.all()) == 2                 # exactly once
    sent = audit(alert_app, "alert.notification_sent")
    assert len(sent) == 2 and {e.new["recipient_kind"] for e in sent} == {"coordinator", "on_call"}


def test_unacknowledged_alerts_are_escalated_to_the_admins_and_stop_when_acknowledged(alert_app, smtp):
    diary(alert_app, "ADU-TLS-102", infect="Y")
    w = worker(alert_app)
    w.alerts()
    assert len(smtp.all()) == 2
    later(alert_app, hours=3, minutes=59)
    assert w.alerts()["escalated"] == 0
    later(alert_app, minutes=2)                    # four hours after it was raised (same_day)
    report = w.alerts()
    assert (report["escalated"], report["sent"]) == (1, 3)
    [reminder] = smtp.to("admin@chu.test")
    assert reminder["Subject"].startswith("Reminder 1, not acknowledged: [ADUSE] Alert (same day)")
    assert len(smtp.to("tls@chu.test")) == 2 and len(smtp.to(ON_CALL_EMAIL)) == 2
    [escalated] = audit(alert_app, "alert.escalated")
    assert escalated.new["step"] == 1 and escalated.new["unacknowledged_hours"] == 4

    client = alert_app.test_client()
    login(client, "tls@chu.test")
    [alert] = alerts(alert_app)
    page = client.get(f"/staff/alerts/{alert.id}")
    token = csrf(page.text)
    assert "remontée 1 fois" in text(page.text)
    resp = client.post(f"/staff/alerts/{alert.id}", data={"csrf_token": token, "action": "called_patient",
                                                          "note": "Vue aux urgences de la main"})
    assert resp.status_code == 303
    later(alert_app, hours=8)
    assert w.alerts()["escalated"] == 0 and len(smtp.all()) == 5
    [ack] = audit(alert_app, "alert.acknowledged")
    assert ack.actor == "user:tls@chu.test" and ack.new["action"] == "called_patient"
    assert ack.new["minutes_to_acknowledge"] == 4 * 60 + 1


def test_an_urgent_alert_also_goes_by_sms_to_the_on_call_mobile(alert_app, smtp, fake_twilio):
    # A shipped urgent signal (critical ischaemia), raised when saved: the diary is never sent.
    diary(alert_app, "ADU-TLS-103", DU_ISCHAEMIA="Y", submit=False)
    [alert] = alerts(alert_app)
    assert (alert.rule_code, alert.severity, alert.source) == ("DU_ISCHAEMIA", "urgent", "answer_saved")
    assert slots(alert_app) == {}
    alert_app.config["SMS_RATE_PER_SECOND"] = 10          # as deployed (the tests' SMS go unlimited)
    w = worker(alert_app)
    w.alerts()
    assert list(slots(alert_app)) == [w.sender]          # the on-call SMS took its turn in the shared SMS rate
    [sms] = [m for m in fake_twilio.messages.values() if m.to == ON_CALL_MOBILE]
    assert "URGENTE ADUSE/TLS" in sms.body and "ADU-TLS-103" in sms.body and "/staff/alerts/" in sms.body
    assert "Oui" not in sms.body and "DU_ISCHAEMIA" not in sms.body             # the label, not the answer
    assert {n.channel for n in notifications(alert_app)} == {"email", "sms"}
    worker(alert_app, "w2").alerts()
    assert len([m for m in fake_twilio.messages.values() if m.to == ON_CALL_MOBILE]) == 1


def slots(app) -> dict[str, int]:
    from proapp.sms.models import SendSlot

    with app.app_context():
        return dict(db.session().execute(select(SendSlot.sender, SendSlot.next_us)).all())


def test_an_answer_left_in_progress_raises_its_alert_when_the_window_closes(alert_app, smtp):
    diary(alert_app, "ADU-TLS-104", antibio="Y", submit=False)         # a review rule waits for the end
    assert alerts(alert_app) == []
    later(alert_app, days=5)                        # W1's window (3 days after the target day) has closed
    assert worker(alert_app).queue()["missed"] == 1
    [alert] = alerts(alert_app)
    assert (alert.rule_code, alert.source) == ("DU_ANTIBIOTICS", "window_closed")
    worker(alert_app).alerts()
    assert len(smtp.to("tls@chu.test")) == 1
    assert "fenêtre fermée avec des réponses en cours" not in smtp.to("tls@chu.test")[0].get_content()


def test_a_same_day_answer_reaches_the_team_when_saved_and_is_raised_once(alert_app, smtp):
    # The patient reports an infected ulcer, reads "call your team today" and closes the browser: never sent.
    _pid, token = enrol_with_open_window(alert_app, "ADUSE", "W1", subject="ADU-TLS-120")
    p = Patient(alert_app.test_client(), token)
    p.open()
    p.start()
    p.answer(DU_NEW="N")
    p.answer(DU_INFECT="Y")
    assert p.path.startswith("/q/call")
    [alert] = alerts(alert_app)
    assert (alert.rule_code, alert.severity, alert.source) == ("DU_INFECTION", "same_day", "answer_saved")
    worker(alert_app).alerts()
    assert len(smtp.to("tls@chu.test")) == 1 and len(smtp.to(ON_CALL_EMAIL)) == 1
    # Coming back, correcting the answer there and back again, sending, the window closing: still one alert.
    p.get("/q/DU_DIARY.DU_INFECT")
    p.answer(DU_INFECT="N")
    p.get("/q/DU_DIARY.DU_INFECT")
    p.answer(DU_INFECT="Y")
    for values in weekly_screens("20")[2:]:
        if p.path.startswith("/q/call"):
            p.get(re.search(r'class="button" href="([^"]+)"', p.page.text).group(1))
        p.answer(**values)
    p.get("/q/review")
    p.submit()
    later(alert_app, days=5)
    worker(alert_app).queue()
    assert [a.rule_code for a in alerts(alert_app)] == ["DU_INFECTION"]
    worker(alert_app).alerts()                   # (5 days on, the open alert is also escalated: steps 1, 2...)
    assert len([n for n in notifications(alert_app) if n.step == 0]) == 2
    assert len(audit(alert_app, "alert.raised")) == 1


def test_a_rise_from_the_baseline_raises_a_review_alert_without_alarming_the_patient(alert_app):
    from proapp.patients.models import Occurrence
    from proapp.questionnaire.answering import issue_link
    from tests.questionnaire.helpers import Patient, answer_every_screen, enrol_with_open_window

    def week_2(pid: int, pain: str) -> Patient:
        with alert_app.app_context():
            s = db.session()
            w2 = s.scalar(select(Occurrence).where(Occurrence.patient_id == pid, Occurrence.visit_code == "W2"))
            now = alert_app.extensions["proapp.clock"].now()
            if w2.window_opens_at > now:
                later(alert_app, days=(w2.window_opens_at - now).days + 1)
            token = issue_link(s, w2, alert_app.extensions["proapp.clock"].now())
            s.commit()
        p = Patient(alert_app.test_client(), token)
        p.open()
        p.start()
        while 'name="DU_KNOWN_CLOSED"' in p.page.text:            # the ulcer W0 listed: still open
            p.answer(DU_KNOWN_CLOSED="N")
        for values in weekly_screens(pain):
            p.answer(**values)
        assert p.path == "/q/review", p.path
        return p

    # A patient who missed W0 (the visit before the injection): week 1's pain is after the injection, never the
    # baseline; week 2 up 35 from it raises nothing.
    missed, _p = diary(alert_app, "ADU-TLS-106", pain=20)
    week_2(missed, "55").submit()
    assert alerts(alert_app) == []
    # The baseline is W0's pain, answered before the injection.
    at(alert_app, now_utc())
    pid, token = enrol_with_open_window(alert_app, "ADUSE", "W0", subject="ADU-TLS-105")
    p = Patient(alert_app.test_client(), token)
    p.open()
    p.start()
    answer_every_screen(p, vas="20")
    p.submit()
    p = week_2(pid, "55")
    assert not p.path.startswith("/q/call")        # a review rule: the team looks at it, the patient is not alarmed
    done = p.submit()
    assert "Appelez" not in text(done.text)
    [alert] = alerts(alert_app)
    assert (alert.rule_code, alert.severity) == ("PAIN_RISE", "review")
    assert alert.evidence[0] | {} == {"ref": "PAIN_VAS.PAIN", "kind": "score", "value": 55, "compared_with": "baseline",
                                      "reference_visit": "W0", "reference_value": 20, "change": 35}


def test_two_workers_send_each_notification_exactly_once(alert_app, smtp):
    for n in range(4):
        diary(alert_app, f"ADU-TLS-2{n:02d}", infect="Y")
    workers = [worker(alert_app, "w1"), worker(alert_app, "w2")]
    barrier = threading.Barrier(2)
    errors = []

    def run(w):
        try:
            barrier.wait()
            for _ in range(3):
                w.alerts()
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(w,)) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    rows = notifications(alert_app)
    assert len(rows) == 8 and {r.status.value for r in rows} == {"sent"}
    ids = [m["Message-ID"] for m in smtp.all()]
    assert len(ids) == 8 and len(set(ids)) == 8


def test_a_server_that_says_later_is_tried_again_and_a_refused_address_is_recorded(alert_app, smtp):
    smtp.refuse = ["451 4.3.0 Try again later", "550 5.1.1 No such user"]
    diary(alert_app, "ADU-TLS-106", infect="Y")
    w = worker(alert_app)
    report = w.alerts()
    assert (report["retry"], report["failed"], report["sent"]) == (1, 1, 0)
    failed = [n for n in notifications(alert_app) if n.status.value == "failed"]
    assert len(failed) == 1 and "550" in failed[0].error
    assert audit(alert_app, "alert.notification_failed")
    assert w.alerts()["sent"] == 0                  # the retry waits its turn
    later(alert_app, minutes=2)
    assert w.alerts()["sent"] == 1
    assert len(smtp.all()) == 1


# Staff pages -------------------------------------------------------------------------------------------------

def csrf(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def login(client, email: str) -> None:
    from tests.alerts.conftest import PASSWORD

    page = client.get("/staff/login")
    resp = client.post("/staff/login", data={"csrf_token": csrf(page.text), "email": email, "password": PASSWORD})
    assert resp.status_code == 303, resp.text


def test_the_queue_the_patient_banner_and_acknowledging(alert_app):
    pid, _p = diary(alert_app, "ADU-TLS-107", infect="Y", antibio="Y")
    [infection, _antibiotics] = alerts(alert_app)
    client = alert_app.test_client()
    login(client, "tls@chu.test")
    queue = text(client.get("/staff/alerts").text)
    assert "ADU-TLS-107" in queue and "signes d'infection" in queue and "Antibiotiques commencés" in queue
    assert queue.index("signes d'infection") < queue.index("Antibiotiques")       # same day before review
    overview = text(client.get("/staff/").text)
    assert "2 alertes ouvertes" in overview
    listed = text(client.get("/staff/patients?flag=open_alert").text)
    assert "ADU-TLS-107" in listed and "Alerte ouverte" in listed
    banner = text(client.get(f"/staff/patients/{pid}").text)
    assert "2 alertes ouvertes" in banner
    page = client.get(f"/staff/alerts/{infection.id}")
    assert "de NOUVEAUX signes d'infection" in text(page.text) and "Oui" in text(page.text)

    token = csrf(page.text)
    missing = client.post(f"/staff/alerts/{infection.id}", data={"csrf_token": token, "note": "x"})
    assert missing.status_code == 422 and "Indiquez ce qui a été fait." in text(missing.text)
    no_reason = client.post(f"/staff/alerts/{infection.id}", data={"csrf_token": token, "action": "no_action"})
    assert no_reason.status_code == 422 and "pourquoi aucune action" in text(no_reason.text)
    ok = client.post(f"/staff/alerts/{infection.id}", data={"csrf_token": token, "action": "referred",
                                                             "note": "Adressée au médecin traitant"})
    assert ok.status_code == 303
    twice = client.post(f"/staff/alerts/{infection.id}", data={"csrf_token": token, "action": "referred"})
    assert twice.status_code == 422 and "déjà été acquittée" in text(twice.text)
    done = text(client.get("/staff/alerts?state=acknowledged").text)
    assert "Orienté vers un médecin" in done and "ADU-TLS-107" in done
    assert "1 alerte ouverte" in text(client.get("/staff/").text)


def test_other_sites_do_not_see_an_alert_and_monitors_cannot_acknowledge_it(alert_app):
    diary(alert_app, "ADU-TLS-108", infect="Y")
    [alert] = alerts(alert_app)
    other = alert_app.test_client()
    login(other, "psl@chu.test")
    assert "ADU-TLS-108" not in other.get("/staff/alerts").text
    assert other.get(f"/staff/alerts/{alert.id}").status_code == 404
    monitor = alert_app.test_client()
    login(monitor, "monitor@cro.test")
    page = monitor.get(f"/staff/alerts/{alert.id}")
    assert page.status_code == 200 and "Acknowledge the alert" not in page.text
    refused = monitor.post(f"/staff/alerts/{alert.id}", data={"csrf_token": csrf(page.text), "action": "referred"})
    assert refused.status_code == 403
    assert alerts(alert_app)[0].state.value == "open"


def test_the_patient_sees_whom_to_call_after_the_answer_at_the_end_and_on_reopening(alert_app):
    _pid, patient = diary(alert_app, "ADU-TLS-109", infect="Y", language="en")
    done = text(patient.page.text)
    assert "Please call your study team today" in done
    assert "You told us that new signs of infection have appeared around a finger ulcer." in done
    assert "Signs of infection of a finger ulcer" not in done                 # the team's wording stays theirs
    assert 'href="tel:+33199000101"' in patient.page.text and "15 or 112" in done
    again = patient.client.get(f"/s/{patient.token}", follow_redirects=True)
    assert "already completed" in text(again.text) and 'href="tel:+33199000101"' in again.text


@pytest.mark.parametrize("language, words", [("fr", "ne sont pas lues au moment"), ("en", "not read as you send")])
def test_the_welcome_page_says_answers_are_not_read_in_real_time(alert_app, language, words):
    from tests.questionnaire.helpers import Patient, enrol_with_open_window

    _pid, token = enrol_with_open_window(alert_app, "ADUSE", "W1", subject=f"ADU-TLS-5{ord(language[0]) % 100:02d}",
                                         language=language)
    p = Patient(alert_app.test_client(), token)
    p.open()
    assert words in text(p.page.text)


def test_alerts_list_command(alert_app):
    diary(alert_app, "ADU-TLS-110", infect="Y")
    out = alert_app.test_cli_runner().invoke(args=["proapp", "alerts", "list", "--open", "--study", "ADUSE"])
    assert out.exit_code == 0
    [line] = out.output.strip().splitlines()
    fields = line.split("\t")
    assert fields[:7] == ["ADUSE", "TLS", "ADU-TLS-110", "W1", "DU_INFECTION", "same_day", "open"]
    none = alert_app.test_cli_runner().invoke(args=["proapp", "alerts", "list", "--site", "PSL"])
    assert none.exit_code == 0 and "no alert" in none.output


def test_withdrawing_a_patient_keeps_the_alert_of_answers_in_progress(alert_app):
    pid, _p = diary(alert_app, "ADU-TLS-111", antibio="Y", submit=False)
    client = alert_app.test_client()
    login(client, "tls@chu.test")
    page = client.get(f"/staff/patients/{pid}")
    resp = client.post(f"/staff/patients/{pid}/actions/withdraw",
                       data={"csrf_token": csrf(page.text), "reason": "consent withdrawn",
                             "signature_password": "correct horse battery"})
    assert resp.status_code == 303
    [alert] = alerts(alert_app)
    assert (alert.rule_code, alert.source) == ("DU_ANTIBIOTICS", "withdrawn")
    assert "retiré de l'étude avec des réponses en cours" in text(client.get(f"/staff/alerts/{alert.id}").text)


def test_the_diary_complications_map_to_their_rules(alert_app):
    diary(alert_app, "ADU-TLS-111", DU_NECROSIS="Y", DU_HARVEST="Y")
    found = {(a.rule_code, a.severity) for a in alerts(alert_app)}
    assert found == {("DU_NECROSIS", "urgent"), ("DU_HARVEST_SITE", "review")}
    diary(alert_app, "ADU-TLS-112", DU_HOSPITAL="Y", DU_SURGERY="Y", DU_INJECTED="Y", DU_INJ_REACTION="2")
    new = {(a.rule_code, a.severity) for a in alerts(alert_app)} - found
    assert new == {("DU_HOSPITAL", "same_day"), ("DU_SURGERY", "same_day"), ("DU_INJECTED_FINGER", "review")}
    found |= new
    pid, p = diary(alert_app, "ADU-TLS-113", DU_ISCHAEMIA="Y", DU_BONE="Y", DU_AMPUTATION="Y", DU_INJECTED="Y",
                   DU_INJ_REACTION="3", language="en", submit=False)
    new = {(a.rule_code, a.severity, a.source) for a in alerts(alert_app) if a.patient_id == pid}
    # Each raised as its answer was saved; a severe reaction at the injected finger is one alert, not two.
    assert new == {("DU_ISCHAEMIA", "urgent", "answer_saved"), ("DU_BONE", "same_day", "answer_saved"),
                   ("DU_AMPUTATION", "same_day", "answer_saved"),
                   ("DU_INJECTION_REACTION", "same_day", "answer_saved")}
    p.submit()
    assert "DU_INJECTED_FINGER" not in {a.rule_code for a in alerts(alert_app) if a.patient_id == pid}
    done = text(p.page.text)
    assert "Please call your study team now" in done
    assert "You told us that a finger is white or blue and cold" in done
    assert "You told us that you have lost part of a finger." in done


def test_an_answer_that_rules_nothing_out_raises_nothing(alert_app):
    diary(alert_app, "ADU-TLS-114", DU_INJECTED="Y", DU_INJ_REACTION="1")
    assert {a.rule_code for a in alerts(alert_app)} == {"DU_INJECTED_FINGER"}      # a mild reaction: review only


def imatinib_visit(app, pid: int | None, subject: str, first_visit: str = "M0",
                   **tolerance: str) -> tuple[int, list[str]]:
    """An IMATINIB-SSC visit through the patient's pages: M0 for a new patient (``pid`` None), else M1 thirty days
    later. Returns the patient and the "call your team" pages met."""
    if pid is None:
        pid, token = enrol_with_open_window(app, "IMATINIB-SSC", first_visit, subject=subject, language="en")
    else:
        now = later(app, days=30)
        with app.app_context():
            s = db.session()
            token = issue_link(s, open_occurrence_for(s, s.get(PatientRow, pid), now, "M1"), now)
            s.commit()
    p = Patient(app.test_client(), token)
    p.open()
    p.start()
    answer_dlqi(p, DLQI_EN)
    answer_haq(p)
    calls = answer_tolerance(p, grade="0", **tolerance)
    p.get("/q/review")
    p.submit()
    return pid, calls


def test_side_effects_are_compared_with_the_patients_own_checklist_before_treatment(alert_app):
    # Very tired before the first dose (common in early diffuse SSc): nothing at M0, nothing when it stays so.
    pid, calls = imatinib_visit(alert_app, None, "IMA-TLS-301", TOL_FATIGUE="3", TOL_FATIGUE_INT="3")
    assert alerts(alert_app) == [] and calls == []
    _pid, calls = imatinib_visit(alert_app, pid, "IMA-TLS-301", TOL_FATIGUE="3", TOL_FATIGUE_INT="3",
                                 TOL_NAUSEA="3")
    [alert] = alerts(alert_app)
    assert (alert.rule_code, alert.severity, alert.source) == ("TOL_SEVERE", "review", "completed")
    assert {e["ref"] for e in alert.evidence} == {"TOLERANCE.TOL_NAUSEA"}
    assert calls == []                                                  # a review rule alarms nobody


def test_without_a_checklist_before_treatment_a_severe_grade_still_reaches_the_team(alert_app):
    # M0 missed: a severe grade at M1 has nothing to be compared with; it is alerted for review, saying so.
    _pid, calls = imatinib_visit(alert_app, None, "IMA-TLS-303", first_visit="M1", TOL_NAUSEA="3")
    [alert] = alerts(alert_app)
    assert (alert.rule_code, alert.severity) == ("TOL_SEVERE", "review") and calls == []
    [evidence] = [e for e in alert.evidence if "compared_with" in e]
    assert evidence["reference_visit"] is None and evidence["ref"] == "TOLERANCE.TOL_NAUSEA"
    staff = alert_app.test_client()
    login(staff, "admin@chu.test")
    page = staff.get(f"/staff/alerts/{alert.id}")
    assert page.status_code == 200 and "no reference answer to compare with" in text(page.text)


def test_the_checklist_before_the_first_dose_is_worded_for_it(alert_app):
    """M0 (the study file's visit before treatment) asks about the patient's symptoms, not the treatment's effects;
    the response records that wording; M1 asks about side effects."""
    from proapp.patients.models import Occurrence
    from proapp.questionnaire.models import Response

    for visit, title, instructions in (
            ("M0", "Your symptoms before treatment", "symptoms you may have before you start the study treatment"),
            ("M1", "Treatment side effects", "problems some people have with their treatment")):
        pid, token = enrol_with_open_window(alert_app, "IMATINIB-SSC", visit, subject=f"IMA-TLS-39{visit[-1]}",
                                            language="en")
        p = Patient(alert_app.test_client(), token)
        p.open()
        assert title in text(p.page.text)                                     # the welcome page's list
        p.start()
        answer_dlqi(p, DLQI_EN)
        answer_haq(p)
        page = text(p.page.text)
        assert p.screen_key.startswith("TOLERANCE.") and title in page and instructions in page
        other = "Treatment side effects" if visit == "M0" else "Your symptoms before treatment"
        assert other not in page
        answer_tolerance(p)
        p.get("/q/review")
        assert title in text(p.page.text)
        p.submit()
        with alert_app.app_context():
            state = db.session().scalars(select(Response.flow_state).join(Response.occurrence)
                                         .where(Response.instrument_code == "TOLERANCE",
                                                Occurrence.patient_id == pid)).one()
        assert (state or {}).get("worded_for") == ("before_treatment" if visit == "M0" else None)


def test_a_very_severe_side_effect_is_one_same_day_alert_and_breathlessness_is_urgent_at_any_visit(alert_app):
    pid, calls = imatinib_visit(alert_app, None, "IMA-TLS-302", TOL_DYSPNOEA="4")
    [urgent] = alerts(alert_app)
    assert (urgent.rule_code, urgent.severity, urgent.source) == (
        "TOL_BREATHLESS_VERY_SEVERE", "urgent", "answer_saved")         # dangerous in itself, even before treatment
    [call] = calls
    assert "Please call your study team now" in call
    assert "You told us that your shortness of breath is very severe." in call
    assert "15 or 112" in call and "text message to 114" in call and "116 117" in call
    _pid, calls = imatinib_visit(alert_app, pid, "IMA-TLS-302", TOL_NAUSEA="4")
    new = [a for a in alerts(alert_app) if a.id != urgent.id]
    # One answer, one alert: the same-day one, not also the review one.
    assert [(a.rule_code, a.severity, a.source) for a in new] == [
        ("TOL_VERY_SEVERE_NAUSEA", "same_day", "answer_saved")]
    [call] = calls
    assert "You told us that your nausea has become very severe or almost constant." in call
    assert "Un effet indésirable" not in call and "(4)" not in call
