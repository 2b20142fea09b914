"""The conversation engine: a visit's questions one at a time, read leniently, stored as the page stores them."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import select

from proapp import db, runtime
from proapp.models import Alert, Answer, Occurrence, Response
from proapp.remote import conversation as conv
from tests.questionnaire.helpers import enrol_with_open_window


def _load(app, pid: int, mode: str = "sms", visit: str = "W1"):
    s = db.session()
    occ = s.scalars(select(Occurrence).where(Occurrence.patient_id == pid, Occurrence.visit_code == visit)).one()
    return s, conv.load_visit(s.connection(), occ.id, mode, app.extensions["proapp.instruments"],
                              app.extensions["proapp.studies"], for_writing=True)


def _reply_for(prompt: conv.Prompt, wanted: dict[str, str]) -> str:
    if prompt.item is None:
        return wanted.get("more", "non")
    return wanted.get(prompt.item.code, "2" if prompt.choices and prompt.choices[-1].value == "N" else "0")


def test_a_weekly_diary_answered_reply_by_reply_is_completed_with_its_modes(app):
    pid, _token = enrol_with_open_window(app)
    replies = {"DU_NEW": "oui", "DU_HAND": "gauche", "DU_FINGER": "2", "DU_SITE": "1", "DU_ONSET": "3 jours",
               "more": "Non", "DU_INFECT": "N", "PAIN_NRS": "7"}
    asked = []
    with app.app_context():
        now = runtime.now()
        for _step in range(40):
            s, vq = _load(app, pid)
            prompt = conv.next_prompt(vq, "fr", now)
            if prompt is None:
                assert conv.finish(s, vq, language="fr", now=now)
                s.commit()
                break
            asked.append(prompt.key)
            value = conv.read_reply(prompt, _reply_for(prompt, replies), conv.today_of(vq, now))
            assert value is not None, prompt.key
            assert conv.answer(s, vq, prompt, value, language="fr", now=now, mode="sms") == {}
            s.commit()
        else:
            pytest.fail("the diary never ended")
        s = db.session()
        responses = {r.instrument_code: r for r in s.scalars(select(Response))}
        assert set(responses) == {"DU_DIARY", "PAIN_NRS"}             # the VAS's numeric rating, not the VAS
        assert responses["PAIN_NRS"].scores["score"] == 7
        assert responses["DU_DIARY"].scores["new_ulcer_count"] == 1
        assert responses["DU_DIARY"].flow_state["mode_wording"] == "2.3-R1"
        modes = set(s.scalars(select(Answer.mode)))
        assert modes == {"sms"}
        onset = s.scalar(select(Answer.value).where(Answer.item_code == "DU_ONSET"))
        assert date.fromisoformat(onset) == conv.today_of(vq, now).fromordinal(conv.today_of(vq, now).toordinal() - 3)
        assert s.scalar(select(Answer.value).where(Answer.item_code == "DU_HAND")) == "L"
    assert asked[0] == "DU_DIARY.DU_NEW" and asked[-1] == "PAIN_NRS.PAIN_NRS"


def test_a_visit_with_a_web_only_questionnaire_is_not_asked_by_sms(app):
    pid, _token = enrol_with_open_window(app, visit="W0")
    with app.app_context():
        _s, vq = _load(app, pid, visit="W0")
        assert vq is None                                # DLQI and HAQ have no remote wording: the web link


def test_an_urgent_answer_raises_its_alert_when_it_is_given(app):
    pid, _token = enrol_with_open_window(app)
    with app.app_context():
        now = runtime.now()
        s, vq = _load(app, pid, mode="voice")
        screen = next(x for x in vq.flow() if x.key == "DU_DIARY.DU_ISCHAEMIA")
        prompt = conv.prompt_for(vq, screen, "en", now)
        assert [(c.key, c.label) for c in prompt.choices] == [("1", "Yes"), ("2", "No")]
        assert conv.answer(s, vq, prompt, conv.read_reply(prompt, "yes", now.date()), language="en", now=now,
                           mode="voice_speech") == {}
        s.commit()
        assert db.session().scalars(select(Alert.rule_code)).all() == ["DU_ISCHAEMIA"]


@pytest.mark.parametrize(("reply", "expected"), [
    ("1", "Y"), ("oui", "Y"), ("Oui !", "Y"), ("O", "Y"), ("yes please", "Y"), ("2", "N"), ("non", "N"), ("n", "N"),
    ("peut-être", None), ("3", None), ("", None)])
def test_yes_no_replies_are_read_leniently(app, reply, expected):
    pid, _token = enrol_with_open_window(app)
    with app.app_context():
        _s, vq = _load(app, pid)
        prompt = conv.next_prompt(vq, "fr", runtime.now())
        assert prompt.key == "DU_DIARY.DU_NEW"
        assert conv.read_reply(prompt, reply, date(2026, 1, 10)) == expected


def test_numbers_keys_words_and_labels(app):
    pid, _token = enrol_with_open_window(app)
    with app.app_context():
        now = runtime.now()
        _s, vq = _load(app, pid)
        by_key = {x.key: x for x in vq.flow()}
        pain = conv.prompt_for(vq, by_key["PAIN_NRS.PAIN_NRS"], "fr", now)
        assert pain.two_digit_keys and [c.key for c in pain.choices] == [str(n) for n in range(11)]
        assert [conv.read_reply(pain, r, now.date()) for r in ("10", "dix", "sept", "0", "11", "beaucoup")] == [
            "10", "10", "7", "0", None, None]
        conv.hold(vq, conv.prompt_for(vq, by_key["DU_DIARY.DU_NEW"], "fr", now), "Y")
        by_key = {x.key: x for x in vq.flow()}
        hand = conv.prompt_for(vq, by_key["DU_DIARY.DU_ULCER.1.DU_HAND"], "en", now)
        assert [conv.read_reply(hand, r, now.date()) for r in ("left", "Right hand", "2", "hand")] == [
            "L", "R", "R", None]
        onset = conv.prompt_for(vq, by_key["DU_DIARY.DU_ULCER.1.DU_ONSET"], "fr", now)
        assert onset.days_ago_max == 31 and "combien de jours" in onset.text
        today = date(2026, 3, 10)
        assert [conv.read_reply(onset, r, today) for r in ("0", "hier", "vingt et un", "32", "demain")] == [
            "2026-03-10", "2026-03-09", "2026-02-17", None, None]
