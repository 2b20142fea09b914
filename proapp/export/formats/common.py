"""What every export format shares: UTC timestamps, derived values, answers grouped by repeat."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session

from proapp.export import data
from proapp.export.data import Exported
from proapp.export.models import ApiKey
from proapp.instruments import Registry, derived_group_values, derived_values, still_asked
from proapp.instruments.schema import Instrument, Item
from proapp.studies.schema import StudyDef


@dataclass(frozen=True)
class Page:
    """One page of a key's responses, as every format writes it (``MEDIA_TYPES``, ``ATTACHMENT`` and
    ``page_chunks(page, db)`` in each format's module): made by the request, read from the stream's own session,
    since the body is written after the request's context is gone."""

    key_id: int
    key_prefix: str
    study: StudyDef
    registry: Registry
    after: int                  # the feed positions of the page: after this one, up to that one
    upto: int
    position: int               # responses this key was given before the page
    count: int
    more: bool
    next_cursor: str
    next_url: str               # the next page's address (FHIR's Bundle.link)
    public_url: str
    labels: str                 # the language of the labels (CSV)
    now: datetime

    def responses(self, db: Session) -> Iterator[Exported]:
        return data.iter_responses(db, db.get_one(ApiKey, self.key_id), self.after, self.upto)

    def by_subject(self, db: Session) -> Iterator[Exported]:
        return data.iter_by_subject(db, db.get_one(ApiKey, self.key_id), self.after, self.upto)

    def instrument(self, e: Exported) -> Instrument:
        return self.registry.get(e.instrument, e.version)

__all__ = ["all_scores", "correction_source", "current_answers", "derived_group_values", "derived_values",
           "grouped_answers", "iso", "removed", "shown", "source_phrase"]

Answer = tuple[str, int, str | None, datetime]


def current_answers(inst: Instrument, e: Exported) -> list[Answer]:
    """The answers as corrected, without those a correction made meaningless (their question would no longer be
    asked: a closing day beside "not closed"); an uncorrected response as answered."""
    if not e.corrections:
        return e.answers
    answers = e.effective()
    asked = still_asked(inst, {(code, rep): value for code, rep, value, _at in answers})
    return [a for a in answers if (a[0], a[1]) in asked]


def removed(inst: Instrument, e: Exported) -> list[tuple[str, str, int | None]]:
    """What a corrected response no longer has that an earlier revision had, for the formats to say so
    explicitly: ("answer", item code, repeat) for an answer made meaningless, ("score", code, repeat or None)
    for a derived value that can no longer be computed. Empty for an uncorrected response."""
    if not e.corrections:
        return []
    had = {(code, rep) for code, rep, value, _at in e.answers if value is not None}
    had |= {(c[0], c[1]) for c in e.corrections}
    now = {(code, rep) for code, rep, value, _at in current_answers(inst, e) if value is not None}
    out: list[tuple[str, str, int | None]] = [("answer", code, rep) for code, rep in sorted(had - now)]
    out += [("score", code, rep) for code, rep in (e.current_scores or {}).get("removed") or []]
    return out


def correction_source(fix: tuple) -> tuple[str, str, str]:
    """A correction's source as (kind, day the patient asked, how): ``patient_request`` with its day and method,
    ``transcription_error`` or ``other`` (empty day and method); three empty strings for a correction recorded
    before sources existed."""
    if len(fix) < 12 or not fix[9]:
        return "", "", ""
    return fix[9], fix[10].isoformat() if fix[10] else "", fix[11] or ""


def source_phrase(fix: tuple) -> str:
    """The source in a few words, for the formats that carry it as text (ODM's SourceID, REDCap): ``patient_request
    on 2026-03-02 by phone``; empty when the correction has none."""
    kind, day, method = correction_source(fix)
    return kind + (f" on {day}" if day else "") + (f" by {method}" if method else "")


def iso(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def all_scores(inst: Instrument, scores: dict[str, Any] | None) -> list[tuple[str, int | None, Any]]:
    """Every derived value of a response, in order: (code, None, value) for its scores, then (code, repeat, value)
    for those given per repeat of a group (each reported ulcer's number, each followed ulcer's days to healing)."""
    out: list[tuple[str, int | None, Any]] = [(code, None, v) for code, v in derived_values(inst, scores).items()]
    out += [(code, repeat, value) for _group, reps in sorted(derived_group_values(inst, scores).items())
            for repeat, by_code in sorted(reps.items()) for code, value in by_code.items()]
    return out


def shown(item: Item, e: Exported, variant: str | None):
    """The item's wording as this response's patient read it (the study's variant, their situation)."""
    return item.shown(variant, e.wording.get(item.code))


def grouped_answers(inst: Instrument, e: Exported) -> dict[str, Any]:
    """Plain items by code; a repeating group's items as a list by repeat, or, for a group whose repeats are the
    patient's ulcers (followed until they heal), as an object keyed by the ulcer's number."""
    out: dict[str, Any] = {}
    registry = {g.code for g in inst.groups if g.repeats_from}
    for code, repeat, value, _at in current_answers(inst, e):
        try:
            item = inst.item(code)
        except KeyError:
            continue
        if item.group in registry:
            out.setdefault(code, {})[str(repeat)] = value
        elif item.group:
            values = out.setdefault(code, [])
            while len(values) < repeat:
                values.append(None)
            values[repeat - 1] = value
        else:
            out[code] = value
    return out
