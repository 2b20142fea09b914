"""The ulcer diary's version 2.2 (issue 30): its first entry asks about the ulcers new since the questionnaire before
the injection, and one that appeared before the injection is not a new ulcer of the follow-up."""

from __future__ import annotations

from datetime import date

from proapp.instruments import default_registry, score
from proapp.instruments.ulcers import UlcerContext

INJECTION = date(2026, 3, 20)


def _reports(*onsets: str) -> dict[str, str]:
    answers = {"DU_NEW": "Y", "DU_INFECT": "N"}
    for n, onset in enumerate(onsets, start=1):
        answers |= {f"DU_HAND[{n}]": "L", f"DU_FINGER[{n}]": str(n + 2), f"DU_SITE[{n}]": "TIP",
                    f"DU_ONSET[{n}]": onset}
    return answers


def test_an_ulcer_that_appeared_before_the_injection_is_followed_but_not_new():
    ctx = UlcerContext(anchor=INJECTION)
    s = score("DU_DIARY", _reports("2026-03-18", "2026-03-20", "2026-03-24"), version="2.2", context=ctx)
    # The day before the injection: there at the injection; on the day of the injection and after: new.
    assert (s["new_ulcer_count"], s["before_injection_count"], s["active_ulcer_count"]) == (2, 1, 3)
    assert s["fingers_affected"] == ["L4", "L5"]
    assert [v["report_kind"] for v in s["groups"]["DU_ULCER"].values()] == ["new"] * 3   # each gets its number
    # Version 2.1 scores as it did for the responses given with it.
    old = score("DU_DIARY", _reports("2026-03-18"), version="2.1", context=ctx)
    assert old["new_ulcer_count"] == 1 and "before_injection_count" not in old


def test_the_first_entry_asks_since_the_questionnaire_before_the_injection():
    inst = default_registry().get("DU_DIARY", "2.2")
    first = inst.item("DU_NEW").text_for("en", situation="first_entry")
    assert first == "Since your questionnaire before the injection, has a new ulcer appeared on one of your fingers?"
    assert inst.item("DU_NEW").text_for("fr", situation="first_entry").startswith(
        "Depuis votre questionnaire d'avant l'injection")
    assert "BEFORE_INJECTION_COUNT" in {d.code for d in inst.derived}
