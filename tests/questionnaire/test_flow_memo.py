"""An instrument's screens and progress steps are remembered per combination of what decides them (the answers its
conditions read, the "another one?" answers, the features, situations and ulcers followed): whatever the answers,
the context and the order they come in, the remembered screens are those computed afresh."""

from __future__ import annotations

from datetime import date

from hypothesis import given, settings
from hypothesis import strategies as st

from proapp.instruments.registry import load_directory
from proapp.instruments.ulcers import KnownUlcer, UlcerContext
from proapp.questionnaire import flow

INSTRUMENTS = load_directory().all()
ULCERS = (KnownUlcer(1, "L", "2", "TIP", last_open_on=date(2026, 3, 1)),
          KnownUlcer(2, "R", "3", "PIP", healed=True), KnownUlcer(3, "R", "1", "TIP", staff_noted=True))


def _choices(item) -> list[str]:
    if item.type == "choice":
        return [o.value for o in item.option_list]
    if item.type == "check":
        return ["Y"]
    return ["0", "50", "100"] if item.type == "vas" else ["2026-11-01"]


@st.composite
def cases(draw):
    inst = draw(st.sampled_from(INSTRUMENTS))
    answers = {}
    for item in inst.items:
        if draw(st.booleans()):
            repeat = draw(st.integers(1, 3)) if item.group else 0
            answers[(item.code, repeat)] = draw(st.sampled_from(_choices(item)))
    groups = {g.code: {"more": {str(n): draw(st.sampled_from(["Y", "N"])) for n in range(1, draw(st.integers(0, 4)))}}
              for g in inst.groups}
    features = frozenset(draw(st.sets(st.sampled_from(sorted(inst.features) or ["none"]))))
    situations = frozenset(draw(st.sets(st.sampled_from(["first_entry", "known_ulcers"]))))
    ulcers = None
    if draw(st.booleans()):
        known = tuple(draw(st.lists(st.sampled_from(ULCERS), unique=True)))
        unconfirmed = tuple(u.number for u in known if u.staff_noted and draw(st.booleans()))
        ulcers = UlcerContext(known, unconfirmed, anchor=date(2026, 3, 2), fixed={1: ("new", 4)}, last_number=4)
    return inst, answers, {"groups": groups, "seen": []}, flow.Context(features, situations, ulcers)


@settings(max_examples=200, deadline=None)
@given(st.lists(cases(), min_size=1, max_size=6))
def test_remembered_screens_and_steps_are_those_computed_afresh(drawn):
    for inst, answers, state, context in drawn + drawn:        # each case twice: computed, then remembered
        assert flow.instrument_screens(inst, answers, state, context) == \
            flow._compute_screens(inst, answers, state, context)
        fresh = flow._memo_steps.__wrapped__(inst, flow._more_key(inst, state), *flow._context_key(context))
        assert flow.progress_steps(inst, state, context) == fresh


def test_another_instrument_file_with_the_same_code_and_version_gets_its_own_screens():
    inst = next(i for i in INSTRUMENTS if len(i.items) > 2 and not i.groups)
    first = flow.instrument_screens(inst, {}, None)
    changed = inst.model_copy(update={"items": inst.items[:-1]})       # a test's registry, one item fewer
    assert (changed.code, changed.version) == (inst.code, inst.version)
    screens = flow.instrument_screens(changed, {}, None)
    assert all(s.instrument is changed for s in screens)
    assert [s.key for s in screens] == [s.key for s in flow._compute_screens(changed, {}, None)] != \
        [s.key for s in first]


def test_a_remembered_list_changed_by_its_caller_does_not_change_the_next_one():
    inst = INSTRUMENTS[0]
    first = flow.instrument_screens(inst, {}, None)
    count = len(first)
    first.clear()
    assert len(flow.instrument_screens(inst, {}, None)) == count
