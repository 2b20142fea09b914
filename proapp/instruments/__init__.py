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
    "derived_values", "load_directory", "load_file", "parse_answers", "score", "score_with",
]


def derived_values(inst: Instrument, scores: Mapping[str, Any] | None) -> dict[str, Any]:
    """The instrument's derived scores by their codes (DLQI_TOTAL, HAQ_DI ...), from the stored score keys."""
    out: dict[str, Any] = {}
    scores = scores or {}
    for d in inst.derived:
        key = d.code.lower()
        short = key.removeprefix(inst.code.lower() + "_")
        value = scores.get(key, scores.get(short))
        if isinstance(value, list):
            value = " ".join(str(v) for v in value)
        out[d.code] = value
    return out


@lru_cache(maxsize=1)
def default_registry() -> Registry:
    """The shipped instrument files, loaded and checked once per process."""
    return load_directory()


def score_with(instrument: Instrument, answers: Mapping[str, str | None]) -> dict[str, Any]:
    return SCORERS[instrument.code](instrument, parse_answers(instrument, answers))


def score(code: str, answers: Mapping[str, str | None], version: str | None = None) -> dict[str, Any]:
    """Score ``answers`` to instrument ``code`` (newest version unless given).

    Raises ValueError naming the item for an unknown item code or a value outside the dictionary.
    """
    try:
        instrument = default_registry().get(code, version)
    except KeyError as exc:
        raise ValueError(str(exc.args[0])) from None
    return score_with(instrument, answers)
