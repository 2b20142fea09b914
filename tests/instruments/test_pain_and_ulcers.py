"""Pain VAS and the digital-ulcer diary's version 1.0 (kept for the responses given with it)."""

import pytest

from proapp.instruments import score

pytestmark = pytest.mark.requirement("SCORING")


def diary1(answers):
    return score("DU_DIARY", answers, "1.0")


@pytest.mark.parametrize("mm", [0, 1, 57, 100])
def test_pain_vas_reports_the_mark(mm):
    assert score("PAIN_VAS", {"PAIN_VAS": str(mm)}) == {"status": "scored", "pain": mm}


def test_pain_vas_unanswered_is_not_scored():
    assert score("PAIN_VAS", {}) == {"status": "not_scored", "pain": None}
    assert score("PAIN_VAS", {"PAIN_VAS": None}) == {"status": "not_scored", "pain": None}


@pytest.mark.parametrize("value", ["101", "-5", "1e2", "", "abc", "50 "])
def test_pain_vas_out_of_range(value):
    with pytest.raises(ValueError, match="PAIN_VAS"):
        score("PAIN_VAS", {"PAIN_VAS": value})


def test_no_new_ulcer():
    r = diary1({"DU_NEW": "N", "DU_PAIN": "20", "DU_INFECT": "N", "DU_ANTIBIO": "N",
                           "DU_HEALED": "NA"})
    assert r == {"status": "scored", "new_ulcer_count": 0, "fingers_affected": [], "infection_signs": False,
                 "pain": 20}


def test_two_new_ulcers_give_count_and_fingers():
    r = diary1({
        "DU_NEW": "Y",
        "DU_HAND[1]": "R", "DU_FINGER[1]": "3", "DU_SITE[1]": "TIP", "DU_ONSET[1]": "2026-11-18",
        "DU_HAND[2]": "L", "DU_FINGER[2]": "2", "DU_SITE[2]": "DORSAL", "DU_ONSET[2]": "2026-11-20",
        "DU_PAIN": "64", "DU_INFECT": "Y", "DU_ANTIBIO": "Y", "DU_HEALED": "N",
    })
    assert r["new_ulcer_count"] == 2
    assert r["fingers_affected"] == ["L2", "R3"]
    assert r["infection_signs"] is True
    assert r["pain"] == 64


def test_two_ulcers_on_the_same_finger_count_twice_but_list_the_finger_once():
    r = diary1({"DU_NEW": "Y", "DU_HAND[1]": "L", "DU_FINGER[1]": "1",
                           "DU_HAND[2]": "L", "DU_FINGER[2]": "1"})
    assert (r["new_ulcer_count"], r["fingers_affected"]) == (2, ["L1"])


def test_ulcer_group_is_ignored_when_no_new_ulcer():
    r = diary1({"DU_NEW": "N", "DU_HAND[1]": "L", "DU_FINGER[1]": "1"})
    assert (r["new_ulcer_count"], r["fingers_affected"]) == (0, [])


def test_unanswered_diary_is_not_scored():
    assert diary1({})["status"] == "not_scored"


@pytest.mark.parametrize(("key", "value", "named"), [
    ("DU_HAND[1]", "X", "DU_HAND"),
    ("DU_FINGER[1]", "6", "DU_FINGER"),
    ("DU_SITE[1]", "PALM", "DU_SITE"),
    ("DU_ONSET[1]", "2026-02-30", "DU_ONSET"),
    ("DU_ONSET[1]", "18/11/2026", "DU_ONSET"),
    ("DU_HAND[11]", "L", "DU_HAND"),          # at most 10 ulcers
    ("DU_HAND[0]", "L", "DU_HAND"),
    ("DU_HAND", "L", "DU_HAND"),              # a group item needs its repeat index
    ("DU_NEW[1]", "Y", "DU_NEW"),             # a plain item takes none
    ("DU_HEALED", "MAYBE", "DU_HEALED"),
    ("DU_ULCERS", "1", "DU_ULCERS"),
])
def test_diary_bad_input_raises_naming_the_item(key, value, named):
    with pytest.raises(ValueError, match=named):
        diary1({"DU_NEW": "Y", key: value})
