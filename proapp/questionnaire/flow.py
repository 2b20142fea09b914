"""The questionnaire flow as pure functions: which screens a patient sees, in which order, and which is next.

A screen shows one question, or the items an instrument file groups on one screen (the HAQ aids and help
checklists). Branching follows ``show_if``; a repeating group (new ulcers) shows its screens for each repeat
followed by "another one?", up to its maximum; a registry group (the ulcers followed until they heal) shows them
for each ulcer the context names.

Every page and answer asks for the screens, so an instrument's screens are computed once per combination of what
they depend on (``functools.lru_cache``): the answers its conditions read, its groups' "another one?" answers, the
study's features, the situations and the ulcers followed. A hypothesis test compares with fresh computation.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from types import MappingProxyType
from typing import Any

from proapp.instruments import Instrument, Item
from proapp.instruments.schema import Group
from proapp.instruments.ulcers import KnownUlcer, UlcerContext

AnswerKey = tuple[str, int]               # (item code, repeat index: 0 outside a group)
Answers = Mapping[AnswerKey, str]


@dataclass(frozen=True)
class Context:
    """What the questionnaire knows of the patient when it opens, beside the answers: the optional parts the
    study switched on, the situations that change a wording (the diary's first entry), and the ulcer registry."""

    features: frozenset[str] = frozenset()
    situations: frozenset[str] = frozenset()
    ulcers: UlcerContext | None = None
    grouped: bool = True                  # the instrument file's ``screen`` groups kept (a study may split them)


NO_CONTEXT = Context()


@dataclass(frozen=True)
class Screen:
    key: str
    instrument: Instrument
    items: tuple[Item, ...] = ()
    repeat: int = 0
    group: Group | None = None
    asks_more: bool = False               # the "another one?" question after a repeat of a group
    ulcer: KnownUlcer | None = None       # the ulcer a repeat of a registry group is about
    situations: frozenset[str] = frozenset()

    @property
    def code(self) -> str:
        return self.instrument.code

    def item_text(self, item: Item, language: str, variant: str | None = None) -> str:
        """The item's wording as this patient reads it (the study's variant, the situation's wording)."""
        return item.text_for(language, variant, item.wording(self.situations))

    def title(self, language: str) -> str:
        """The instrument's title as this patient reads it (before treatment, the checklist's own)."""
        return self.instrument.title_in(self.situations)(language)

    def instructions(self, language: str) -> str:
        return self.instrument.instructions_in(self.situations)(language)

    def heading(self, language: str) -> str:
        """A group's screen title: the ulcer it is about ("Your ulcer: Left hand · Index finger · Fingertip"), or
        the group's label and the repeat's number."""
        assert self.group is not None
        label = self.group.label(language)
        if "{ulcer}" in label:
            return label.replace("{ulcer}", ulcer_name(self.instrument, self.ulcer, language))
        return f"{label} {self.repeat}"


def ulcer_name(inst: Instrument, ulcer: KnownUlcer | None, language: str) -> str:
    """An ulcer named the way the patient reported it: its hand, finger and place, with the instrument's labels."""
    if ulcer is None:
        return ""
    parts = []
    for code, value in (("DU_HAND", ulcer.hand), ("DU_FINGER", ulcer.finger), ("DU_SITE", ulcer.site)):
        try:
            parts.append(inst.item(code).option_label(value, language))
        except (KeyError, ValueError):
            parts.append(value)
    return " · ".join(parts)


class _AllBranches(dict):
    """Answers under which every ``show_if`` holds: the screens of every branch (for counting progress)."""


def _visible(condition: Mapping[str, str] | None, answers: Answers, repeat: int = 0,
             in_group: frozenset[str] = frozenset()) -> bool:
    """A ``show_if`` holds; a reference to an item of the same group reads that repeat's answer."""
    if isinstance(answers, _AllBranches):
        return True
    return all(answers.get((ref, repeat if ref in in_group else 0)) == value
               for ref, value in (condition or {}).items())


def _asked(item: Item, context: Context) -> bool:
    return item.requires is None or item.requires in context.features


def group_more(state: Mapping[str, Any] | None, group: str) -> dict[str, str]:
    return dict(((state or {}).get("groups") or {}).get(group, {}).get("more", {}))


@lru_cache(maxsize=256)
def _condition_refs(inst: Instrument) -> frozenset[str]:
    """The items whose answers an instrument's ``show_if`` conditions read (of its items and its groups)."""
    refs = {ref for item in inst.items for ref in (item.show_if or {})}
    return frozenset(refs | {ref for group in inst.groups for ref in (group.show_if or {})})


# What an instrument's screens depend on, as immutable values: the key of the memo.
_MoreKey = tuple[tuple[str, tuple[tuple[str, str], ...]], ...]
_UlcersKey = tuple[tuple[KnownUlcer, ...], tuple[int, ...]] | None


def _more_key(inst: Instrument, state: Mapping[str, Any] | None) -> _MoreKey:
    return tuple((g.code, tuple(sorted(group_more(state, g.code).items()))) for g in inst.groups
                 if not g.repeats_from)


def _context_key(context: Context) -> tuple[frozenset[str], frozenset[str], _UlcersKey, bool]:
    u = context.ulcers
    return context.features, context.situations, None if u is None else (u.known, u.unconfirmed), context.grouped


def _context_of(features: frozenset[str], situations: frozenset[str], ulcers: _UlcersKey,
                grouped: bool = True) -> Context:
    """The part of a context the screens read, back from the memo's key (the registry's other fields, its
    classification and numbering, do not change which screens are shown; whether the screens are grouped does)."""
    return Context(features, situations, None if ulcers is None else UlcerContext(ulcers[0], ulcers[1]), grouped)


def _state_of(more: _MoreKey) -> dict[str, Any]:
    return {"groups": {group: {"more": dict(pairs)} for group, pairs in more}}


def instrument_screens(inst: Instrument, answers: Answers, state: Mapping[str, Any] | None,
                       context: Context = NO_CONTEXT) -> list[Screen]:
    """The screens the patient sees, in order, for these answers, navigation state and context."""
    refs = _condition_refs(inst)
    read = tuple(sorted((key, value) for key, value in answers.items() if key[0] in refs))
    return list(_memo_screens(inst, read, _more_key(inst, state), *_context_key(context)))


@lru_cache(maxsize=4096)
def _memo_screens(inst: Instrument, read: tuple[tuple[AnswerKey, str], ...], more: _MoreKey,
                  features: frozenset[str], situations: frozenset[str], ulcers: _UlcersKey,
                  grouped: bool = True) -> tuple[Screen, ...]:
    return tuple(_compute_screens(inst, dict(read), _state_of(more),
                                  _context_of(features, situations, ulcers, grouped)))


def _compute_screens(inst: Instrument, answers: Answers, state: Mapping[str, Any] | None,
                     context: Context = NO_CONTEXT) -> list[Screen]:
    screens: list[Screen] = []
    done_groups: set[str] = set()
    i = 0
    items = inst.items
    while i < len(items):
        item = items[i]
        if item.group:
            if item.group not in done_groups:
                done_groups.add(item.group)
                screens.extend(_group_screens(inst, inst.group(item.group), answers, state, context))
            i += 1
            continue
        if item.screen:
            members = [item]
            while i + 1 < len(items) and items[i + 1].screen == item.screen and not items[i + 1].group:
                i += 1
                members.append(items[i])
            for key, part in _screen_parts(item.screen, members, context.grouped):
                on_screen = frozenset(m.code for m in part)
                shown = tuple(m for m in part if _asked(m, context) and
                              (_follows_on_screen(m, on_screen) or _visible(m.show_if, answers)))
                if shown:
                    screens.append(Screen(key=f"{inst.code}.{key}", instrument=inst, items=shown,
                                          situations=context.situations))
        elif _visible(item.show_if, answers) and _asked(item, context):
            screens.append(Screen(key=f"{inst.code}.{item.code}", instrument=inst, items=(item,),
                                  situations=context.situations))
        i += 1
    return _checklists_with_their_question(screens)


def _screen_parts(name: str, members: list[Item], grouped: bool) -> list[tuple[str, list[Item]]]:
    """A ``screen`` group's screens: one (named after the group), or, for a study that keeps one question per
    screen, each question alone (named after it) and the boxes to tick together (named after the group)."""
    if grouped or all(m.type == "check" for m in members):
        return [(name, members)]
    parts: list[tuple[str, list[Item]]] = []
    for m in members:
        if m.type == "check" and parts and parts[-1][1][-1].type == "check":
            parts[-1][1].append(m)
        else:
            parts.append((name if m.type == "check" else m.code, [m]))
    return parts


def _follows_on_screen(item: Item, on_screen: frozenset[str]) -> bool:
    """A follow-up question whose condition reads only questions of its own screen (DLQI 7B under 7A): shown
    beside them, as on the paper page, and asked only when its condition holds (`applies`)."""
    return bool(item.show_if) and set(item.show_if) <= on_screen


def applies(screen: Screen, item: Item, answers: Answers) -> bool:
    """Whether an item of this screen takes an answer: a follow-up shown beside its condition does only when the
    condition holds (7B after a "No" to 7A); any other item on the screen always does."""
    on_screen = frozenset(i.code for i in screen.items)
    if not _follows_on_screen(item, on_screen):
        return True
    codes = on_screen if screen.group else frozenset()
    return _visible(item.show_if, answers, screen.repeat, codes)


def _checklists_with_their_question(screens: list[Screen]) -> list[Screen]:
    """A checklist (the HAQ's aids and help for a category) goes on the screen of the question before it in the same
    section, the category's last: one screen fewer per category, the wording and order unchanged."""
    out: list[Screen] = []
    for screen in screens:
        before = out[-1] if out else None
        section = screen.items[0].section if screen.items else None
        if (before is not None and section is not None and not screen.group and not before.group
                and all(i.type == "check" for i in screen.items) and len(before.items) == 1
                and before.items[0].type == "choice" and before.items[0].section == section):
            out[-1] = Screen(key=before.key, instrument=before.instrument, items=before.items + screen.items,
                             situations=before.situations)
        else:
            out.append(screen)
    return out


def _repeat_screens(inst: Instrument, group: Group, members: tuple[Item, ...], answers: Answers, n: int,
                    context: Context, ulcer: KnownUlcer | None = None) -> list[Screen]:
    """One repeat of a group: the items sharing a ``screen`` together (as version 1.0 of the diary asks an ulcer's
    details), otherwise one item per screen, each shown when its condition holds for this repeat."""
    codes = frozenset(m.code for m in members)
    shown = tuple(m for m in members if _visible(m.show_if, answers, n, codes) and _asked(m, context))
    common = {"instrument": inst, "repeat": n, "group": group, "ulcer": ulcer, "situations": context.situations}
    if shown and all(m.screen for m in shown):
        return [Screen(key=f"{inst.code}.{group.code}.{n}", items=shown, **common)]
    return [Screen(key=f"{inst.code}.{group.code}.{n}.{m.code}", items=(m,), **common) for m in shown]


def _group_screens(inst: Instrument, group: Group, answers: Answers, state: Mapping[str, Any] | None,
                   context: Context) -> list[Screen]:
    if not _visible(group.show_if, answers):
        return []
    members = tuple(i for i in inst.items if i.group == group.code)
    if group.repeats_from:
        registry = context.ulcers or UlcerContext()
        numbers = ([u.number for u in registry.followed] if group.repeats_from == "followed_ulcers"
                   else list(registry.unconfirmed))
        screens = []
        for n in numbers:
            screens.extend(_repeat_screens(inst, group, members, answers, n, context, registry.ulcer(n)))
        return screens
    more = group_more(state, group.code)
    screens = []
    n = 1
    while True:
        screens.extend(_repeat_screens(inst, group, members, answers, n, context))
        if n >= group.max_repeats:
            break
        screens.append(Screen(key=f"{inst.code}.{group.code}-more.{n}", instrument=inst, repeat=n, group=group,
                              asks_more=True, situations=context.situations))
        if more.get(str(n)) != "Y":
            break
        n += 1
    return screens


def step_of(screen: Screen) -> str:
    """The progress step a screen belongs to: its own, or, for the repeats of an asked group (new ulcers, however
    many the patient reports), the group's one step."""
    if screen.group is not None and screen.group.repeats_from is None:
        return f"{screen.code}.{screen.group.code}"
    return screen.key


@dataclass(frozen=True)
class Steps:
    """An instrument's progress steps (``keys``), and the follow-up screens' keys with the step they share."""

    keys: tuple[str, ...]
    follows: Mapping[str, str]

    def number(self, screen: Screen) -> int:
        """The screen's step (1-based)."""
        step = self.follows.get(screen.key) or step_of(screen)
        return self.keys.index(step) + 1 if step in self.keys else 1


def progress_steps(inst: Instrument, state: Mapping[str, Any] | None, context: Context = NO_CONTEXT) -> Steps:
    """An instrument's steps whatever the answers: every branch counted, an asked group one step, each ulcer
    followed one step per question, and a follow-up on a screen of its own (DLQI 7B, one question a screen; the
    day an ulcer closed) the step of the question it follows: skipped, it leaves no gap ("7 of 10", then "8 of 10").
    So the count a patient sees never goes back nor jumps, and its total never changes while they answer."""
    return _memo_steps(inst, _more_key(inst, state), *_context_key(context))


def _is_follow_up(screen: Screen, before: Screen | None) -> bool:
    """A screen whose every item is asked only after an answer of the screen just before (in the same repeat)."""
    if before is None or not screen.items or screen.asks_more or before.repeat != screen.repeat:
        return False
    if screen.group is not None and screen.group.repeats_from is None:
        return False                       # an asked group is one step anyway
    codes = {i.code for i in before.items}
    return all(i.show_if and set(i.show_if) <= codes for i in screen.items)


@lru_cache(maxsize=1024)
def _memo_steps(inst: Instrument, more: _MoreKey, features: frozenset[str], situations: frozenset[str],
                ulcers: _UlcersKey, grouped: bool = True) -> Steps:
    context = _context_of(features, situations, ulcers, grouped)
    screens = _compute_screens(inst, _AllBranches(), _state_of(more), context)
    steps: list[str] = []
    follows: dict[str, str] = {}
    before: Screen | None = None
    for screen in screens:
        if steps and _is_follow_up(screen, before):
            follows[screen.key] = steps[-1]
        elif (step := step_of(screen)) not in steps:
            steps.append(step)
        before = screen
    return Steps(tuple(steps), MappingProxyType(follows))


def build_flow(instruments: list[Instrument], answers: Mapping[str, Answers],
               states: Mapping[str, Mapping[str, Any] | None],
               contexts: Mapping[str, Context] | None = None) -> list[Screen]:
    flow: list[Screen] = []
    for inst in instruments:
        flow.extend(instrument_screens(inst, answers.get(inst.code, {}), states.get(inst.code),
                                       (contexts or {}).get(inst.code, NO_CONTEXT)))
    return flow


def is_answered(screen: Screen, answers: Answers, state: Mapping[str, Any] | None) -> bool:
    if screen.asks_more:
        return group_more(state, screen.group.code).get(str(screen.repeat)) in ("Y", "N")  # type: ignore[union-attr]
    needed = [i for i in screen.items if i.type != "check" and applies(screen, i, answers)]
    if needed:
        return all((i.code, screen.repeat) in answers for i in needed)
    return screen.key in ((state or {}).get("seen") or [])


def first_unanswered(flow: list[Screen], answers: Mapping[str, Answers],
                     states: Mapping[str, Mapping[str, Any] | None]) -> Screen | None:
    for screen in flow:
        if not is_answered(screen, answers.get(screen.code, {}), states.get(screen.code)):
            return screen
    return None


def visible_keys(flow: list[Screen], answers_of: Mapping[str, Answers] | None = None) -> dict[str, set[AnswerKey]]:
    """The answer keys each instrument's flow can hold; anything else is stale (a branch since closed). With
    ``answers_of``, a follow-up whose condition on its own screen does not hold holds none."""
    keys: dict[str, set[AnswerKey]] = {}
    for screen in flow:
        answers = answers_of.get(screen.code, {}) if answers_of is not None else None
        for item in screen.items:
            if answers is None or applies(screen, item, answers):
                keys.setdefault(screen.code, set()).add((item.code, screen.repeat))
    return keys


def as_scoring_answers(answers: Answers) -> dict[str, str]:
    """{(code, n): v} -> the scoring interface's {"CODE": v, "CODE[n]": v}."""
    return {(f"{code}[{rep}]" if rep else code): value for (code, rep), value in answers.items()}
