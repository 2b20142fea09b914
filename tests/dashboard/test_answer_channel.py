"""How a patient answers (issue 36): the team chooses the web link, a voice call (with a PIN typed with the patient)
or SMS replies (with the patient's agreement) at enrolment and later on the patient's page; the patient switches
from the thank-you page; the staff pages show how each answer was given and the conversations."""

from __future__ import annotations

import re
from datetime import timedelta

from sqlalchemy import select
from werkzeug.security import check_password_hash

from proapp import db
from proapp.audit.models import AuditEvent
from proapp.patients.models import Agreement, Patient, PatientContact, PatientEvent
from proapp.questionnaire.models import Response
from proapp.remote.models import Conversation
from tests.dashboard.conftest import NOW, Staff, enrol, link_for, text_of
from tests.export.remote import answer_remotely
from tests.questionnaire.helpers import Patient as PatientBrowser
from tests.questionnaire.helpers import csrf

ENROL = {"study_site": "ADUSE/TLS", "subject_id": "ADU-TLS-050", "phone": "06 12 34 56 78", "language": "fr",
         "anchor_date": "2026-03-02", "timezone": "", "sms_hour": "18", "agreed_on": "2026-03-01"}


def _patient(app, subject: str) -> tuple[Patient, PatientContact]:
    with app.app_context():
        s = db.session()
        p = s.scalar(select(Patient).where(Patient.subject_id == subject))
        return p, s.get(PatientContact, p.id) if p else None


def _audit_text(app) -> str:
    with app.app_context():
        return " ".join(f"{e.old} {e.new}" for e in db.session().scalars(select(AuditEvent)))


def test_the_channel_is_chosen_at_enrolment_a_bad_pin_refused_with_a_clear_message(dash_app):
    staff = Staff(dash_app, "admin")
    form = text_of(staff.get("/staff/patients/new"))
    assert "How the patient answers" in form and "Voice call" in form and "SMS replies" in form
    # Which visits go by that channel: ADUSE's weekly diaries; W0 and W16Q stay on the web link
    assert "ADUSE: By this channel: W1, W2," in form and "By web link: W0, W16Q" in form

    for pin, message in (("", "Type the PIN the patient chose (4 to 6 digits)"),
                         ("12", "The PIN must be 4 to 6 digits, nothing else."),
                         ("12345678", "The PIN must be 4 to 6 digits, nothing else."),
                         ("4O71", "The PIN must be 4 to 6 digits, nothing else."),
                         ("2222", "This PIN is too easy to guess"), ("3456", "This PIN is too easy to guess")):
        resp = staff.post("/staff/patients/new", {**ENROL, "answer_channel": "voice", "voice_pin": pin})
        assert resp.status_code == 422, pin
        page = resp.get_data(as_text=True)
        assert message in text_of(resp) and 'id="voice_pin-error"' in page, pin
        field = re.search(r'<input id="voice_pin"[^>]*>', page).group(0)
        assert 'type="password"' in field and 'value=""' in field             # the PIN is never written back
        assert _patient(dash_app, "ADU-TLS-050")[0] is None
    refused = staff.post("/staff/patients/new", {**ENROL, "answer_channel": "sms"})
    assert refused.status_code == 422 and "Tick the box once the patient agrees" in text_of(refused)
    other = staff.post("/staff/patients/new", {**ENROL, "study_site": "IMATINIB-SSC/PSL", "subject_id": "IMA-PSL-050",
                                               "answer_channel": "voice", "voice_pin": "4071"})
    assert other.status_code == 422 and "cannot be answered this way" in text_of(other)

    done = staff.post("/staff/patients/new", {**ENROL, "answer_channel": "voice", "voice_pin": "4071"})
    assert done.status_code == 303
    page = staff.get(done.headers["Location"]).get_data(as_text=True)
    assert "Answers by Voice call" in text_of(staff.get(done.headers["Location"]))
    assert "voice call PIN set" in page and "4071" not in page
    p, contact = _patient(dash_app, "ADU-TLS-050")
    assert p.answer_channel == "voice" and contact.voice_pin_hash.startswith("scrypt:")
    assert check_password_hash(contact.voice_pin_hash, "4071") and not check_password_hash(contact.voice_pin_hash,
                                                                                           "4072")
    audit = _audit_text(dash_app)
    assert "'answer_channel': 'voice'" in audit and "4071" not in audit and contact.voice_pin_hash not in audit

    sms = staff.post("/staff/patients/new", {**ENROL, "subject_id": "ADU-TLS-051", "answer_channel": "sms",
                                             "sms_agreed": "yes"})
    assert sms.status_code == 303
    p, contact = _patient(dash_app, "ADU-TLS-051")
    assert p.answer_channel == "sms" and contact.voice_pin_hash is None
    with dash_app.app_context():
        kinds = [a.kind for a in db.session().scalars(select(Agreement).where(Agreement.patient_id == p.id))]
    assert kinds == ["agreement", "sms_answers"]
    assert "questions and answers by SMS: agreed on" in text_of(staff.get(sms.headers["Location"]))


def test_the_team_changes_the_channel_and_the_pin_on_the_patient_page(dash_app):
    pid = enrol(dash_app, "ADU-TLS-001", study="ADUSE", site="TLS", days_ago=8)
    staff = Staff(dash_app, "admin")
    url, act = f"/staff/patients/{pid}", f"/staff/patients/{pid}/actions/"
    page = text_of(staff.get(url))
    assert "Answers by Web link by SMS" in page and "Change how the patient answers" in page
    assert "By this channel: W1, W2," in page and "By web link: W0, W16Q" in page
    assert "Change the voice call PIN" not in page                      # no PIN yet

    for data, message in (({"channel": "voice", "reason": "hands"}, "Type the PIN the patient chose"),
                          ({"channel": "voice", "pin": "12a4", "reason": "hands"}, "4 to 6 digits, nothing else"),
                          ({"channel": "voice", "pin": "9876", "reason": "hands"}, "too easy to guess"),
                          ({"channel": "voice", "pin": "7391"}, "Give the reason for this change."),
                          ({"channel": "fax", "reason": "hands"}, "Choose how the patient answers"),
                          ({"channel": "sms", "reason": "hands"}, "Tick the box once the patient agrees"),
                          ({"channel": "web", "reason": "hands"}, "This is already how the patient answers.")):
        resp = staff.post(act + "channel", data)
        assert resp.status_code == 422 and message in text_of(resp), (data, text_of(resp)[:300])
        assert 'id="error-channel" role="alert"' in resp.get_data(as_text=True)
        assert "7391" not in resp.get_data(as_text=True)                 # a PIN is never written back
    assert _patient(dash_app, "ADU-TLS-001")[0].answer_channel == "web"

    assert staff.post(act + "channel", {"channel": "voice", "pin": "7391",
                                        "reason": "painful fingers"}).status_code == 303
    p, contact = _patient(dash_app, "ADU-TLS-001")
    assert p.answer_channel == "voice" and check_password_hash(contact.voice_pin_hash, "7391")
    page = text_of(staff.get(url))
    assert "Answers by Voice call" in page and "Change the voice call PIN" in page and "7391" not in page
    assert "Voice call PIN set" in page and "Answer channel changed" in page

    bad = staff.post(act + "pin", {"pin": "111111", "reason": "forgotten"})
    assert bad.status_code == 422 and "too easy to guess" in text_of(bad)
    assert staff.post(act + "pin", {"pin": "826413", "reason": "forgotten"}).status_code == 303
    contact = _patient(dash_app, "ADU-TLS-001")[1]
    assert check_password_hash(contact.voice_pin_hash, "826413") and not check_password_hash(
        contact.voice_pin_hash, "7391")
    # Back to voice without a PIN typed keeps the patient's PIN
    assert staff.post(act + "channel", {"channel": "sms", "sms_agreed": "yes", "reason": "prefers"}).status_code == 303
    assert staff.post(act + "channel", {"channel": "voice", "reason": "prefers"}).status_code == 303
    assert check_password_hash(_patient(dash_app, "ADU-TLS-001")[1].voice_pin_hash, "826413")
    with dash_app.app_context():
        events = [(e.action, e.reason, e.details) for e in db.session().scalars(
            select(PatientEvent).where(PatientEvent.patient_id == pid).order_by(PatientEvent.id))]
        kinds = [a.kind for a in db.session().scalars(select(Agreement).where(Agreement.patient_id == pid))]
    assert events == [("voice_pin_set", "painful fingers", None),
                      ("answer_channel_changed", "painful fingers", {"old": "web", "new": "voice"}),
                      ("voice_pin_changed", "forgotten", None),
                      ("answer_channel_changed", "prefers", {"old": "voice", "new": "sms"}),
                      ("answer_channel_changed", "prefers", {"old": "sms", "new": "voice"})]
    assert kinds == ["agreement", "sms_answers"]
    audit = _audit_text(dash_app)
    assert "7391" not in audit and "826413" not in audit and "scrypt" not in audit

    # A study that allows no visit by voice or SMS: the web link only, no form to change it
    ima = enrol(dash_app, "IMA-PSL-001")
    page = staff.get(f"/staff/patients/{ima}").get_data(as_text=True)
    assert 'name="channel"' not in page and "Answers by Web link by SMS" in text_of(staff.get(f"/staff/patients/{ima}"))
    refused = staff.post(f"/staff/patients/{ima}/actions/channel", {"channel": "voice", "pin": "4071",
                                                                     "reason": "hands"})
    assert refused.status_code == 422 and "cannot be answered this way" in text_of(refused)


def test_the_patient_switches_from_the_thank_you_page_in_french_without_javascript(dash_app):
    pid = enrol(dash_app, "ADU-TLS-002", study="ADUSE", site="TLS", days_ago=8)     # French, W1 open
    client = dash_app.test_client()
    p = PatientBrowser(client, link_for(dash_app, pid, "W1"))
    p.open()
    p.start()
    p.diary(pain="20")
    thanks = p.submit()
    html = thanks.get_data(as_text=True)
    # No PIN was set with the team: no phone call offered; SMS replies are
    assert "La prochaine fois, répondre par SMS" in html and "répondre par appel téléphonique" not in html
    assert "en choisissant ceci, vous l'acceptez" in html
    assert "<script" not in html.split("<main", 1)[1] and 'action="/q/channel"' in html     # plain forms
    refused = client.post("/q/channel", data={"csrf_token": csrf(html), "channel": "voice"})
    assert refused.status_code == 422 and "Ce choix ne vous est pas proposé" in refused.get_data(as_text=True)
    done = client.post("/q/channel", data={"csrf_token": csrf(html), "channel": "sms"})
    assert done.status_code == 200
    page = done.get_data(as_text=True)
    assert "nous vous enverrons les questions par SMS" in page and 'role="status"' in page
    assert "Vous répondez par SMS." in page and "La prochaine fois, répondre sur la page web" in page
    with dash_app.app_context():
        s = db.session()
        assert s.get(Patient, pid).answer_channel == "sms"
        agreement = s.scalar(select(Agreement).where(Agreement.patient_id == pid, Agreement.kind == "sms_answers"))
        assert agreement.recorded_by.startswith("patient:link:")
        event = s.scalar(select(PatientEvent).where(PatientEvent.patient_id == pid,
                                                    PatientEvent.action == "answer_channel_changed"))
        assert event.actor.startswith("patient:link:") and event.details == {"old": "web", "new": "sms"}
    # The team sees it, by the patient
    staff = text_of(Staff(dash_app, "admin").get(f"/staff/patients/{pid}"))
    assert "Answers by SMS replies" in staff and "Answer channel changed" in staff and "The patient" in staff

    # With a PIN the team set, the phone call is offered too
    admin = Staff(dash_app, "admin")
    assert admin.post(f"/staff/patients/{pid}/actions/pin", {"pin": "5820", "reason": "asked"}).status_code == 303
    offer = client.get("/q/channel").get_data(as_text=True)
    assert "La prochaine fois, répondre par appel téléphonique" in offer and "Nous vous appelons à 10:00" in offer
    assert client.post("/q/channel", data={"csrf_token": csrf(offer), "channel": "voice"}).status_code == 200
    assert _patient(dash_app, "ADU-TLS-002")[0].answer_channel == "voice"
    assert "Nous vous appellerons (ou vous enverrons un SMS avec un lien)" in client.get("/q/done").get_data(
        as_text=True)                                                   # the thank-you page says what comes next


def test_staff_pages_show_how_each_answer_was_given_and_the_conversations(dash_app):
    pid = enrol(dash_app, "ADU-TLS-003", study="ADUSE", site="TLS", days_ago=8)
    ids = answer_remotely(dash_app, link_for(dash_app, pid, "W1"), {"DU_NEW": "sms", "PAIN_NRS": "voice_speech"},
                          now=NOW)
    with dash_app.app_context():
        s = db.session()
        occ_id = s.get(Response, ids[0]).occurrence_id
        s.add(Conversation(occurrence_id=occ_id, patient_id=pid, channel="voice", status="completed", language="fr",
                           started_at=NOW - timedelta(minutes=5), last_activity_at=NOW, ended_at=NOW))
        s.add(Conversation(occurrence_id=occ_id, patient_id=pid, channel="sms", status="timed_out", language="fr",
                           started_at=NOW - timedelta(hours=2), last_activity_at=NOW - timedelta(hours=1),
                           ended_at=NOW - timedelta(hours=1)))
        s.commit()
    staff = Staff(dash_app, "admin")
    page = staff.get(f"/staff/patients/{pid}").get_data(as_text=True)
    text = text_of(staff.get(f"/staff/patients/{pid}"))
    assert "Voice calls and SMS conversations" in text
    rows = page.split('id="conversations"', 1)[1].split("</table>", 1)[0]
    assert "Voice call" in rows and "Completed" in rows and "No reply: web link sent" in rows and "W1" in rows
    assert "(by SMS reply, by phone, keypad)" in text and "(by phone, spoken)" in text

    diary = text_of(staff.get(f"/staff/patients/{pid}/responses/{ids[0]}"))
    assert "remote wording 2.3-R1" in diary
    assert "by SMS reply" in diary and "by phone, keypad" in diary
    nrs = text_of(staff.get(f"/staff/patients/{pid}/responses/{ids[1]}"))
    assert "by phone, spoken" in nrs and "remote wording 1.0-R1" in nrs

    # In French
    with dash_app.app_context():
        from proapp.accounts.models import User

        s = db.session()
        s.scalar(select(User).where(User.email == "admin@chu.test")).language = "fr"
        s.commit()
    fr = Staff(dash_app, "admin")
    page = text_of(fr.get(f"/staff/patients/{pid}"))
    assert "Appels vocaux et échanges par SMS" in page and "Pas de réponse : lien web envoyé" in page
    assert "par réponse SMS" in page and "Répond par" in page
    assert "par téléphone, à voix haute" in text_of(fr.get(f"/staff/patients/{pid}/responses/{ids[1]}"))
