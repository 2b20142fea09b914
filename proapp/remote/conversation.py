"""A visit's questions asked one at a time without the web page, for a voice call or an SMS conversation.

The flow is the questionnaire's own (``questionnaire.flow``: the same screens, branching and ulcers); each screen
of an instrument a study allows in the channel holds one question (the instrument file's ``remote`` block checks
it), which becomes a `Prompt`: its wording (the remote wording where the file gives one, else the page's), the
ulcer or group it is about, and its answers as keys (1, 2, ... or the number itself for a 0-10 scale) or a number
of days ago for a date. A reply is read leniently (`read_reply`) and stored through ``answering.save_screen`` with
its mode, so the audit trail, the save-time alerts and the exports are the web's.

A voice call holds its answers until the patient confirms them (`hold`, then `store_held`); an SMS conversation
stores each one as it comes (`answer`).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from flask_babel import force_locale
from flask_babel import gettext as _
from sqlalchemy import Connection
from sqlalchemy.orm import Session

from proapp.i18n import day as i18n_day
from proapp.instruments import Registry
from proapp.instruments.schema import Item
from proapp.questionnaire import answering
from proapp.questionnaire import flow as flowmod
from proapp.questionnaire.answering import ONSET_MAX_DAYS_BACK, VisitQuestionnaire
from proapp.questionnaire.flow import Screen
from proapp.studies.catalog import StudyCatalog

MODES = ("voice", "sms")
MORE = "more"                      # the answer's name for a group's "another one?" question


@dataclass(frozen=True)
class Choice:
    key: str                       # what the patient presses or replies
    value: str                     # what is stored
    label: str


@dataclass(frozen=True)
class Prompt:
    """One question as the channel asks it."""

    screen: Screen
    item: Item | None              # None: a group's "another one?" question
    text: str
    heading: str | None            # the ulcer or the group it is about
    choices: tuple[Choice, ...]
    days_ago_max: int | None       # a date asked as a number of days ago, at most this many
    instructions: str | None       # the instrument's instructions, before its first question
    title: str | None              # the instrument's title, before its first question

    @property
    def key(self) -> str:
        return self.screen.key

    @property
    def field(self) -> str:
        return MORE if self.item is None else self.item.code

    @property
    def two_digit_keys(self) -> bool:
        """Whether an answer may take two keys (10 on a 0-10 scale, days ago): the caller ends it with #."""
        return self.days_ago_max is not None or any(len(c.key) > 1 for c in self.choices)


def plan(studies: StudyCatalog, study_code: str, instruments: Iterable[str], mode: str) -> list[str] | None:
    """The instruments a visit asks in ``mode``, or None when it goes by web link (see ``StudyDef.remote_plan``)."""
    return studies.get(study_code).remote_plan(tuple(instruments), mode)


def load_visit(conn: Connection, occurrence_id: int, mode: str, registry: Registry, studies: StudyCatalog, *,
               for_writing: bool = False) -> VisitQuestionnaire | None:
    """The visit's questionnaires as asked in ``mode`` (the pain VAS replaced by its numeric rating), or None when
    the visit cannot be answered so (or does not exist)."""
    found = answering.visit_of_occurrence(conn, occurrence_id, for_writing=for_writing)
    if found is None:
        return None
    visit, responses, answers = found
    asked = plan(studies, visit.study_code, visit.instruments, mode)
    if asked is None:
        return None
    visit = replace(visit, instruments=tuple(asked))
    answers = {code: answers.get(code, {}) for code in asked}
    return answering.load(visit, responses, answers, registry, studies, conn)


def mode_wording(vq: VisitQuestionnaire) -> dict[str, str]:
    """{instrument code: its remote wording's version}, recorded with the completed responses."""
    return {inst.code: inst.remote.version for inst in vq.instruments if inst.remote is not None}


def today_of(vq: VisitQuestionnaire, now: datetime) -> date:
    return now.astimezone(ZoneInfo(vq.visit.timezone)).date()


def next_prompt(vq: VisitQuestionnaire, language: str, now: datetime) -> Prompt | None:
    """The first question not answered yet, or None when every one is (the visit can be completed)."""
    flow = vq.flow()
    screen = flowmod.first_unanswered(flow, vq.answers, vq.states)
    if screen is None:
        return None
    first = next(s for s in flow if s.code == screen.code).key == screen.key
    return prompt_for(vq, screen, language, now, first=first)


def prompt_for(vq: VisitQuestionnaire, screen: Screen, language: str, now: datetime, *, first: bool = False) -> Prompt:
    inst = screen.instrument
    remote = inst.remote
    intro = remote.instructions(language) if remote and remote.instructions else screen.instructions(language)
    title = screen.title(language) if first else None
    heading = screen.heading(language) if screen.group is not None else None
    if screen.asks_more:
        group = screen.group
        assert group is not None and group.more is not None
        with force_locale(language):
            choices = (Choice("1", "Y", _("Yes")), Choice("2", "N", _("No")))
        return Prompt(screen, None, group.more(language), None, choices, None, intro if first else None, title)
    if len(screen.items) != 1:
        raise ValueError(f"{screen.key}: a screen of several questions is not asked by voice or SMS")
    item = screen.items[0]
    spec = remote.items.get(item.code) if remote else None
    text = spec.text(language) if spec and spec.text else screen.item_text(item, language, vq.variants.get(inst.code))
    if item.type == "date":
        today = today_of(vq, now)
        last_open = screen.ulcer.last_open_on if screen.ulcer and item.earliest == "ulcer_last_open" else None
        most = (today - last_open).days if last_open is not None else ONSET_MAX_DAYS_BACK
        return Prompt(screen, item, text, heading, (), max(0, most), intro if first else None, title)
    options = item.option_list
    numeric = all(o.value.isdigit() for o in options)
    choices = tuple(Choice(o.value if numeric else str(i + 1), o.value, o.label(language))
                    for i, o in enumerate(options))
    return Prompt(screen, item, text, heading, choices, None, intro if first else None, title)


# Reading a reply ------------------------------------------------------------------------------------------------

_YES = {"y", "yes", "yeah", "yep", "o", "oui", "ouais", "ok", "d'accord", "daccord"}
_NO = {"n", "no", "nope", "non"}
_NUMBER_WORDS = {
    "zero": 0, "zéro": 0, "none": 0, "aucun": 0, "aucune": 0,
    "one": 1, "un": 1, "une": 1, "two": 2, "deux": 2, "three": 3, "trois": 3, "four": 4, "quatre": 4,
    "five": 5, "cinq": 5, "six": 6, "seven": 7, "sept": 7, "eight": 8, "huit": 8, "nine": 9, "neuf": 9,
    "ten": 10, "dix": 10, "eleven": 11, "onze": 11, "twelve": 12, "douze": 12, "thirteen": 13, "treize": 13,
    "fourteen": 14, "quatorze": 14, "fifteen": 15, "quinze": 15, "sixteen": 16, "seize": 16, "seventeen": 17,
    "eighteen": 18, "nineteen": 19, "twenty": 20, "vingt": 20, "thirty": 30, "trente": 30,
    "today": 0, "aujourd'hui": 0, "aujourdhui": 0, "yesterday": 1, "hier": 1,
}


def _plain(text: str) -> str:
    """Lower case, accents kept apart, punctuation and extra spaces gone ("Oui !" -> "oui")."""
    text = unicodedata.normalize("NFC", text.strip().lower())
    text = re.sub(r"[.,;:!?\"()«»]+", " ", text)
    return " ".join(text.split())


def _no_accents(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFD", text) if unicodedata.category(c) != "Mn")


def _number(text: str) -> int | None:
    """A whole number typed or spoken: "3", "3 days", "three", "dix-sept", "vingt et un", "twenty one"."""
    words = text.replace("-", " ").split()
    if words and words[0].isdigit():
        return int(words[0]) if len(words[0]) <= 4 else None
    total, seen = 0, False
    for word in words:
        if word in ("et", "and", "days", "day", "jours", "jour", "ago", "il", "y", "a"):
            continue
        value = _NUMBER_WORDS.get(word, _NUMBER_WORDS.get(_no_accents(word)))
        if value is None or (value >= 20 and seen):
            return None
        total += value
        seen = True
    return total if seen else None


def read_reply(prompt: Prompt, reply: str, today: date) -> str | None:
    """The value a reply stands for (a choice's value, or a date as YYYY-MM-DD), or None when it cannot be read:
    the channel asks again. Keys, digits, "yes"/"oui"/"o"/"n", numbers in words, or an answer's own label."""
    text = _plain(reply)
    if not text:
        return None
    if prompt.days_ago_max is not None:
        n = _number(text)
        if n is None or not 0 <= n <= prompt.days_ago_max:
            return None
        return (today - timedelta(days=n)).isoformat()
    by_key = {c.key: c.value for c in prompt.choices}
    compact = text.replace(" ", "")
    if compact in by_key:
        return by_key[compact]
    values = {c.value for c in prompt.choices}
    if values >= {"Y", "N"}:
        first = text.split()[0]
        if text in _YES or first in _YES:
            return "Y"
        if text in _NO or first in _NO:
            return "N"
    bare = _no_accents(text)
    labels = {c.value: _no_accents(_plain(c.label)) for c in prompt.choices}
    for c in prompt.choices:
        if bare in (labels[c.value], _no_accents(_plain(c.label.split(":")[0]))):
            return c.value
    # One word that names one answer only ("left", "gauche", "pouce", "thumb").
    if " " not in bare and len(bare) > 2:
        named = [value for value, label in labels.items() if bare in label.split()]
        if len(named) == 1:
            return named[0]
    n = _number(text)
    if n is not None and str(n) in by_key:
        return by_key[str(n)]
    return None


# Storing --------------------------------------------------------------------------------------------------------

def answer(db: Session, vq: VisitQuestionnaire, prompt: Prompt, value: str, *, language: str, now: datetime,
           mode: str) -> dict[str, Any]:
    """Store one answer as the page would (its checks, audit, save-time alerts), with its mode. Returns the
    page's errors (nothing stored then)."""
    return answering.save_screen(db, vq, prompt.screen, {prompt.field: value}, language=language, now=now,
                                 mode=mode)


def hold(vq: VisitQuestionnaire, prompt: Prompt, value: str) -> None:
    """Keep an answer in memory only (a call's answers before the patient confirms them): the next question
    follows from it as if it were stored."""
    screen = prompt.screen
    if prompt.item is None:
        assert screen.group is not None
        r = vq.responses.get(screen.code)
        state: dict[str, Any] = dict(r.flow_state or {}) if r else {}
        groups = dict(state.get("groups") or {})
        g = dict(groups.get(screen.group.code) or {})
        more = dict(g.get("more") or {})
        more[str(screen.repeat)] = value
        if value == "N":
            more = {k: v for k, v in more.items() if int(k) <= screen.repeat}
        g["more"] = more
        groups[screen.group.code] = g
        state["groups"] = groups
        if r is None:
            r = answering.ResponseState(0, screen.code, screen.instrument.version,
                                        answering.ResponseStatus.IN_PROGRESS, state, None)
            vq.responses[screen.code] = r
        r.flow_state = state
        return
    vq.answers.setdefault(screen.code, {})[(prompt.item.code, screen.repeat)] = value


def replay(vq: VisitQuestionnaire, held: list[Mapping[str, str]], language: str, now: datetime) -> None:
    """Apply held answers (``{"key": screen key, "value": ...}``, in the order given) to a freshly loaded visit."""
    for entry in held:
        prompt = _prompt_at(vq, entry["key"], language, now)
        if prompt is not None:
            hold(vq, prompt, entry["value"])


def _prompt_at(vq: VisitQuestionnaire, key: str, language: str, now: datetime) -> Prompt | None:
    screen = next((s for s in vq.flow() if s.key == key), None)
    return None if screen is None else prompt_for(vq, screen, language, now)


def store_held(db: Session, vq: VisitQuestionnaire, held: list[Mapping[str, str]], *, language: str, now: datetime,
               modes: Mapping[str, str]) -> dict[str, Any]:
    """Store the answers a call held, in the order they were given, each with its mode (``modes`` by screen key).
    ``vq`` is the visit as stored (loaded for writing). Stops at the first refused one and returns its errors."""
    for entry in held:
        prompt = _prompt_at(vq, entry["key"], language, now)
        if prompt is None:            # a branch an earlier answer closed: nothing to store
            continue
        errors = answer(db, vq, prompt, entry["value"], language=language, now=now,
                        mode=modes.get(entry["key"], "voice_dtmf"))
        if errors:
            return errors
    return {}


def finish(db: Session, vq: VisitQuestionnaire, *, language: str, now: datetime) -> bool:
    """Complete the visit (every question answered), its responses recording the remote wording's version."""
    return answering.complete(db, vq, language=language, now=now, mode_wording=mode_wording(vq))


def spoken_value(prompt: Prompt, value: str, language: str) -> str:
    """An answer as read back for confirmation: the choice's label, or the date in words."""
    for c in prompt.choices:
        if c.value == value:
            return c.label
    if prompt.days_ago_max is not None:
        return i18n_day(date.fromisoformat(value), "long")
    return value
