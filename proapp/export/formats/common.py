"""What every export format shares: UTC timestamps, derived values, answers grouped by repeat."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from proapp.export.data import Exported
from proapp.instruments import derived_values
from proapp.instruments.schema import Instrument

__all__ = ["derived_values", "grouped_answers", "iso"]


def iso(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


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
