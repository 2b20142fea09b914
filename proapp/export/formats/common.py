"""What every export format shares: UTC timestamps, derived values, answers grouped by repeat."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from proapp.export.data import Exported
from proapp.instruments.schema import Instrument


def iso(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def derived_values(inst: Instrument, scores: dict[str, Any] | None) -> dict[str, Any]:
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


def grouped_answers(inst: Instrument, e: Exported) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for code, repeat, value, _at in e.effective():
        try:
            item = inst.item(code)
        except KeyError:
            continue
        if item.group:
            values = out.setdefault(code, [])
            while len(values) < repeat:
                values.append(None)
            values[repeat - 1] = value
        else:
            out[code] = value
    return out
