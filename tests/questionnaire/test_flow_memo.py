"""The screens of an instrument are remembered per combination of the answers that decide them: whatever the
answers and the order they come in, the remembered screens are those computed afresh."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from proapp.instruments.registry import load_directory
from proapp.questionnaire import flow

INSTRUMENTS = load_directory().all()


def _choices(item) -> list[str]:
    if item.type == "choice":
        return [o.value for o in item.option_list]
    if item.type == "check":
        return ["Y"]
    return ["0", "50", "100"] if item.type == "vas" else ["2026-11-01"]


@st.composite
def answers_and_state(draw):
    inst = draw(st.sampled_from(INSTRUMENTS))
    answers = {}
    for item in inst.items:
        if draw(st.booleans()):
            repeat = draw(st.integers(1, 3)) if item.group else 0
            answers[(item.code, repeat)] = draw(st.sampled_from(_choices(item)))
    groups = {g.code: {"more": {str(n): draw(st.sampled_from(["Y", "N"])) for n in range(1, draw(st.integers(0, 4)))}}
              for g in inst.groups}
    return inst, answers, {"groups": groups, "seen": []}


@settings(max_examples=300, deadline=None)
@given(st.lists(answers_and_state(), min_size=1, max_size=6))
def test_remembered_screens_are_the_screens_computed_afresh(cases):
    for inst, answers, state in cases + cases:            # each case twice: computed, then remembered
        assert flow.instrument_screens(inst, answers, state) == flow._instrument_screens(inst, answers, state)


def test_another_registry_with_the_same_instrument_version_gets_its_own_screens():
    inst = INSTRUMENTS[0]
    first = flow.instrument_screens(inst, {}, None)
    again = load_directory().get(inst.code, inst.version)
    assert again is not inst
    screens = flow.instrument_screens(again, {}, None)
    assert all(s.instrument is again for s in screens) and len(screens) == len(first)
