"""Answers checked against an instrument's data dictionary: what scoring, exports and alerts read."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from proapp.instruments.schema import Instrument

_KEY_RE = re.compile(r"^([A-Z][A-Z0-9_]*)(?:\[(\d{1,3})\])?$")


@dataclass
class ParsedAnswers:
    """Checked answers: plain items by code, repeating groups by group code then 1-based repeat index."""

    values: dict[str, str] = field(default_factory=dict)
    groups: dict[str, dict[int, dict[str, str]]] = field(default_factory=dict)

    def get(self, code: str) -> str | None:
        return self.values.get(code)


def parse_answers(instrument: Instrument, answers: Mapping[str, str | None]) -> ParsedAnswers:
    """Check every answer against the data dictionary; raise ValueError naming the first bad item.

    Keys are item codes; items of a repeating group carry a 1-based repeat index: ``DU_HAND[2]``.
    A value of None means unanswered.
    """
    parsed = ParsedAnswers()
    for key, value in answers.items():
        match = _KEY_RE.match(key) if isinstance(key, str) else None
        if not match:
            raise ValueError(f"{key!r}: not an item code of {instrument.code}")
        code, index = match.group(1), match.group(2)
        try:
            item = instrument.item(code)
        except KeyError:
            raise ValueError(f"{code}: not an item of {instrument.code} {instrument.version}") from None
        if item.group and index is None:
            raise ValueError(f"{code}: belongs to the repeating group {item.group}; give it as {code}[1]")
        if not item.group and index is not None:
            raise ValueError(f"{code}: is not in a repeating group and takes no [index]")
        if value is None:
            continue
        item.check_value(value)
        if item.group:
            n = int(index)  # type: ignore[arg-type]
            limit = instrument.group(item.group).max_repeats
            if not 1 <= n <= limit:
                raise ValueError(f"{code}: repeat index {n} is outside 1..{limit}")
            parsed.groups.setdefault(item.group, {}).setdefault(n, {})[code] = value
        else:
            parsed.values[code] = value
    return parsed
