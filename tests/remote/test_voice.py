"""Voice calls end to end: the worker places the call through the real twilio SDK against the fake Twilio, which
plays the phone by posting Twilio's signed webhooks to the app (the Flask test client, PUBLIC_URL set so that the
signatures match)."""

from __future__ import annotations

from sqlalchemy import select

from proapp import db
from proapp.audit.models import AuditEvent as AuditEntry
from proapp.models import Alert, Occurrence, OccurrenceStatus, Patient, PatientStatus
from proapp.remote.models import Conversation
from proapp.sms.models import SmsStatus
from tests.remote import voice_helpers as vh
from tests.remote.voice_helpers import PIN, answer_the_questions, answers_of, local, place_call, voice_patient
from tests.sms.conftest import at, outbox

fake_twilio, voice_app, worker = vh.fake_twilio, vh.voice_app, vh.worker

def conversation(app, pid: int) -> Conversation:
    with app.app_context():
        return db.session().scalars(select(Conversation).where(Conversation.patient_id == pid)).one()


def audit_actions(app, pid: int) -> list[tuple[str, dict]]:
    with app.app_context():
        rows = db.session().execute(select(AuditEntry.action, AuditEntry.new)
                                    .where(AuditEntry.patient_id == pid, AuditEntry.action.like("voice.%"))
                                    .order_by(AuditEntry.id)).all()
    return [(a, n) for a, n in rows]


def w1(app, pid: int) -> Occurrence:
    with app.app_context():
        return db.session().scalars(select(Occurrence).where(Occurrence.patient_id == pid,
                                                             Occurrence.visit_code == "W1")).one()


def test_a_weekly_diary_answered_by_a_call_is_stored_with_its_modes(voice_app, worker, fake_twilio):
    pid = voice_patient(voice_app)
    call = place_call(voice_app, worker, fake_twilio)
    assert call.call.to == "+33612345678" and call.call.sender == "+33900000001"
    assert call.call.machine_detection == "Enable"
    call.pick_up()
    assert call.last == ("Hello, this is SuiviPRO for your questionnaire. "
                         "Please enter your PIN, followed by the hash key.")
    call.press(PIN + "#")
    assert "Finger ulcer diary" in call.last and "For Yes, press 1. For No, press 2." in call.last
    call.speak("yes", confidence=0.93)                            # the first answer spoken
    assert "Which hand?" in call.last
    answer_the_questions(call)
    assert call.ended and call.said[-1] == "Your questionnaire is complete. Thank you, goodbye."
    # Read back before being stored: the diary, then the pain rating.
    readbacks = [t for t in call.turns if t and t[0] == "You answered:"]
    assert len(readbacks) == 2
    assert "New ulcer 1. Which finger? Middle finger." in readbacks[0]
    assert readbacks[0][-2] == "No to the other questions."
    stored = answers_of(voice_app, pid)
    assert stored[("DU_DIARY", "DU_NEW", 0)] == ("Y", "voice_speech")
    assert stored[("DU_DIARY", "DU_HAND", 1)] == ("L", "voice_dtmf")
    assert stored[("PAIN_NRS", "PAIN_NRS", 0)] == ("6", "voice_dtmf")
    assert {mode for _value, mode in stored.values()} == {"voice_dtmf", "voice_speech"}
    assert w1(voice_app, pid).status == OccurrenceStatus.COMPLETED
    [row] = [r for r in outbox(voice_app, pid) if r.visit_code == "W1"]
    assert (row.kind, row.status, row.provider_sid) == ("invitation", SmsStatus.DELIVERED, call.call.sid)
    assert conversation(voice_app, pid).status == "completed"
    events = audit_actions(voice_app, pid)
    assert [a for a, _ in events] == ["voice.answered", "voice.identified", "voice.confirmed", "voice.confirmed",
                                      "voice.completed"]
    assert all(n["call_sid"] == call.call.sid for _, n in events)
    # No reminder call follows a completed visit.
    at(voice_app, local(2026, 3, 25, 10))
    worker.tick()
    assert len(fake_twilio.calls) == 1


def test_a_dropped_call_keeps_what_was_heard_and_the_next_call_resumes(voice_app, worker, fake_twilio):
    pid = voice_patient(voice_app)
    call = place_call(voice_app, worker, fake_twilio)
    call.pick_up().press(PIN + "#")
    assert answer_the_questions(call, stop_after=4) == 4        # DU_NEW, hand, finger, site
    call.hang_up()
    assert answers_of(voice_app, pid) == {}                       # held, not confirmed: nothing stored
    conv = conversation(voice_app, pid)
    assert conv.status == "open" and len(conv.state["held"]) == 4
    assert audit_actions(voice_app, pid)[-1][0] == "voice.dropped"
    [row] = [r for r in outbox(voice_app, pid) if r.visit_code == "W1"]
    assert row.status == SmsStatus.DELIVERED                      # answered: the reminder calls again
    again = place_call(voice_app, worker, fake_twilio, local(2026, 3, 25, 10))
    again.pick_up().press(PIN + "#")
    assert again.last.startswith("Thank you. We continue where we stopped. New ulcer 1. How many days ago")
    answer_the_questions(again)
    assert w1(voice_app, pid).status == OccurrenceStatus.COMPLETED
    stored = answers_of(voice_app, pid)
    assert stored[("DU_DIARY", "DU_FINGER", 1)] == ("3", "voice_dtmf")
    assert conversation(voice_app, pid).provider_ref == again.call.sid


def test_a_wrong_key_is_asked_again_and_star_repeats(voice_app, worker, fake_twilio):
    pid = voice_patient(voice_app)
    call = place_call(voice_app, worker, fake_twilio)
    call.pick_up().press(PIN + "#")
    question = call.turns[-1][-4]
    call.press("7")
    assert call.turns[-1][0] == "Sorry, I did not understand." and question in call.last
    call.press("*")
    assert question in call.last and "Sorry" not in call.last
    call.press("2")
    assert "signs of infection" in call.last
    call.press("9")
    call.speak("banana", confidence=0.9)
    call.press("#")                                               # a third unreadable reply: the link by SMS
    assert call.ended and "link by SMS" in call.said[-1]
    kinds = [r.kind for r in outbox(voice_app, pid) if r.visit_code == "W1"]
    assert kinds == ["invitation", "link_after_call"]
    at(voice_app, local(2026, 3, 23, 10, 1))
    worker.tick()
    [sms] = fake_twilio.messages.values()
    assert "/s/" in sms.body                                     # the patient can answer on the web page


def test_speech_heard_with_low_confidence_is_checked_first(voice_app, worker, fake_twilio):
    pid = voice_patient(voice_app, language="fr", subject="ADU-TLS-502")
    call = place_call(voice_app, worker, fake_twilio)
    call.pick_up()
    assert call.last.startswith("Bonjour, ici SuiviPRO pour votre questionnaire.")
    call.press(PIN + "#")
    assert call.gathering.attributes["language"] == "fr-FR" and call.gathering.attributes["input"] == "dtmf speech"
    assert call.gathering.attributes["hints"] == "Oui, Non"
    call.speak("non", confidence=0.41)
    assert call.last == "Avez-vous dit : Non ? Appuyez sur 1 pour oui, 2 pour non."
    call.press("2")                                               # not what was said: the question again
    assert "nouvel ulcère" in call.last
    call.speak("non", confidence=0.3)
    call.speak("oui", confidence=0.9)                             # "yes, that is what I said"
    assert "infection" in call.last
    answer_the_questions(call)
    assert answers_of(voice_app, pid)[("DU_DIARY", "DU_NEW", 0)] == ("N", "voice_speech")


def test_a_voicemail_gets_a_neutral_message_and_nothing_is_stored(voice_app, worker, fake_twilio):
    pid = voice_patient(voice_app)
    call = place_call(voice_app, worker, fake_twilio)
    call.pick_up(answered_by="machine_end_beep")
    assert call.said == ["This is SuiviPRO for your questionnaire. We will call again; you can also answer on the "
                         "link we send by SMS."]
    assert call.ended
    assert answers_of(voice_app, pid) == {}
    with voice_app.app_context():
        assert db.session().scalars(select(Conversation)).all() == []
    [row] = [r for r in outbox(voice_app, pid) if r.visit_code == "W1"]
    assert row.status == SmsStatus.UNDELIVERED                    # nobody answered: the reminder calls again
    assert audit_actions(voice_app, pid)[0][0] == "voice.machine"
    # Not the last call of the visit: no SMS yet. The reminder day places the next call.
    assert fake_twilio.messages == {}
    place_call(voice_app, worker, fake_twilio, local(2026, 3, 25, 10))


def test_a_voicemail_is_not_delivered_even_when_the_calls_end_omits_answered_by(voice_app, worker, fake_twilio):
    pid = voice_patient(voice_app)
    call = place_call(voice_app, worker, fake_twilio)
    call.amd_in_status_callback = False
    call.pick_up(answered_by="machine_start")
    assert call.ended
    [row] = [r for r in outbox(voice_app, pid) if r.visit_code == "W1"]
    assert (row.status, row.provider_sid) == (SmsStatus.UNDELIVERED, call.call.sid)


def test_an_unsigned_or_wrongly_signed_webhook_is_refused(voice_app, worker, fake_twilio):
    pid = voice_patient(voice_app)
    call = place_call(voice_app, worker, fake_twilio)
    resp = call.post(call.call.url, {"CallStatus": "in-progress", "AnsweredBy": "human"}, signature="forged")
    assert resp.status_code == 403
    resp = call.client.post(call.call.url[len(vh.PUBLIC_URL):], data={"CallSid": call.call.sid})
    assert resp.status_code == 403
    call.pick_up().press(PIN + "#")
    step = call.gathering.action
    assert call.post(step, {"Digits": "1"}, signature="forged").status_code == 403
    assert call.post(call.call.status_callback, {"CallStatus": "completed"}, signature="x").status_code == 403
    assert answers_of(voice_app, pid) == {}
    assert conversation(voice_app, pid).state["held"] == []
    [row] = [r for r in outbox(voice_app, pid) if r.visit_code == "W1"]
    assert row.status == SmsStatus.ACCEPTED


def test_three_wrong_pins_end_the_call_politely(voice_app, worker, fake_twilio):
    pid = voice_patient(voice_app)
    call = place_call(voice_app, worker, fake_twilio)
    call.pick_up().press("1111#")
    assert call.last == "This PIN is not right. Please enter your PIN, followed by the hash key."
    call.press("2222#").press("#")
    assert call.ended and call.said[-1].startswith("Sorry, we could not check your PIN.")
    assert not any("ulcer" in s for s in call.said)                 # nothing of the study to whoever answered
    assert answers_of(voice_app, pid) == {}
    assert [a for a, _ in audit_actions(voice_app, pid)] == ["voice.answered", "voice.identity_failed",
                                                            "voice.call_ended"]


def test_an_urgent_answer_is_stored_at_once_and_the_team_can_be_called(voice_app, worker, fake_twilio):
    pid = voice_patient(voice_app)
    call = place_call(voice_app, worker, fake_twilio)
    call.pick_up().press(PIN + "#")
    urgent = {"white or blue and cold": "1"}
    for _ in range(10):
        if "white or blue and cold" in call.last:
            break
        call.press("2")
    call.press(urgent["white or blue and cold"])
    assert call.last == "You answered: Yes. Press 1 to confirm this answer, 2 to change it."
    call.press("1")
    heard = call.last
    assert "You told us" in heard and "Please call your study team now." in heard
    assert "In an emergency, call 15 or 112." in heard
    assert heard.endswith("To be connected to your study team now, press 1. To go on with the questions, press 2.")
    # Stored and the team's alert raised before the call goes on.
    assert answers_of(voice_app, pid)[("DU_DIARY", "DU_ISCHAEMIA", 0)] == ("Y", "voice_dtmf")
    with voice_app.app_context():
        assert db.session().scalars(select(Alert.rule_code)).all() == ["DU_ISCHAEMIA"]
    call.press("1")
    assert call.dialled == ["+33561000000"]
    call.end_dial()
    assert call.last.startswith("We go on with the questions.") and "black beyond an ulcer" in call.last
    call.hang_up()                                                # the call drops: the answer and alert stay
    assert answers_of(voice_app, pid)[("DU_DIARY", "DU_ISCHAEMIA", 0)] == ("Y", "voice_dtmf")
    assert "voice.urgent_answer" in [a for a, _ in audit_actions(voice_app, pid)]


def test_without_a_site_phone_the_numbers_are_read_and_the_questions_go_on(voice_app, worker, fake_twilio):
    pid = voice_patient(voice_app, site_phone=None)
    call = place_call(voice_app, worker, fake_twilio)
    call.pick_up().press(PIN + "#")
    answer_the_questions(call, {"signs of infection": "1"}, stop_after=2)
    assert "You answered: Yes." in call.last
    call.press("1")
    assert "In an emergency, call 15 or 112. We go on with the questions." in call.last
    assert "press 1" not in call.last.split("We go on")[0]
    answer_the_questions(call)
    assert w1(voice_app, pid).status == OccurrenceStatus.COMPLETED
    with voice_app.app_context():
        assert db.session().scalars(select(Alert.rule_code)).all() == ["DU_INFECTION"]


def test_a_patient_withdrawn_during_the_call_is_told_and_the_call_ends(voice_app, worker, fake_twilio):
    pid = voice_patient(voice_app)
    call = place_call(voice_app, worker, fake_twilio)
    call.pick_up().press(PIN + "#")
    with voice_app.app_context(), db.transaction() as s:
        s.get(Patient, pid).status = PatientStatus.WITHDRAWN
    call.press("2")
    assert call.ended and call.said[-1] == "This questionnaire can no longer be answered. Thank you, goodbye."
    assert conversation(voice_app, pid).status == "stopped"


def test_the_last_call_not_answered_is_followed_by_the_link_by_sms(voice_app, worker, fake_twilio):
    pid = voice_patient(voice_app)
    place_call(voice_app, worker, fake_twilio).not_answered("no-answer")
    place_call(voice_app, worker, fake_twilio, local(2026, 3, 25, 10)).not_answered("busy")
    assert fake_twilio.messages == {}                             # a call is still to come
    place_call(voice_app, worker, fake_twilio, local(2026, 3, 26, 10)).not_answered("no-answer")
    rows = [(r.kind, r.status) for r in outbox(voice_app, pid) if r.visit_code == "W1"]
    assert rows[:3] == [("invitation", SmsStatus.UNDELIVERED), ("reminder_1", SmsStatus.UNDELIVERED),
                        ("reminder_2", SmsStatus.UNDELIVERED)]
    assert rows[3][0] == "link_after_call"
    at(voice_app, local(2026, 3, 26, 10, 1))
    worker.tick()
    [sms] = fake_twilio.messages.values()
    assert "/s/" in sms.body and sms.to == "+33612345678"


def test_a_window_that_closes_during_the_call_ends_it(voice_app, worker, fake_twilio):
    pid = voice_patient(voice_app)
    call = place_call(voice_app, worker, fake_twilio)
    call.pick_up().press(PIN + "#")
    answer_the_questions(call, stop_after=3)
    at(voice_app, local(2026, 3, 27, 0, 0))                      # W1 closed at midnight after its last day
    call.press("2")
    assert call.ended and call.said[-1] == "This questionnaire can no longer be answered. Thank you, goodbye."
    assert answers_of(voice_app, pid) == {} and conversation(voice_app, pid).status == "stopped"
