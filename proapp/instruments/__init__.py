"""The instruments: versioned data files (FR and EN wording), a registry and scoring.

``score(code, answers)`` is the project's scoring interface (see the README): answers are a mapping
of item code to string value, items of a repeating group written ``CODE[n]`` with n from 1.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from proapp.instruments.answers import ParsedAnswers, parse_answers
from proapp.instruments.registry import InstrumentFileError, Registry, load_directory, load_file
from proapp.instruments.schema import Instrument, Item, Text
from proapp.instruments.scoring import SCORERS

__all__ = [
    "Instrument",
    "InstrumentFileError",
    "Item",
    "ParsedAnswers",
    "Registry",
    "Text",
    "default_registry",
    "derived_group_values",
    "derived_values",
    "load_directory",
    "load_file",
    "parse_answers",
    "removed_scores",
    "score",
    "score_with",
    "still_asked",
]


def derived_values(inst: Instrument, scores: Mapping[str, Any] | None) -> dict[str, Any]:
    """The instrument's derived scores by their codes (DLQI_TOTAL, HAQ_DI ...), from the stored score keys (those
    given per repeat of a group are in ``derived_group_values``)."""
    out: dict[str, Any] = {}
    scores = scores or {}
    for d in inst.derived:
        if d.group is not None:            # a value per repeat: derived_group_values
            continue
        key = d.code.lower()
        short = key.removeprefix(inst.code.lower() + "_")
        value = scores.get(key, scores.get(short))
        if isinstance(value, list):
            value = " ".join(str(v) for v in value)
        out[d.code] = None if value == "" else value     # nothing to list (no new ulcer) is no value, not ""
    return out


def derived_group_values(inst: Instrument, scores: Mapping[str, Any] | None) -> dict[str, dict[int, dict[str, Any]]]:
    """The derived values given per repeat of a group (each ulcer's number, days to healing), by group code then
    repeat index then derived code, from the stored scores."""
    stored = (scores or {}).get("groups") or {}
    out: dict[str, dict[int, dict[str, Any]]] = {}
    for d in inst.derived:
        if d.group is None:
            continue
        for rep, values in (stored.get(d.group) or {}).items():
            value = values.get(d.code.lower())
            if value is not None:
                out.setdefault(d.group, {}).setdefault(int(rep), {})[d.code] = value
    return out


def _score_keys(inst: Instrument, scores: Mapping[str, Any] | None) -> set[tuple[str, int | None]]:
    keys: set[tuple[str, int | None]] = {(c, None) for c, v in derived_values(inst, scores).items() if v is not None}
    return keys | {(c, rep) for reps in derived_group_values(inst, scores).values() for rep, by_code in reps.items()
                   for c in by_code}


def removed_scores(inst: Instrument, before: Mapping[str, Any] | None,
                   after: Mapping[str, Any]) -> list[tuple[str, int | None]]:
    """The derived values (code, repeat or None) a revision no longer has, that it or an earlier one had: kept with
    the corrected scores (``removed``) so that every export says they no longer exist, even to a receiver that
    missed the revision in between."""
    had = _score_keys(inst, before) | {(c, r) for c, r in (before or {}).get("removed") or []}
    return sorted(had - _score_keys(inst, after), key=lambda k: (k[0], k[1] or 0))


def still_asked(inst: Instrument, answers: Mapping[tuple[str, int], Any]) -> set[tuple[str, int]]:
    """The answer keys (item code, repeat) whose question would still be asked with these answers: an answer whose
    ``show_if`` (or its group's) no longer holds, after a correction changed what it depends on, is meaningless
    (a closing day beside "not closed", a new ulcer's place beside "no new ulcer") and is dropped. Applied until
    nothing more drops, since a dropped answer can be what another depends on."""
    groups = {g.code: g for g in inst.groups}
    keys = {k for k, v in answers.items() if v is not None}
    while True:
        kept = {k for k in keys if _holds(inst, groups, answers, keys, *k)}
        if kept == keys:
            return kept
        keys = kept


def _holds(inst: Instrument, groups: Mapping[str, Any], answers: Mapping[tuple[str, int], Any],
           keys: set[tuple[str, int]], code: str, repeat: int) -> bool:
    try:
        item = inst.item(code)
    except KeyError:
        return True                        # not an item of this version: the caller decides
    group = groups.get(item.group) if item.group else None
    conditions = [(ref, value, item.group) for ref, value in (item.show_if or {}).items()]
    conditions += [(ref, value, None) for ref, value in ((group.show_if if group else None) or {}).items()]
    for ref, value, in_group in conditions:
        try:
            same = in_group is not None and inst.item(ref).group == in_group
        except KeyError:
            return False
        key = (ref, repeat if same else 0)
        if key not in keys or answers[key] != value:
            return False
    return True


@lru_cache(maxsize=1)
def default_registry() -> Registry:
    """The shipped instrument files, loaded and checked once per process."""
    return load_directory()


def score_with(instrument: Instrument, answers: Mapping[str, str | None], context: Any = None) -> dict[str, Any]:
    """Score ``answers``; ``context`` is what the questionnaire knew of the patient when it opened (the ulcer
    registry, an ``UlcerContext``, for the ulcer instruments; None otherwise)."""
    return SCORERS[instrument.code](instrument, parse_answers(instrument, answers), context)


def score(code: str, answers: Mapping[str, str | None], version: str | None = None,
          context: Any = None) -> dict[str, Any]:
    """Score ``answers`` to instrument ``code`` (newest version unless given).

    Raises ValueError naming the item for an unknown item code or a value outside the dictionary.
    """
    try:
        instrument = default_registry().get(code, version)
    except KeyError as exc:
        raise ValueError(str(exc.args[0])) from None
    return score_with(instrument, answers, context)
