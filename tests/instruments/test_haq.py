"""HAQ-DI and scleroderma HAQ VAS scoring, worked out by hand from the published rules (Fries 1980,
Steen & Medsger 1997; aids/help adjustment as in the Stanford scoring instructions)."""

import pytest

from proapp.instruments import default_registry, score
from proapp.instruments.scoring import HAQ_CATEGORIES

pytestmark = pytest.mark.requirement("SCORING")

ITEMS = {
    "dressing": ["HAQ_DRESS1", "HAQ_DRESS2"],
    "arising": ["HAQ_ARISE1", "HAQ_ARISE2"],
    "eating": ["HAQ_EAT1", "HAQ_EAT2", "HAQ_EAT3"],
    "walking": ["HAQ_WALK1", "HAQ_WALK2"],
    "hygiene": ["HAQ_HYG1", "HAQ_HYG2", "HAQ_HYG3"],
    "reach": ["HAQ_REACH1", "HAQ_REACH2"],
    "grip": ["HAQ_GRIP1", "HAQ_GRIP2", "HAQ_GRIP3"],
    "activities": ["HAQ_ACT1", "HAQ_ACT2", "HAQ_ACT3"],
}
AIDS = {
    "dressing": ["HAQ_AID_DRESSING"], "arising": ["HAQ_AID_CHAIR"], "eating": ["HAQ_AID_UTENSILS"],
    "walking": ["HAQ_AID_CANE", "HAQ_AID_WALKER", "HAQ_AID_CRUTCHES", "HAQ_AID_WHEELCHAIR"],
    "hygiene": ["HAQ_AID_TOILET_SEAT", "HAQ_AID_BATH_SEAT", "HAQ_AID_BATH_BAR", "HAQ_AID_LONG_BATH"],
    "reach": ["HAQ_AID_REACHER"], "grip": ["HAQ_AID_JAR"], "activities": [],
}
HELP = {"dressing": "HAQ_HELP_DRESS", "arising": "HAQ_HELP_ARISE", "eating": "HAQ_HELP_EAT",
        "walking": "HAQ_HELP_WALK", "hygiene": "HAQ_HELP_HYG", "reach": "HAQ_HELP_REACH",
        "grip": "HAQ_HELP_GRIP", "activities": "HAQ_HELP_ACT"}


def all_items(value: str) -> dict[str, str]:
    return {code: value for codes in ITEMS.values() for code in codes}


OTHER = {"dressing": "HAQ_AID_OTHER_DRESS", "arising": "HAQ_AID_OTHER_ARISE", "eating": "HAQ_AID_OTHER_EAT",
         "walking": "HAQ_AID_OTHER_WALK", "hygiene": "HAQ_AID_OTHER_HYG", "reach": "HAQ_AID_OTHER_REACH",
         "grip": "HAQ_AID_OTHER_GRIP", "activities": "HAQ_AID_OTHER_ACT"}


@pytest.mark.parametrize("version", ["1.0", "1.1"])
def test_the_instrument_file_maps_items_aids_and_help_to_the_categories_of_the_reference(version):
    inst = default_registry().get("HAQ", version)
    for category in HAQ_CATEGORIES:
        in_cat = [i for i in inst.items if i.section == category]
        assert [i.code for i in in_cat if i.role == "activity"] == ITEMS[category]
        other = [OTHER[category]] if version == "1.1" else []       # 1.1: the standard form's "Other" aid
        assert [i.code for i in in_cat if i.role == "aid"] == AIDS[category] + other
        assert [i.code for i in in_cat if i.role == "help"] == [HELP[category]]
        # on the category's screen (1.1: its questions, then its aids, then the help; 1.0: the aids and help)
        on_screen = ITEMS[category] + AIDS[category] + other + [HELP[category]] if version == "1.1" else \
            AIDS[category] + [HELP[category]]
        assert [i.code for i in in_cat if i.screen] == on_screen
        assert len({i.screen for i in in_cat if i.screen}) == 1


def test_version_1_1_keeps_every_1_0_item_word_for_word():
    old, new = default_registry().get("HAQ", "1.0"), default_registry().get("HAQ", "1.1")
    new_items = {i.code: i for i in new.items}
    for item in old.items:      # the wording, options and roles; 1.1 shows a category's items on one screen
        assert new_items[item.code].model_copy(update={"screen": None}) == item.model_copy(update={"screen": None})


@pytest.mark.parametrize("category", HAQ_CATEGORIES)
def test_an_other_aid_counts_in_its_own_category_only(category):
    r = score("HAQ", all_items("1") | {OTHER[category]: "Y"}, version="1.1")
    assert [c for c, s in r["category_scores"].items() if s == 2] == [category]
    assert r["haq_di"] == 1.125 and r["haq_di_without_aids"] == 1.0


def test_no_difficulty_anywhere_is_zero():
    r = score("HAQ", all_items("0"))
    assert (r["status"], r["haq_di"], r["haq_di_without_aids"], r["categories_answered"]) == ("computed", 0.0, 0.0, 8)


def test_unable_everywhere_is_three():
    assert score("HAQ", all_items("3"))["haq_di"] == 3.0


def test_category_score_is_the_highest_item():
    answers = all_items("0") | {"HAQ_EAT1": "1", "HAQ_EAT2": "3", "HAQ_EAT3": "0", "HAQ_GRIP2": "2"}
    r = score("HAQ", answers)
    assert r["category_scores"]["eating"] == 3
    assert r["category_scores"]["grip"] == 2
    # (3 + 2) / 8 = 0.625
    assert r["haq_di"] == 0.625


@pytest.mark.parametrize(("raw", "adjusted"), [(0, 2), (1, 2), (2, 2), (3, 3)])
@pytest.mark.parametrize("category", HAQ_CATEGORIES)
def test_help_raises_a_category_score_of_0_or_1_to_2(category, raw, adjusted):
    answers = all_items("0") | {ITEMS[category][0]: str(raw), HELP[category]: "Y"}
    r = score("HAQ", answers)
    assert r["category_scores"][category] == adjusted
    assert r["category_scores_without_aids"][category] == raw
    assert r["haq_di"] == round(adjusted / 8, 3)
    assert r["haq_di_without_aids"] == round(raw / 8, 3)


@pytest.mark.parametrize("category", [c for c in HAQ_CATEGORIES if AIDS[c]])
def test_every_aid_raises_its_own_category_only(category):
    for aid in AIDS[category]:
        r = score("HAQ", all_items("1") | {aid: "Y"})
        assert r["category_scores"][category] == 2
        assert [c for c, s in r["category_scores"].items() if s == 2] == [category]
        # seven categories at 1 and one at 2: 9 / 8 = 1.125
        assert r["haq_di"] == 1.125
        assert r["haq_di_without_aids"] == 1.0


def test_aid_without_any_answered_item_does_not_answer_the_category():
    answers = all_items("1")
    for code in ITEMS["walking"]:
        del answers[code]
    answers["HAQ_AID_CANE"] = "Y"
    r = score("HAQ", answers)
    assert r["categories_answered"] == 7
    assert r["category_scores"]["walking"] is None
    assert r["haq_di"] == 1.0


def test_a_category_is_answered_when_one_of_its_items_is():
    answers = {"HAQ_DRESS2": "2", "HAQ_ARISE1": "0", "HAQ_EAT3": "1", "HAQ_WALK2": "1",
               "HAQ_HYG1": "0", "HAQ_REACH2": "3"}
    r = score("HAQ", answers)
    assert r["categories_answered"] == 6
    # (2 + 0 + 1 + 1 + 0 + 3) / 6 = 7/6 = 1.1666... -> 1.167
    assert r["haq_di"] == 1.167


def test_seven_categories_divide_by_seven():
    answers = all_items("1")
    for code in ITEMS["activities"]:
        del answers[code]
    answers["HAQ_GRIP1"] = "2"
    r = score("HAQ", answers)
    # (1*6 + 2) / 7 = 8/7 = 1.142857 -> 1.143
    assert (r["categories_answered"], r["haq_di"]) == (7, 1.143)


def test_fewer_than_six_categories_is_not_computed():
    answers = {"HAQ_DRESS1": "1", "HAQ_ARISE1": "1", "HAQ_EAT1": "1", "HAQ_WALK1": "1", "HAQ_HYG1": "1",
               "HAQ_HELP_REACH": "Y", "HAQ_AID_JAR": "Y"}
    r = score("HAQ", answers)
    assert r["status"] == "not_computed"
    assert r["haq_di"] is None
    assert r["haq_di_without_aids"] is None
    assert r["categories_answered"] == 5
    assert r["category_scores"]["reach"] is None


def test_rounding_to_three_decimals_half_up():
    # 6 categories: 1+1+1+1+1+0 = 5/6 = 0.8333 -> 0.833; 8 categories: 11/8 = 1.375 exactly
    six = {"HAQ_DRESS1": "1", "HAQ_ARISE1": "1", "HAQ_EAT1": "1", "HAQ_WALK1": "1", "HAQ_HYG1": "1",
           "HAQ_REACH1": "0"}
    assert score("HAQ", six)["haq_di"] == 0.833
    eight = all_items("1") | {"HAQ_EAT1": "3", "HAQ_GRIP1": "3", "HAQ_ACT1": "2"}
    assert score("HAQ", eight)["haq_di"] == 1.625   # (1*5 + 3 + 3 + 2) / 8 = 13/8


@pytest.mark.parametrize(("mm", "scale"), [(0, 0.0), (1, 0.03), (33, 0.99), (50, 1.5), (67, 2.01), (100, 3.0)])
def test_vas_items_on_0_100_and_0_3(mm, scale):
    codes = ["HAQ_PAIN", "HAQ_GLOBAL", "SHAQ_RAYNAUD", "SHAQ_DU", "SHAQ_GI", "SHAQ_BREATH", "SHAQ_OVERALL"]
    r = score("HAQ", {code: str(mm) for code in codes})
    assert r["vas"] == {code: {"mm": mm, "scale_0_3": scale} for code in codes}


def test_vas_items_are_reported_alone_and_never_enter_the_index():
    r = score("HAQ", all_items("0") | {"HAQ_PAIN": "100", "SHAQ_GI": "80"})
    assert r["haq_di"] == 0.0
    assert set(r["vas"]) == {"HAQ_PAIN", "SHAQ_GI"}


@pytest.mark.parametrize(("item", "value"), [
    ("HAQ_DRESS1", "4"), ("HAQ_AID_CANE", "N"), ("HAQ_HELP_EAT", "1"), ("HAQ_PAIN", "101"),
    ("HAQ_PAIN", "-1"), ("HAQ_PAIN", "50.5"), ("SHAQ_GI", "007"), ("HAQ_AID_OTHER", "Y"),
])
def test_bad_values_raise_naming_the_item(item, value):
    with pytest.raises(ValueError, match=item):
        score("HAQ", {item: value})
