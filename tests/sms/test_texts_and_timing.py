"""The SMS texts (one GSM-7 segment, no health information) and when each SMS may go."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from proapp.sms.delivery import SmsSettings, longest_sms
from proapp.sms.delivery import text_problems as problems
from proapp.sms.text import KINDS, compose, gsm7_length
from proapp.sms.timing import QuietHours, allowed_at, invitation_due, reminder_days
from tests.conftest import make_app

LONGEST_URL = "https://questionnaires.chu-exemple-universite.fr"   # 48 characters
TOKEN = "A" * 22                                                     # 128 bits, URL-safe base64


def test_gsm7_counting():
    assert gsm7_length("Répondez à votre questionnaire") == 30       # é and à are GSM-7
    assert gsm7_length("prix 5€ [x]") == 14                           # € [ ] count twice
    for not_gsm in ("ê", "â", "î", "ô", "û", "ç", "œ", "’", "«", "»"):
        assert gsm7_length(f"a{not_gsm}b") is None, not_gsm


@pytest.mark.parametrize("language", ["fr", "en"])
@pytest.mark.parametrize("kind", KINDS)
def test_every_text_is_one_gsm7_segment_with_the_longest_link(app, language, kind):
    with app.app_context():
        body = compose(kind, language, sender="ABCDEFGHIJK", link=f"{LONGEST_URL}/s/{TOKEN}",
                       last_day=date(2026, 12, 31))
    length = gsm7_length(body)
    assert length is not None, f"not GSM-7: {body}"
    assert length <= 160, f"{length} characters: {body}"
    assert body.startswith("ABCDEFGHIJK") and body.endswith(f"/s/{TOKEN}")


def test_texts_carry_no_health_study_or_site_information(app):
    studies = app.extensions["proapp.studies"]
    forbidden = {"sclér", "sclero", "ulc", "imatinib", "stromal", "dlqi", "haq", "douleur", "pain", "chu",
                 "hôpital", "hospital"}
    for loaded in studies.all():
        d = loaded.definition
        forbidden |= {d.code.lower(), d.title.lower()} | {s.name.lower() for s in d.sites}
    with app.app_context():
        for language in ("fr", "en"):
            for kind in KINDS:
                body = compose(kind, language, sender="SuiviPRO", link="https://x.test/s/t",
                               last_day=date(2026, 5, 14)).lower()
                assert not [w for w in forbidden if w in body], body


def test_dates_in_the_text_are_the_window_last_day_in_each_language(app):
    with app.app_context():
        fr = compose("invitation", "fr", sender="S", link="L", last_day=date(2026, 5, 4))
        en = compose("invitation", "en", sender="S", link="L", last_day=date(2026, 5, 4))
    assert "04/05" in fr and "questionnaire de suivi" in fr
    assert "4 May" in en and "follow-up questionnaire" in en


def test_a_public_url_too_long_for_one_segment_is_reported(database_url, instance_dir):
    ok = make_app(database_url, PUBLIC_URL=LONGEST_URL, SMS_SENDER_NAME="ABCDEFGHIJK")
    assert problems(ok) == []
    too_long = make_app(database_url, PUBLIC_URL="https://" + "x" * 60 + ".fr")
    assert any("more than one 160-character segment" in p for p in problems(too_long))
    with too_long.app_context():
        _text, length = longest_sms(SmsSettings.from_config(too_long.config))
    assert length is not None and length > 160


QUIET = QuietHours(21, 8)


@pytest.mark.parametrize(("tz", "opens_on", "expected_utc"), [
    ("Europe/Paris", date(2026, 1, 15), datetime(2026, 1, 15, 9, tzinfo=UTC)),        # winter: UTC+1
    ("Europe/Paris", date(2026, 7, 15), datetime(2026, 7, 15, 8, tzinfo=UTC)),        # summer: UTC+2
    ("Europe/Paris", date(2026, 3, 29), datetime(2026, 3, 29, 8, tzinfo=UTC)),        # the day clocks go forward
    ("Europe/Paris", date(2026, 10, 25), datetime(2026, 10, 25, 9, tzinfo=UTC)),      # the day clocks go back
    ("America/Guadeloupe", date(2026, 7, 15), datetime(2026, 7, 15, 14, tzinfo=UTC)),  # UTC-4
    ("Indian/Reunion", date(2026, 7, 15), datetime(2026, 7, 15, 6, tzinfo=UTC)),       # UTC+4
])
def test_the_invitation_goes_at_the_preferred_local_hour(tz, opens_on, expected_utc):
    enrolled_before = datetime(2026, 1, 1, tzinfo=UTC)
    assert invitation_due(opens_on, tz, 10, enrolled_before, QUIET) == expected_utc


def test_enrolled_later_that_day_the_invitation_goes_at_once_unless_it_is_night():
    afternoon = datetime(2026, 7, 15, 13, 30, tzinfo=UTC)        # 15:30 in Paris
    assert invitation_due(date(2026, 7, 15), "Europe/Paris", 10, afternoon, QUIET) == afternoon
    night = datetime(2026, 7, 15, 20, 30, tzinfo=UTC)            # 22:30 in Paris: next morning at 10:00
    assert invitation_due(date(2026, 7, 15), "Europe/Paris", 10, night, QUIET) == datetime(2026, 7, 16, 8, tzinfo=UTC)
    early = datetime(2026, 7, 15, 4, tzinfo=UTC)                 # 06:00 in Paris, preferred hour 10:00
    assert invitation_due(date(2026, 7, 15), "Europe/Paris", 10, early, QUIET) == datetime(2026, 7, 15, 8, tzinfo=UTC)


def test_allowed_at_moves_quiet_hours_to_the_next_preferred_hour():
    at_3am_paris = datetime(2026, 2, 10, 2, tzinfo=UTC)
    assert allowed_at(at_3am_paris, "Europe/Paris", 9, QUIET) == datetime(2026, 2, 10, 8, tzinfo=UTC)
    at_9pm_paris = datetime(2026, 2, 10, 20, tzinfo=UTC)
    assert allowed_at(at_9pm_paris, "Europe/Paris", 9, QUIET) == datetime(2026, 2, 11, 8, tzinfo=UTC)
    midday = datetime(2026, 2, 10, 11, tzinfo=UTC)
    assert allowed_at(midday, "Europe/Paris", 9, QUIET) == midday


def test_reminder_days_follow_the_rules_and_never_repeat_a_day():
    rules = [(2, False), (None, True)]
    # ADUSE weekly window: 4 days; invitation on the first.
    assert reminder_days(date(2026, 3, 23), date(2026, 3, 26), rules) == [(1, date(2026, 3, 25)),
                                                                          (2, date(2026, 3, 26))]
    # Invited on the last-but-one day (late enrolment): +2 falls after the window, the last day stays.
    assert reminder_days(date(2026, 3, 25), date(2026, 3, 26), rules) == [(2, date(2026, 3, 26))]
    # Invited on the last day: no reminder at all.
    assert reminder_days(date(2026, 3, 26), date(2026, 3, 26), rules) == []
    # A 3-day window: +2 is the last day; the last-day rule does not send a second SMS that day.
    assert reminder_days(date(2026, 3, 23), date(2026, 3, 25), rules) == [(1, date(2026, 3, 25))]
