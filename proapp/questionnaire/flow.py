"""The questionnaire flow as pure functions: which screens a patient sees, in which order, and which is next.

A screen shows one question, or the items an instrument file groups on one screen (the HAQ aids and help
checklists, one ulcer's details). Branching follows ``show_if``; a repeating group (new ulcers) shows one
screen per repeat followed by "another one?", up to its maximum.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from proapp.instruments import Instrument, Item
from proapp.instruments.schema import Group

AnswerKey = tuple[str, int]               # (item code, repeat index: 0 outside a group)
Answers = Mapping[AnswerKey, str]


@dataclass(frozen=True)
class Screen:
    key: str
    instrument: Instrument
    items: tuple[Item, ...] = ()
    repeat: int = 0
    group: Group | None = None
    asks_more: bool = False               # the "another one?" question after a repeat of a group

    @property
    def code(self) -> str:
        return self.instrument.code


def _visible(condition: Mapping[str, str] | None, answers: Answers) -> bool:
    return all(answers.get((ref, 0)) == value for ref, value in (condition or {}).items())


def group_more(state: Mapping[str, Any] | None, group: str) -> dict[str, str]:
    return dict(((state or {}).get("groups") or {}).get(group, {}).get("more", {}))


# The screens of an instrument depend only on the answers its conditions refer to and on the "another one?"
# answers of its groups: computed once per such combination (every page and answer asks for them).
_MEMO_SIZE = 1024
_memos: dict[tuple[str, str], tuple[Instrument, tuple[str, ...], dict[Any, tuple[Screen, ...]]]] = {}


def _memo_of(inst: Instrument) -> tuple[tuple[str, ...], dict[Any, tuple[Screen, ...]]]:
    found = _memos.get((inst.code, inst.version))
    if found is None or found[0] is not inst:         # another registry (tests) loaded the same version
        refs = {ref for item in inst.items for ref in (item.show_if or {})}
        refs |= {ref for group in inst.groups for ref in (group.show_if or {})}
        found = _memos[(inst.code, inst.version)] = (inst, tuple(sorted(refs)), {})
    return found[1], found[2]


def instrument_screens(inst: Instrument, answers: Answers, state: Mapping[str, Any] | None) -> list[Screen]:
    refs, memo = _memo_of(inst)
    key = (tuple(answers.get((ref, 0)) for ref in refs),
           tuple(tuple(sorted(group_more(state, g.code).items())) for g in inst.groups))
    screens = memo.get(key)
    if screens is None:
        if len(memo) >= _MEMO_SIZE:
            memo.clear()
        screens = memo[key] = tuple(_instrument_screens(inst, answers, state))
    return list(screens)


def _instrument_screens(inst: Instrument, answers: Answers, state: Mapping[str, Any] | None) -> list[Screen]:
    screens: list[Screen] = []
    done_groups: set[str] = set()
    i = 0
    items = inst.items
    while i < len(items):
        item = items[i]
        if item.group:
            if item.group not in done_groups:
                done_groups.add(item.group)
                screens.extend(_group_screens(inst, inst.group(item.group), answers, state))
            i += 1
            continue
        if item.screen:
            members = [item]
            while i + 1 < len(items) and items[i + 1].screen == item.screen and not items[i + 1].group:
                i += 1
                members.append(items[i])
            shown = tuple(m for m in members if _visible(m.show_if, answers))
            if shown:
                screens.append(Screen(key=f"{inst.code}.{item.screen}", instrument=inst, items=shown))
        elif _visible(item.show_if, answers):
            screens.append(Screen(key=f"{inst.code}.{item.code}", instrument=inst, items=(item,)))
        i += 1
    return screens


def _group_screens(inst: Instrument, group: Group, answers: Answers, state: Mapping[str, Any] | None) -> list[Screen]:
    if not _visible(group.show_if, answers):
        return []
    members = tuple(i for i in inst.items if i.group == group.code)
    more = group_more(state, group.code)
    screens = []
    n = 1
    while True:
        screens.append(Screen(key=f"{inst.code}.{group.code}.{n}", instrument=inst, items=members, repeat=n,
                              group=group))
        if n >= group.max_repeats:
            break
        screens.append(Screen(key=f"{inst.code}.{group.code}-more.{n}", instrument=inst, repeat=n, group=group,
                              asks_more=True))
        if more.get(str(n)) != "Y":
            break
        n += 1
    return screens


def build_flow(instruments: list[Instrument], answers: Mapping[str, Answers],
               states: Mapping[str, Mapping[str, Any] | None]) -> list[Screen]:
    flow: list[Screen] = []
    for inst in instruments:
        flow.extend(instrument_screens(inst, answers.get(inst.code, {}), states.get(inst.code)))
    return flow


def is_answered(screen: Screen, answers: Answers, state: Mapping[str, Any] | None) -> bool:
    if screen.asks_more:
        return group_more(state, screen.group.code).get(str(screen.repeat)) in ("Y", "N")  # type: ignore[union-attr]
    needed = [i for i in screen.items if i.type != "check"]
    if needed:
        return all((i.code, screen.repeat) in answers for i in needed)
    return screen.key in ((state or {}).get("seen") or [])


def first_unanswered(flow: list[Screen], answers: Mapping[str, Answers],
                     states: Mapping[str, Mapping[str, Any] | None]) -> Screen | None:
    for screen in flow:
        if not is_answered(screen, answers.get(screen.code, {}), states.get(screen.code)):
            return screen
    return None


def visible_keys(flow: list[Screen]) -> dict[str, set[AnswerKey]]:
    """The answer keys each instrument's flow can hold; anything else is stale (a branch since closed)."""
    keys: dict[str, set[AnswerKey]] = {}
    for screen in flow:
        for item in screen.items:
            keys.setdefault(screen.code, set()).add((item.code, screen.repeat))
    return keys


def as_scoring_answers(answers: Answers) -> dict[str, str]:
    """{(code, n): v} -> the scoring interface's {"CODE": v, "CODE[n]": v}."""
    return {(f"{code}[{rep}]" if rep else code): value for (code, rep), value in answers.items()}
