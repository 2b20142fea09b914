"""The four instruments: versioned data files (FR and EN wording), a registry and scoring.

``score(code, answers)`` is the project's scoring interface (see the README): answers are a mapping
of item code to string value, items of a repeating group written ``CODE[n]`` with n from 1.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from proapp.instruments import scoring as _scoring  # noqa: F401  (registers the scoring functions)
from proapp.instruments.registry import (
    SCORERS,
    InstrumentFileError,
    ParsedAnswers,
    Registry,
    load_directory,
    load_file,
    parse_answers,
)
from proapp.instruments.schema import Instrument, Item, Text

__all__ = [
    "Instrument", "InstrumentFileError", "Item", "ParsedAnswers", "Registry", "Text", "default_registry",
    "derived_group_values", "derived_values", "load_directory", "load_file", "parse_answers", "score", "score_with",
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
        out[d.code] = value
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
