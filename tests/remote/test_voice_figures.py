"""Figures: how long a weekly diary takes by phone, with the fake Twilio's timings (docs/benchmarks.md).

The timings are the driver's: 8 s from the first ring to the answer, speech at 2.5 words a second (Twilio's
text-to-speech speaks at about 150 words a minute), 1 s per key pressed, 2.5 s per spoken answer. The patient answers
each question once its wording ends (no barge-in), so these are the longest calls of each kind."""

from __future__ import annotations

import math

import pytest

from tests.remote import voice_helpers as vh
from tests.remote.voice_helpers import PIN, answer_the_questions, place_call, voice_patient

fake_twilio, voice_app, worker = vh.fake_twilio, vh.voice_app, vh.worker

WEEKS = {
    "no new ulcer": {"0 to 10": "3#", "0 à 10": "3#"},
    "one new ulcer": {**vh.DIARY, "nouvel ulcère est-il apparu": "1", "quelle main": "1", "quel doigt": "3",
                      "Où sur le doigt": "1", "Il y a combien de jours": "2#", "un autre nouvel ulcère": "2"},
}


@pytest.mark.parametrize("language", ["en", "fr"])
@pytest.mark.parametrize("week", list(WEEKS))
def test_a_weekly_diary_by_phone_takes_a_few_minutes(voice_app, worker, fake_twilio, language, week):
    voice_patient(voice_app, language=language)
    call = place_call(voice_app, worker, fake_twilio)
    call.pick_up().press(PIN + "#")
    asked = answer_the_questions(call, WEEKS[week])
    assert call.ended and call.call.status == "completed"
    words = sum(len(t.split()) for t in call.said)
    minutes = math.ceil(call.seconds / 60)                       # Twilio bills each started minute
    print(f"\nVOICE-FIGURE {language} {week}: {asked} questions, {words} words said, "
          f"{call.seconds:.0f} s, {minutes} billed minutes")
    assert call.seconds < 8 * 60
