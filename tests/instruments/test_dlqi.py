"""DLQI scoring, each expected value worked out by hand from the published rules (Finlay & Khan 1994)."""

import pytest

from proapp.instruments import score

pytestmark = pytest.mark.requirement("SCORING")

ALL_ZERO = {"DLQI01": "0", "DLQI02": "0", "DLQI03": "0", "DLQI04": "0", "DLQI05": "0", "DLQI06": "0",
            "DLQI07A": "N", "DLQI07B": "0", "DLQI08": "0", "DLQI09": "0", "DLQI10": "0"}


def with_(**changes):
    answers = dict(ALL_ZERO)
    for k, v in changes.items():
        if v is None:
            answers.pop(k, None)
        else:
            answers[k] = v
    return answers


def test_all_not_at_all_scores_zero_with_every_subscale():
    r = score("DLQI", ALL_ZERO)
    assert r == {"status": "scored", "total": 0, "band": "no_effect", "questions_missing": 0,
                 "subscales": {"symptoms_feelings": 0, "daily_activities": 0, "leisure": 0, "work_school": 0,
                               "personal_relationships": 0, "treatment": 0}}


def test_maximum_is_thirty():
    answers = {f"DLQI{n:02d}": "3" for n in (1, 2, 3, 4, 5, 6, 8, 9, 10)} | {"DLQI07A": "Y"}
    r = score("DLQI", answers)
    assert (r["total"], r["band"]) == (30, "extremely_large")
    assert r["subscales"] == {"symptoms_feelings": 6, "daily_activities": 6, "leisure": 6, "work_school": 3,
                              "personal_relationships": 6, "treatment": 3}


def test_mixed_answers_sum_and_subscales():
    # Q1 3, Q2 2, Q3 NR(0), Q4 1, Q5 0, Q6 NR(0), Q7 N + a little (1), Q8 2, Q9 NR(0), Q10 1 -> 10
    answers = {"DLQI01": "3", "DLQI02": "2", "DLQI03": "NR", "DLQI04": "1", "DLQI05": "0", "DLQI06": "NR",
               "DLQI07A": "N", "DLQI07B": "1", "DLQI08": "2", "DLQI09": "NR", "DLQI10": "1"}
    r = score("DLQI", answers)
    assert r["total"] == 10
    assert r["band"] == "moderate"
    assert r["subscales"] == {"symptoms_feelings": 5, "daily_activities": 1, "leisure": 0, "work_school": 1,
                              "personal_relationships": 2, "treatment": 1}


@pytest.mark.parametrize(("a", "b", "expected"), [
    ("Y", None, 3),      # prevented from working: 3
    ("Y", "0", 3),       # the second part is ignored when 7A is Yes
    ("N", "2", 2),
    ("N", "1", 1),
    ("N", "0", 0),
    ("N", None, 0),      # No with the second part left blank: 0, question 7 still answered
    ("NR", None, 0),
    ("NR", "2", 0),      # Not relevant scores 0 whatever the second part says
])
def test_question_7(a, b, expected):
    r = score("DLQI", with_(DLQI07A=a, DLQI07B=b))
    assert r["status"] == "scored"
    assert r["total"] == expected
    assert r["subscales"]["work_school"] == expected


def test_question_7_unanswered_when_7a_is_unanswered_even_if_7b_given():
    r = score("DLQI", with_(DLQI07A=None, DLQI07B="2"))
    assert r["questions_missing"] == 1
    assert r["total"] == 0
    assert r["subscales"]["work_school"] is None and r["subscales"]["symptoms_feelings"] == 0


def test_one_missing_question_scores_zero_and_drops_only_its_subscale():
    r = score("DLQI", with_(DLQI01="3", DLQI02="3", DLQI05=None))
    assert r == {"status": "scored", "total": 6, "band": "moderate", "questions_missing": 1,
                 "subscales": {"symptoms_feelings": 6, "daily_activities": 0, "leisure": None, "work_school": 0,
                               "personal_relationships": 0, "treatment": 0}}


def test_two_missing_questions_are_not_scored_but_complete_subscales_are_reported():
    r = score("DLQI", with_(DLQI01="3", DLQI05=None, DLQI10=None))
    assert r == {"status": "not_scored", "total": None, "band": None, "questions_missing": 2,
                 "subscales": {"symptoms_feelings": 3, "daily_activities": 0, "leisure": None, "work_school": 0,
                               "personal_relationships": 0, "treatment": None}}


def test_nothing_answered_reports_no_subscale():
    r = score("DLQI", {})
    assert r["status"] == "not_scored" and r["subscales"] is None


def test_missing_7a_and_another_question_is_not_scored():
    r = score("DLQI", with_(DLQI07A=None, DLQI07B=None, DLQI03=None))
    assert r["status"] == "not_scored"


def test_none_value_counts_as_unanswered():
    assert score("DLQI", with_(DLQI01=None))["questions_missing"] == 1
    assert score("DLQI", ALL_ZERO | {"DLQI01": None})["questions_missing"] == 1


def test_empty_questionnaire_is_not_scored():
    assert score("DLQI", {})["status"] == "not_scored"


@pytest.mark.parametrize(("total", "band"), [
    (0, "no_effect"), (1, "no_effect"), (2, "small"), (5, "small"), (6, "moderate"), (10, "moderate"),
    (11, "very_large"), (20, "very_large"), (21, "extremely_large"), (30, "extremely_large"),
])
def test_band_boundaries(total, band):
    # Build a questionnaire reaching exactly `total`: fill questions with 3 then the remainder.
    answers = dict(ALL_ZERO)
    simple = ["DLQI01", "DLQI02", "DLQI03", "DLQI04", "DLQI05", "DLQI06", "DLQI08", "DLQI09", "DLQI10"]
    remaining = total
    if remaining >= 3:
        answers["DLQI07A"], answers["DLQI07B"] = "Y", None
        remaining -= 3
    for code in simple:
        step = min(3, remaining)
        answers[code] = str(step)
        remaining -= step
    answers = {k: v for k, v in answers.items() if v is not None}
    r = score("DLQI", answers)
    assert r["total"] == total
    assert r["band"] == band


@pytest.mark.parametrize(("item", "value"), [
    ("DLQI01", "NR"),    # questions 1 and 2 have no 'not relevant'
    ("DLQI02", "4"),
    ("DLQI03", "-1"),
    ("DLQI07A", "0"),
    ("DLQI07B", "3"),    # the second part of question 7 goes to 2 at most
    ("DLQI10", " 1"),
])
def test_values_outside_the_dictionary_raise_naming_the_item(item, value):
    with pytest.raises(ValueError, match=item):
        score("DLQI", with_(**{item: value}))


def test_unknown_item_raises_naming_it():
    with pytest.raises(ValueError, match="DLQI11"):
        score("DLQI", ALL_ZERO | {"DLQI11": "0"})


def test_non_string_value_raises():
    with pytest.raises(ValueError, match="DLQI01"):
        score("DLQI", with_(DLQI01=3))


def test_unknown_instrument_raises():
    with pytest.raises(ValueError, match="SF36"):
        score("SF36", {})
