"""The ulcer registry and the derived values of the diary 2.0 and the baseline inventory, worked by hand.

The story: the injection is on 1 March. The team noted ulcer 1 (left index, fingertip), treated. At baseline the
patient confirms it, reports it again, and reports a second one (right middle, fingertip). Week 1: ulcer 1 still
open, ulcer 2 closed on 11 March but open again at the same place the same week (not healed: no days to healing),
and a third one (right little finger, over a calcinosis: followed, but not a new digital ulcer as the protocol
counts them). Week 2 is skipped. Week 3: ulcer 1 closed on 20 March (19 days); ulcer 2 closed on 18 March; ulcer 3
still open; two new ulcers reported at one place (two ulcers: a report is never merged away).
"""

from dataclasses import replace
from datetime import date

import pytest

from proapp.instruments import default_registry, derived_group_values, derived_values, score
from proapp.instruments.ulcers import (
    AGAIN,
    CLOSED,
    CONFIRMED,
    NEW,
    RECURRENCE,
    RELOCATED,
    Decision,
    Entry,
    KnownUlcer,
    Noted,
    UlcerContext,
    classify,
    context_from_json,
    context_of,
    context_to_json,
    courses,
    decided,
    reports_of,
)

INJECTION = date(2026, 3, 1)
STAFF = Noted(1, "L", "2", "TIP", treated=True, staff_noted=True, noted_on=date(2026, 2, 27))


def ulcer(k, hand, finger, site, onset="2026-03-05"):
    out = {f"DU_HAND[{k}]": hand, f"DU_FINGER[{k}]": finger, f"DU_SITE[{k}]": site}
    return out | ({f"DU_ONSET[{k}]": onset} if onset else {})


def week(answers, ctx, **extra):
    base = {"DU_INFECT": "N", "DU_ANTIBIO": "N", "DU_NECROSIS": "N", "DU_HOSPITAL": "N", "DU_SURGERY": "N",
            "DU_INJECTED": "N"}
    return score("DU_DIARY", {**base, **answers, **extra}, "2.0", context=ctx)


def groups_of(answers):
    out = {}
    for key, value in answers.items():
        if "[" in key:
            code, k = key[:-1].split("[")
            group = {"DU_CONFIRM_OK": "DU_CONFIRM", "DU_KNOWN_CLOSED": "DU_KNOWN",
                     "DU_KNOWN_CLOSED_ON": "DU_KNOWN"}.get(code, "DU_ULCER")
            out.setdefault(group, {}).setdefault(int(k), {})[code] = value
    return out


def test_the_baseline_confirms_the_noted_ulcer_and_adds_the_others():
    ctx = context_of(courses([STAFF], []), INJECTION)
    assert ctx.unconfirmed == (1,) and ctx.followed == ()          # asked to confirm, not followed yet
    answers = {"DU_CONFIRM_OK[1]": "Y", "DU_BL_ANY": "Y", **ulcer(1, "L", "2", "TIP", None),
               **ulcer(2, "R", "3", "TIP", None)}
    r = score("DU_BASELINE", answers, context=ctx)
    assert (r["baseline_ulcer_count"], r["not_confirmed_count"]) == (2, 0)
    assert r["groups"]["DU_ULCER"] == {"1": {"ulcer_number": 1, "report_kind": AGAIN},
                                       "2": {"ulcer_number": 2, "report_kind": NEW}}


def test_a_noted_ulcer_the_patient_does_not_confirm_stays_followed_with_a_dispute():
    ctx = context_of(courses([STAFF], []), INJECTION)
    r = score("DU_BASELINE", {"DU_CONFIRM_OK[1]": "N", "DU_BL_ANY": "Y", "DU_HAND[1]": "L", "DU_FINGER[1]": "2",
                              "DU_SITE[1]": "TIP"}, context=ctx)
    # Reported by the patient at that place: a new ulcer (number 2), not the noted one they said was wrong.
    assert (r["baseline_ulcer_count"], r["not_confirmed_count"]) == (1, 1)
    assert r["groups"]["DU_ULCER"]["1"] == {"ulcer_number": 2, "report_kind": NEW}
    course = courses([STAFF], [Entry("W0", INJECTION, groups_of({"DU_CONFIRM_OK[1]": "N"}), {})])
    # Never dropped silently: followed by the diary (not asked to confirm again) until the team decides.
    assert course[0].confirmed is False and course[0].disputed == ("W0", INJECTION)
    ctx = context_of(course, INJECTION)
    assert [u.number for u in ctx.followed] == [1] and ctx.unconfirmed == ()


def test_the_teams_decisions_resolve_the_dispute_relocate_and_close():
    disputed = courses([STAFF], [Entry("W0", INJECTION, groups_of({"DU_CONFIRM_OK[1]": "N"}), {})])
    confirmed = decided(disputed, [Decision(1, CONFIRMED)])
    assert confirmed[0].resolution == CONFIRMED and [u.place for u in context_of(confirmed, INJECTION).followed] == [
        ("L", "2", "TIP")]
    moved = decided(disputed, [Decision(1, RELOCATED, ("L", "3", "PERI"))])
    assert moved[0].resolution == RELOCATED
    assert [u.place for u in context_of(moved, INJECTION).followed] == [("L", "3", "PERI")]
    closed = decided(disputed, [Decision(1, CLOSED, closed_on=date(2026, 3, 4))])
    ctx = context_of(closed, INJECTION)
    # Closed: followed no more, its number never given again, and its closing is not a healing.
    assert ctx.followed == () and ctx.next_number == 2
    assert closed[0].closed_on == date(2026, 3, 4) and closed[0].days_to_healing(INJECTION) is None
    # An ulcer closed without a dispute has no resolution; a later decision does not rewrite the first one.
    plain = decided(courses([STAFF], []), [Decision(1, CLOSED, closed_on=date(2026, 3, 4))])
    assert plain[0].resolution is None and context_of(plain, INJECTION).unconfirmed == ()
    twice = decided(disputed, [Decision(1, CONFIRMED), Decision(1, CLOSED, closed_on=date(2026, 3, 9))])
    assert twice[0].resolution == CONFIRMED and twice[0].closed_on == date(2026, 3, 9)


BASELINE = {"DU_CONFIRM_OK[1]": "Y", "DU_BL_ANY": "Y", **ulcer(1, "L", "2", "TIP", None),
            **ulcer(2, "R", "3", "TIP", None)}
W1 = {"DU_KNOWN_CLOSED[1]": "N", "DU_KNOWN_CLOSED[2]": "Y", "DU_KNOWN_CLOSED_ON[2]": "2026-03-11", "DU_NEW": "Y",
      **ulcer(1, "R", "3", "TIP", "2026-03-13"), **ulcer(2, "R", "5", "CALC", "2026-03-12")}
W3 = {"DU_KNOWN_CLOSED[1]": "Y", "DU_KNOWN_CLOSED_ON[1]": "2026-03-20", "DU_KNOWN_CLOSED[2]": "Y",
      "DU_KNOWN_CLOSED_ON[2]": "2026-03-18", "DU_KNOWN_CLOSED[3]": "N", "DU_NEW": "Y",
      **ulcer(1, "L", "4", "PERI", "2026-03-19"), **ulcer(2, "L", "4", "PERI", "2026-03-19")}


def registry_after(*entries):
    """Fold the story's entries as the app does: new reports become ulcers of the registry."""
    noted, done = [STAFF], []
    for visit, on, answers, scores in entries:
        reports = reports_of(scores)
        groups = groups_of(answers)
        for k, (kind, n) in reports.items():
            u = groups["DU_ULCER"][k]
            if kind == NEW:
                noted.append(Noted(n, u["DU_HAND"], u["DU_FINGER"], u["DU_SITE"], False, False, on, visit))
        done.append(Entry(visit, on, groups, reports))
    return courses(noted, done)


def test_week_one_follows_the_known_ulcers_and_tells_recurrence_from_new():
    bl = score("DU_BASELINE", BASELINE, context=context_of(courses([STAFF], []), INJECTION))
    ctx = context_of(registry_after(("W0", date(2026, 2, 28), BASELINE, bl)), INJECTION)
    assert [u.number for u in ctx.followed] == [1, 2] and ctx.unconfirmed == ()
    r = week(W1, ctx)
    assert r["groups"]["DU_KNOWN"] == {}              # ulcer 2 closed on 11 March, but open again in this entry
    assert r["groups"]["DU_ULCER"] == {"1": {"ulcer_number": 2, "report_kind": RECURRENCE},
                                       "2": {"ulcer_number": 3, "report_kind": NEW}}
    # Ulcer 2 closed and open again in the same entry is not counted healed; open now: 1, 2 and 3; treated: 1.
    # Ulcer 3 is over a calcinosis: not a new digital ulcer, and a recurrence is no new ulcer's finger either.
    assert (r["new_ulcer_count"], r["recurrent_ulcer_count"], r["healed_ulcer_count"], r["active_ulcer_count"],
            r["treated_active_count"], r["fingers_affected"]) == (0, 1, 0, 3, 1, [])


def test_a_skipped_week_keeps_following_and_week_three_heals_and_dedups():
    bl = score("DU_BASELINE", BASELINE, context=context_of(courses([STAFF], []), INJECTION))
    after_bl = [("W0", date(2026, 2, 28), BASELINE, bl)]
    w1 = week(W1, context_of(registry_after(*after_bl), INJECTION))
    after_w1 = registry_after(*after_bl, ("W1", date(2026, 3, 14), W1, w1))
    by_number = {c.ulcer.number: c for c in after_w1}
    assert (by_number[2].healed, by_number[2].reopened, by_number[2].first_healed_on) == (False, 1, date(2026, 3, 11))
    assert by_number[3].ulcer.site == "CALC"
    ctx = context_of(after_w1, INJECTION)             # week 2 skipped: the same ulcers are asked about in week 3
    assert [u.number for u in ctx.followed] == [1, 2, 3]
    assert {u.number: u.last_open_on for u in ctx.followed} == {1: date(2026, 3, 14), 2: date(2026, 3, 14),
                                                                  3: date(2026, 3, 14)}
    r = week(W3, ctx)
    assert r["groups"]["DU_KNOWN"] == {"1": {"days_to_healing": 19}, "2": {"days_to_healing": 17}}
    # Two new ulcers reported at one place: two ulcers (4 and 5), both counted; none is lost.
    assert r["groups"]["DU_ULCER"] == {"1": {"ulcer_number": 4, "report_kind": NEW},
                                       "2": {"ulcer_number": 5, "report_kind": NEW}}
    assert (r["new_ulcer_count"], r["recurrent_ulcer_count"], r["healed_ulcer_count"], r["active_ulcer_count"],
            r["treated_active_count"], r["fingers_affected"]) == (2, 0, 2, 3, 0, ["L4"])
    final = {c.ulcer.number: c for c in registry_after(*after_bl, ("W1", date(2026, 3, 14), W1, w1),
                                                       ("W3", date(2026, 3, 28), W3, r))}
    assert final[1].days_to_healing(INJECTION) == 19 and final[1].ulcer.treated
    assert final[2].healed and final[2].days_to_healing(INJECTION) == 17 and final[2].reopened == 1
    assert not final[3].healed and not final[4].healed and not final[5].healed


def test_the_derived_values_come_out_by_code_and_by_repeat():
    ctx = UlcerContext(known=(KnownUlcer(1, "L", "2", "TIP", treated=True),), anchor=INJECTION)
    r = week({"DU_KNOWN_CLOSED[1]": "Y", "DU_KNOWN_CLOSED_ON[1]": "2026-03-09", "DU_NEW": "N"}, ctx)
    inst = default_registry().get("DU_DIARY", "2.0")
    values = derived_values(inst, r)
    assert (values["HEALED_ULCER_COUNT"], values["ACTIVE_ULCER_COUNT"], values["TREATED_ACTIVE_COUNT"]) == (1, 0, 0)
    assert "DAYS_TO_HEALING" not in values
    assert derived_group_values(inst, r) == {"DU_KNOWN": {1: {"DAYS_TO_HEALING": 8}}}


def test_without_a_registry_every_report_is_new():
    r = week({"DU_NEW": "Y", **ulcer(1, "L", "1", "TIP"), **ulcer(2, "L", "1", "TIP")}, None)
    assert (r["new_ulcer_count"], r["groups"]["DU_ULCER"]["2"]["report_kind"]) == (2, NEW)


def test_ten_new_ulcers_at_one_place_are_ten_and_raise_the_alert_calcinosis_ones_do_not():
    from proapp.alerts.rules import evaluate, values_of
    from proapp.studies.catalog import DATA_DIR, DEMO_CONTACTS, load_studies

    registry = default_registry()
    inst = registry.get("DU_DIARY", "2.0")
    rules = [r for r in load_studies(DATA_DIR, registry, DEMO_CONTACTS, demo_contacts=True).get("ADUSE").alerts.rules
             if r.code == "DU_NEW_ULCERS"]

    def alerted(scores) -> bool:
        return bool(evaluate(rules, {"DU_DIARY": values_of(inst, {}, scores)}, {}))

    r = week({"DU_NEW": "Y", **{k: v for n in range(1, 11) for k, v in ulcer(n, "L", "2", "TIP").items()}}, None)
    assert r["new_ulcer_count"] == 10 and sorted(v["ulcer_number"] for v in r["groups"]["DU_ULCER"].values()) == \
        list(range(1, 11))
    assert alerted(r)
    calc = week({"DU_NEW": "Y", **ulcer(1, "L", "2", "CALC"), **ulcer(2, "R", "3", "CALC"),
                 **ulcer(3, "R", "4", "TIP")}, None)
    assert (calc["new_ulcer_count"], calc["fingers_affected"]) == (1, ["R4"]) and not alerted(calc)


def test_days_to_healing_of_an_ulcer_that_appeared_after_the_injection_count_from_its_onset():
    later = Noted(2, "R", "3", "TIP", False, False, date(2026, 3, 14), "W2", onset=date(2026, 3, 10))
    ctx = context_of(courses([STAFF, later], []), INJECTION)
    r = week({"DU_KNOWN_CLOSED[1]": "Y", "DU_KNOWN_CLOSED_ON[1]": "2026-03-20", "DU_KNOWN_CLOSED[2]": "Y",
              "DU_KNOWN_CLOSED_ON[2]": "2026-03-20", "DU_NEW": "N"},
             replace(ctx, unconfirmed=()))
    # Ulcer 1 (noted before the injection): from the injection, 19 days; ulcer 2 (appeared 10 March): 10 days.
    assert r["groups"]["DU_KNOWN"] == {"1": {"days_to_healing": 19}, "2": {"days_to_healing": 10}}
    assert context_from_json(context_to_json(ctx)).ulcer(2).onset == date(2026, 3, 10)


def test_a_correction_keeps_the_numbers_given_at_completion():
    ctx = UlcerContext(known=(KnownUlcer(1, "L", "2", "TIP"),), anchor=INJECTION)
    first = week({"DU_KNOWN_CLOSED[1]": "N", "DU_NEW": "Y", **ulcer(1, "R", "2", "TIP")}, ctx)
    assert first["groups"]["DU_ULCER"]["1"] == {"ulcer_number": 2, "report_kind": NEW}
    again = context_from_json(context_to_json(ctx), reports_of(first))
    assert again.known == ctx.known and again.anchor == INJECTION
    # The finger corrected to the left index: still ulcer 2 (not "reported again" of ulcer 1).
    corrected = week({"DU_KNOWN_CLOSED[1]": "N", "DU_NEW": "Y", **ulcer(1, "L", "2", "TIP")}, again)
    assert corrected["groups"]["DU_ULCER"]["1"] == {"ulcer_number": 2, "report_kind": NEW}


def test_classify_at_a_place_closed_in_the_same_entry_is_a_recurrence():
    ctx = UlcerContext(known=(KnownUlcer(1, "L", "2", "TIP"),))
    assert classify(ctx, {1: ("L", "2", "TIP")}) == {1: (AGAIN, 1)}
    assert classify(ctx, {1: ("L", "2", "TIP")}, closed_now=[1]) == {1: (RECURRENCE, 1)}


def test_a_closing_day_before_the_ulcer_was_last_open_is_refused_by_the_screen():
    item = default_registry().get("DU_DIARY", "2.0").item("DU_KNOWN_CLOSED_ON")
    assert item.earliest == "ulcer_last_open" and item.show_if == {"DU_KNOWN_CLOSED": "Y"}


@pytest.mark.parametrize(("answers", "worst", "severe"), [
    ({"TOL_NAUSEA": "0", "TOL_FATIGUE": "1", "TOL_RASH": "N"}, 1, 0),
    ({"TOL_NAUSEA": "3", "TOL_DIARRHEA": "4", "TOL_RASH": "Y", "TOL_RASH_SEV": "2"}, 4, 2),
    ({"TOL_RASH": "Y", "TOL_RASH_SEV": "3"}, 3, 1),
])
def test_tolerance_worst_grade_and_severe_count(answers, worst, severe):
    assert score("TOLERANCE", answers) == {"status": "scored", "worst": worst, "severe_count": severe}


def test_tolerance_unanswered_and_rash_alone_are_not_scored():
    assert score("TOLERANCE", {"TOL_RASH": "N"})["status"] == "not_scored"
    assert score("TOLERANCE", {})["worst"] is None


def test_tolerance_marks_its_sources():
    inst = default_registry().get("TOLERANCE")
    ctcae = [i.code for i in inst.items if i.source and i.source.startswith("PRO-CTCAE v1.0:")]
    specific = [i.code for i in inst.items if i.study_specific]
    assert set(ctcae) | set(specific) == {i.code for i in inst.items} and not set(ctcae) & set(specific)
    assert specific == ["TOL_EYE_SWELL", "TOL_CRAMPS", "TOL_WEIGHT_GAIN", "TOL_RASH_SEV", "TOL_BLEEDING", "TOL_FEVER"]
    assert not inst.languages["fr"].validated
