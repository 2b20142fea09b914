"""SMS conversations end to end: the worker sends the opener and every reply through the outbox and the real twilio
SDK to the fake Twilio; the patient's phone answers with the incoming-message webhook, signed as Twilio signs it."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from proapp import db
from proapp.jobs.worker import Worker
from proapp.models import Alert, Answer, Response
from proapp.patients.models import Occurrence, OccurrenceStatus, Patient, PatientContact, PatientEvent
from proapp.remote.models import Conversation
from proapp.sms.models import SmsMessage, SmsStatus
from proapp.sms.text import gsm7_length
from tests.conftest import fresh_app
from tests.sms.conftest import at, enrol, twilio_settings
from tests.sms.fake_twilio import FakeTwilio, Phone

PARIS = ZoneInfo("Europe/Paris")
W0_ANCHOR = date(2026, 3, 17)          # W0 (days -3 to -1) open at ENROLLED: its invitation is the first SMS
ENROLLED = datetime(2026, 3, 16, 6, tzinfo=UTC)
NUMBER = "+33612345678"
# The weekly diary's answers by screen key suffix; anything else is answered "non".
NEW_ULCER = {"DU_NEW": "oui", "DU_HAND": "gauche", "DU_FINGER": "2", "DU_SITE": "1", "DU_ONSET": "3",
             "PAIN_NRS": "7"}
NO_ULCER = {"PAIN_NRS": "7"}
DIARY = NEW_ULCER


def local(y, m, d, h, minute=0) -> datetime:
    return datetime(y, m, d, h, minute, tzinfo=PARIS).astimezone(UTC)


@pytest.fixture
def fake_twilio():
    with FakeTwilio() as fake:
        yield fake


@pytest.fixture
def sms_app(database_url, instance_dir, fake_twilio):
    app = fresh_app(database_url, **twilio_settings(fake_twilio))
    yield app
    app.extensions["proapp.engine"].dispose()


@pytest.fixture
def worker(sms_app):
    at(sms_app, ENROLLED)
    w = Worker(sms_app, worker_id="test-worker")
    yield w
    w.close()


def _patient(app, subject: str, channel: str = "sms", number: str = NUMBER) -> int:
    pid = enrol(app, subject, W0_ANCHOR, phone=number, now=ENROLLED)
    with app.app_context(), db.transaction() as s:
        s.get(Patient, pid).answer_channel = channel
    return pid


def _w1(app, pid: int) -> Occurrence:
    with app.app_context():
        return db.session().scalar(select(Occurrence).where(Occurrence.patient_id == pid,
                                                            Occurrence.visit_code == "W1"))


def _opened(app, worker: Worker, pid: int) -> datetime:
    """The W0 link sent (the patient's first SMS), then W1's opener at 10:00 on its first day; returns that time."""
    at(app, local(2026, 3, 16, 10))
    worker.tick()
    w1 = _w1(app, pid)
    when = local(w1.window_opens_on.year, w1.window_opens_on.month, w1.window_opens_on.day, 10)
    at(app, when)
    worker.tick()
    return when


def _conversation(app, pid: int) -> Conversation | None:
    with app.app_context():
        return db.session().scalar(select(Conversation).where(Conversation.patient_id == pid)
                                   .order_by(Conversation.id.desc()).limit(1))


def _answer_for(asked: str, diary: dict[str, str] = DIARY) -> str:
    return diary.get(asked.rsplit(".", 1)[-1], "non")


def _say(app, worker: Worker, phone: Phone, body: str, sid: str | None = None) -> list[str]:
    """The patient texts ``body``; the worker sends what it queued. Returns the SMS the phone got back."""
    before = len(phone.received())
    resp = phone.send(app.test_client(), body, sid)
    assert resp.status_code == 200 and resp.mimetype == "text/xml"
    assert b"<Message" not in resp.data                  # nothing answered inline: the outbox sends it
    worker.send_due()
    return phone.received()[before:]


@pytest.mark.parametrize(("diary", "new_ulcers"), [(NEW_ULCER, 1), (NO_ULCER, 0)], ids=["new_ulcer", "no_ulcer"])
def test_a_weekly_diary_answered_by_sms_replies(sms_app, worker, fake_twilio, diary, new_ulcers):
    pid = _patient(sms_app, "ADU-TLS-301")
    phone = Phone(fake_twilio, NUMBER)
    now = _opened(sms_app, worker, pid)
    first, opener = phone.received()
    assert "1er questionnaire" in first                  # W0 (web only) by link, the patient's first SMS
    w1 = _w1(sms_app, pid)
    assert opener.startswith(f"SuiviPRO : questionnaire jusqu'au {w1.window_closes_on:%d/%m}. Répondez 1 pour "
                             "répondre par SMS ou ouvrez https://pro.example.test/s/")
    assert len(opener) <= 160
    got = _say(sms_app, worker, phone, "1")
    assert len(got) == 1 and "ulcère" in got[0] and got[0].endswith("1 Oui / 2 Non")
    replies = 1
    for _step in range(40):
        c = _conversation(sms_app, pid)
        if c.status != "open":
            break
        at(sms_app, now + timedelta(minutes=replies))
        asked = c.state["asked"]
        got = _say(sms_app, worker, phone, _answer_for(asked, diary))
        replies += 1
        assert len(got) == 1, got
        if asked.endswith("PAIN_NRS"):
            assert got[0] == "SuiviPRO : merci, vos réponses ont été envoyées à votre équipe d'étude."
        if got[0].endswith("PAIN_NRS") is False and "0 à 10" in got[0]:
            assert got[0].endswith("Répondez par un nombre de 0 à 10.")
    assert _conversation(sms_app, pid).status == "completed"
    with sms_app.app_context():
        s = db.session()
        assert s.get(Occurrence, w1.id).status == OccurrenceStatus.COMPLETED
        responses = {r.instrument_code: r for r in s.scalars(select(Response).where(Response.occurrence_id == w1.id))}
        assert set(responses) == {"DU_DIARY", "PAIN_NRS"}
        assert responses["PAIN_NRS"].scores["score"] == 7
        assert responses["DU_DIARY"].scores["new_ulcer_count"] == new_ulcers
        assert set(s.scalars(select(Answer.mode).join(Response).where(Response.occurrence_id == w1.id))) == {"sms"}
        rows = s.execute(select(SmsMessage.kind, SmsMessage.status, SmsMessage.channel)
                         .where(SmsMessage.occurrence_id == w1.id).order_by(SmsMessage.id)).all()
    assert rows[0] == ("invitation", SmsStatus.ACCEPTED, "sms_replies")
    assert [r.kind for r in rows[1:]] == [f"reply_{n}" for n in range(1, len(rows))]
    assert all(r.status == SmsStatus.ACCEPTED for r in rows)
    sent = len(phone.received()) - 1                    # W1: the opener, the questions, the thank-you
    assert sent == len(rows) and replies == sent - 1
    segments = sum(_segments(b) for b in phone.received()[1:])
    print(f"\nSMS per weekly diary ({new_ulcers} new ulcer): {sent} sent ({segments} segments), {replies} received")
    assert (sent, replies, segments) == ((20, 19, 33) if new_ulcers else (14, 13, 24))


def _segments(body: str) -> int:
    """Twilio's billed segments: GSM-7 160 (153 when concatenated), else UCS-2 70 (67)."""
    n = gsm7_length(body)
    single, part, size = (160, 153, n) if n is not None else (70, 67, len(body))
    return 1 if size <= single else -(-size // part)


def test_a_reply_it_cannot_read_is_asked_again_then_the_link_is_sent(sms_app, worker, fake_twilio):
    pid = _patient(sms_app, "ADU-TLS-302")
    phone = Phone(fake_twilio, NUMBER)
    _opened(sms_app, worker, pid)
    _say(sms_app, worker, phone, "1")
    assert _say(sms_app, worker, phone, "peut-être") == ["Je n'ai pas compris. Répondez 1 ou 2."]
    assert _say(sms_app, worker, phone, "bof") == ["Je n'ai pas compris. Répondez 1 ou 2."]
    [link] = _say(sms_app, worker, phone, "???")
    assert link.startswith("SuiviPRO : pour répondre sur la page web, ouvrez https://pro.example.test/s/")
    assert _conversation(sms_app, pid).status == "to_web"
    resp = sms_app.test_client().get(link.rsplit(" ", 1)[1].removeprefix("https://pro.example.test"))
    assert resp.status_code == 303                       # the link opens the questionnaire
    assert _say(sms_app, worker, phone, "oui") == []     # the conversation is over: nothing read, nothing sent


def test_stop_records_the_opt_out_and_nothing_more_is_sent(sms_app, worker, fake_twilio):
    pid = _patient(sms_app, "ADU-TLS-303")
    phone = Phone(fake_twilio, NUMBER)
    now = _opened(sms_app, worker, pid)
    _say(sms_app, worker, phone, "1")
    assert _say(sms_app, worker, phone, "Arrêt") == []   # Twilio confirms STOP itself
    assert _conversation(sms_app, pid).status == "stopped"
    with sms_app.app_context():
        s = db.session()
        assert s.get(PatientContact, pid).opted_out_at is not None
        assert s.scalars(select(PatientEvent.action).where(PatientEvent.patient_id == pid)).all() == ["sms_opt_out"]
    at(sms_app, now + timedelta(days=3))
    worker.tick()                                        # no reminder either
    assert _say(sms_app, worker, phone, "oui") == []     # nor any reply read
    assert _say(sms_app, worker, phone, "1") == []
    assert len(phone.received()) == 3
    with sms_app.app_context():
        assert db.session().scalar(select(func.count()).select_from(Answer)) == 0


def test_lien_sends_the_link_and_web_switches_the_next_visits_to_links(sms_app, worker, fake_twilio):
    pid = _patient(sms_app, "ADU-TLS-304")
    phone = Phone(fake_twilio, NUMBER)
    _opened(sms_app, worker, pid)
    _say(sms_app, worker, phone, "1")
    _say(sms_app, worker, phone, "non")                 # one answer given
    [link] = _say(sms_app, worker, phone, "Lien")
    assert "https://pro.example.test/s/" in link and _conversation(sms_app, pid).status == "to_web"
    assert _say(sms_app, worker, phone, "WEB") == []     # no conversation going on: nothing to send
    with sms_app.app_context():
        s = db.session()
        assert s.get(Patient, pid).answer_channel == "web"
        event = s.scalar(select(PatientEvent).where(PatientEvent.patient_id == pid,
                                                    PatientEvent.action == "answer_channel_changed"))
        assert event.actor == "patient:sms" and event.details == {"old": "sms", "new": "web"}
        assert s.scalar(select(func.count()).select_from(Answer).where(Answer.mode == "sms")) == 1


def test_web_during_a_conversation_sends_the_link_and_sms_switches_back(sms_app, worker, fake_twilio):
    pid = _patient(sms_app, "ADU-TLS-305", channel="web")
    phone = Phone(fake_twilio, NUMBER)
    _opened(sms_app, worker, pid)
    invitation = phone.last()
    assert "Répondez 1" not in invitation                 # a web patient's invitation: the link
    [question] = _say(sms_app, worker, phone, "SMS")    # in reply to the link: SMS conversations from now on
    assert question.endswith("1 Oui / 2 Non")
    with sms_app.app_context():
        assert db.session().get(Patient, pid).answer_channel == "sms"
    [link] = _say(sms_app, worker, phone, "web")
    assert "https://pro.example.test/s/" in link
    assert _conversation(sms_app, pid).status == "to_web"
    with sms_app.app_context():
        assert db.session().get(Patient, pid).answer_channel == "web"


def test_a_conversation_without_reply_times_out_and_sends_the_link(sms_app, worker, fake_twilio):
    pid = _patient(sms_app, "ADU-TLS-306")
    phone = Phone(fake_twilio, NUMBER)
    now = _opened(sms_app, worker, pid)
    _say(sms_app, worker, phone, "1")
    _say(sms_app, worker, phone, "non")
    at(sms_app, now + timedelta(hours=3, minutes=59))
    assert worker.tick()["conversations_timed_out"] == 0
    at(sms_app, now + timedelta(hours=4, minutes=1))
    assert worker.tick()["conversations_timed_out"] == 1
    link = phone.last()
    assert link.startswith("SuiviPRO : pas de réponse. Vos réponses sont gardées : continuez")
    assert _conversation(sms_app, pid).status == "timed_out"
    with sms_app.app_context():
        assert db.session().scalar(select(func.count()).select_from(Answer)) == 1   # the answer given is kept
    # The web page continues from it.
    client = sms_app.test_client()
    resp = client.get(link.rsplit(" ", 1)[1].removeprefix("https://pro.example.test"))
    assert resp.status_code == 303
    page = client.get(resp.headers["Location"], follow_redirects=True)
    assert page.status_code == 200


def test_the_same_webhook_twice_changes_nothing(sms_app, worker, fake_twilio):
    pid = _patient(sms_app, "ADU-TLS-307")
    phone = Phone(fake_twilio, NUMBER)
    _opened(sms_app, worker, pid)
    _say(sms_app, worker, phone, "1", sid="SM" + "a" * 32)
    assert len(_say(sms_app, worker, phone, "non", sid="SM" + "b" * 32)) == 1
    assert _say(sms_app, worker, phone, "non", sid="SM" + "b" * 32) == []
    assert _say(sms_app, worker, phone, "1", sid="SM" + "a" * 32) == []
    with sms_app.app_context():
        assert db.session().scalar(select(func.count()).select_from(Answer)) == 1


def test_a_bad_signature_is_refused_and_nothing_is_stored(sms_app, worker, fake_twilio):
    pid = _patient(sms_app, "ADU-TLS-308")
    phone = Phone(fake_twilio, NUMBER)
    _opened(sms_app, worker, pid)
    client = sms_app.test_client()
    assert phone.send(client, "1", signature="").status_code == 403
    assert phone.send(client, "1", signature="bm9wZQ==").status_code == 403
    _url, params, sig = phone.reply("1")
    params["Body"] = "STOP"                              # tampered after signing
    assert client.post("/sms/inbound", data=params, headers={"X-Twilio-Signature": sig}).status_code == 403
    worker.send_due()
    assert _conversation(sms_app, pid) is None
    with sms_app.app_context():
        assert db.session().get(PatientContact, pid).opted_out_at is None
    assert len(phone.received()) == 2


def test_an_unknown_number_gets_nothing_and_nothing_is_stored(sms_app, worker, fake_twilio, caplog):
    _patient(sms_app, "ADU-TLS-309")
    stranger = Phone(fake_twilio, "+33698765432")
    resp = stranger.send(sms_app.test_client(), "STOP")
    assert resp.status_code == 200 and b"<Response" in resp.data
    assert "698765432" not in caplog.text and "98 76" not in caplog.text
    with sms_app.app_context():
        s = db.session()
        assert s.scalar(select(func.count()).select_from(Conversation)) == 0
        assert s.scalar(select(func.count()).select_from(PatientContact)
                        .where(PatientContact.opted_out_at.is_not(None))) == 0


def test_an_urgent_answer_is_told_at_once_before_the_next_question(sms_app, worker, fake_twilio):
    pid = _patient(sms_app, "ADU-TLS-310")
    phone = Phone(fake_twilio, NUMBER)
    _opened(sms_app, worker, pid)
    _say(sms_app, worker, phone, "1")
    for _step in range(40):
        asked = _conversation(sms_app, pid).state["asked"]
        if asked.endswith("DU_ISCHAEMIA"):
            break
        _say(sms_app, worker, phone, "non")
    else:
        pytest.fail("the ischaemia question was never asked")
    [advice] = _say(sms_app, worker, phone, "oui")     # the next question waits ten seconds behind it
    assert advice.startswith("Vous nous avez indiqué qu'un doigt est blanc ou bleu et froid")
    assert "Appelez votre équipe d'étude maintenant" in advice
    assert "15 ou 112" in advice and "114" in advice
    at(sms_app, sms_app.extensions["proapp.clock"].now() + timedelta(seconds=10))
    worker.send_due()
    assert phone.last().endswith("1 Oui / 2 Non") and _conversation(sms_app, pid).state["asked"] != asked
    with sms_app.app_context():
        assert db.session().scalars(select(Alert.rule_code)).all() == ["DU_ISCHAEMIA"]


def test_two_workers_send_each_reply_once(sms_app, fake_twilio):
    at(sms_app, ENROLLED)
    workers = [Worker(sms_app, worker_id=f"w{n}") for n in (1, 2)]
    try:
        pids = [_patient(sms_app, f"ADU-TLS-32{n}", number=f"+3361234560{n}") for n in range(4)]
        phones = [Phone(fake_twilio, f"+3361234560{n}") for n in range(4)]
        _opened(sms_app, workers[0], pids[0])
        client = sms_app.test_client()
        for _round in range(4):
            for phone in phones:
                assert phone.send(client, "1" if _round == 0 else "non").status_code == 200
            threads = [threading.Thread(target=w.send_due) for w in workers]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        with sms_app.app_context():
            rows = db.session().execute(select(SmsMessage.provider_sid, SmsMessage.status)
                                        .where(SmsMessage.kind.like("reply_%"))).all()
        assert len(rows) == 16 and all(r.status == SmsStatus.ACCEPTED for r in rows)
        assert len({r.provider_sid for r in rows}) == 16
        assert sum(len(p.received()) for p in phones) == 4 * (2 + 4)    # W0 link, opener, four replies each
    finally:
        for w in workers:
            w.close()


def test_english_questions_and_re_asks(sms_app, worker, fake_twilio):
    pid = enrol(sms_app, "ADU-TLS-311", W0_ANCHOR, language="en", now=ENROLLED)
    with sms_app.app_context(), db.transaction() as s:
        s.get(Patient, pid).answer_channel = "sms"
    phone = Phone(fake_twilio, NUMBER)
    _opened(sms_app, worker, pid)
    assert phone.last().startswith("SuiviPRO: questionnaire until ") and "Reply 1 to answer by SMS" in phone.last()
    [question] = _say(sms_app, worker, phone, "yes")
    assert question.endswith("1 Yes / 2 No")
    assert _say(sms_app, worker, phone, "maybe") == ["Sorry, I did not understand. Reply 1 or 2."]


def test_sms_for_a_web_only_visit_is_answered_on_the_web(sms_app, worker, fake_twilio):
    pid = _patient(sms_app, "ADU-TLS-312", channel="web")
    phone = Phone(fake_twilio, NUMBER)
    at(sms_app, local(2026, 3, 16, 10))
    worker.tick()                                        # W0 (DLQI, HAQ: web only) by link
    assert _say(sms_app, worker, phone, "SMS") == [
        "SuiviPRO : ce questionnaire se remplit seulement sur la page web, avec le lien envoyé."]
    with sms_app.app_context():
        assert db.session().get(Patient, pid).answer_channel == "web"


@pytest.fixture
def patient_app(database_url, instance_dir, fake_twilio):
    """Replies awaited for a week: a conversation still going on when a reminder falls due."""
    app = fresh_app(database_url, **twilio_settings(fake_twilio, SMS_REPLY_TIMEOUT_MINUTES=7 * 24 * 60))
    yield app
    app.extensions["proapp.engine"].dispose()


def test_no_reminder_while_the_patient_is_answering(patient_app, fake_twilio):
    at(patient_app, ENROLLED)
    worker = Worker(patient_app, worker_id="patient-worker")
    try:
        pid = _patient(patient_app, "ADU-TLS-313")
        phone = Phone(fake_twilio, NUMBER)
        now = _opened(patient_app, worker, pid)
        _say(patient_app, worker, phone, "1")
        at(patient_app, now + timedelta(days=2))
        worker.tick()                                    # the reminder's day: "Reply 1" would read as an answer
        assert len(phone.received()) == 3
        with patient_app.app_context():
            reasons = db.session().scalars(select(SmsMessage.cancel_reason)
                                           .where(SmsMessage.kind == "reminder_1")).all()
        assert reasons == ["in_conversation"]
    finally:
        worker.close()


def test_after_the_link_a_reminder_opener_takes_the_conversation_up_again(sms_app, worker, fake_twilio):
    pid = _patient(sms_app, "ADU-TLS-314")
    phone = Phone(fake_twilio, NUMBER)
    now = _opened(sms_app, worker, pid)
    _say(sms_app, worker, phone, "1")
    _say(sms_app, worker, phone, "non")
    _say(sms_app, worker, phone, "lien")
    assert _say(sms_app, worker, phone, "1") == []           # the link was asked for: "1" alone reads as nothing
    at(sms_app, now + timedelta(days=2))
    worker.tick()
    assert "Répondez 1" in phone.last()                       # the reminder, an opener again
    [question] = _say(sms_app, worker, phone, "1")
    assert question.endswith("1 Oui / 2 Non") and _conversation(sms_app, pid).status == "open"
    assert "DU_NEW" not in _conversation(sms_app, pid).state["asked"]   # it goes on from the answer given
