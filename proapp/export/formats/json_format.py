"""The export API's own JSON: one object per completed response."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from sqlalchemy.orm import Session

from proapp.export.data import Exported
from proapp.export.formats.common import Page, derived_group_values, derived_values, grouped_answers, iso, removed
from proapp.instruments.schema import Instrument

MEDIA_TYPES = ("application/json",)
ATTACHMENT = None


def page_chunks(page: Page, db: Session) -> Iterator[str]:
    """A page of responses: ``{"data": [...], "next_cursor": ..., "has_more": ...}``."""
    yield '{"data":['
    for n, e in enumerate(page.responses(db)):
        yield ("," if n else "") + json.dumps(json_item(e, page.instrument(e), page.position + n + 1),
                                              ensure_ascii=False, separators=(",", ":"))
    yield f'],"next_cursor":{json.dumps(page.next_cursor)},"has_more":{"true" if page.more else "false"}}}'


def json_item(e: Exported, inst: Instrument, sequence: int) -> dict[str, Any]:
    """``sequence``: the response's place among those the receiver was given (a key's pulls, or a push endpoint's
    deliveries), so that it tells nothing of other studies' or sites' volume. A corrected response lists in
    ``removed`` what an earlier revision had and this one no longer has (an answer made meaningless, a score that
    can no longer be computed), and its group scores hold null for a removed value per repeat: delete them."""
    gone = removed(inst, e)
    groups: dict[str, dict[str, dict]] = {g: {str(k): dict(v) for k, v in sorted(reps.items())}
                                          for g, reps in derived_group_values(inst, e.current_scores).items()}
    group_of = {d.code: d.group for d in inst.derived}
    for kind, code, repeat in gone:
        if kind == "score" and repeat is not None and group_of.get(code):
            groups.setdefault(group_of[code], {}).setdefault(str(repeat), {})[code] = None
    return {
        "id": e.id,
        "sequence": sequence,
        "subject_id": e.subject_id,
        "site": e.site,
        "visit": e.visit,
        "window": {"target_day": e.due_on.isoformat(), "opens_on": e.opens_on.isoformat(),
                   "closes_on": e.closes_on.isoformat()},
        # ``mode_wording``: the remote wording version the questions were read aloud or sent by SMS with ("2.2-R1"),
        # null for the web page's wording.
        "instrument": {"code": e.instrument, "version": e.version, "mode_wording": e.mode_wording},
        "language": e.language,
        # Every language the patient answered in (first used first), and the language of each answer: a patient may
        # switch language midway ("DU_HAND[1]": an answer of a repeat).
        "languages": e.languages,
        "answer_languages": {(code if not rep else f"{code}[{rep}]"): lang
                             for (code, rep), lang in sorted(e.answer_languages.items())},
        # How the patient answered (first used first), and how each answer was given: "web" (the page, and every
        # answer saved before modes were recorded), "voice_dtmf" or "voice_speech" (a call: keypad or speech),
        # "sms" (an SMS reply).
        "modes": e.modes,
        "answer_modes": {(code if not rep else f"{code}[{rep}]"): mode
                         for (code, rep), mode in sorted(e.answer_modes.items())},
        # Whether the wording the patient read is the licensed, validated text of that instrument version.
        "wording_validated": inst.languages[e.language].validated,
        "completed_at": iso(e.completed_at),
        "completed_on_site": e.on_site,
        "answers": grouped_answers(inst, e),
        "scores": derived_values(inst, e.current_scores),
        # Derived values per repeat: each reported ulcer's number in the registry and kind, each followed ulcer's
        # days to healing (keyed by the ulcer's number).
        "group_scores": groups,
        "wording": e.wording,
        # Each visual analogue scale's control: "line" (drawn by the page's script) or "number" (the box shown
        # without JavaScript), by item code ("CODE[n]" in a group's repeat n); answers given before it was recorded
        # are absent.
        "entered_with": {(f"{code}[{rep}]" if rep else code): control
                         for (code, rep), control in sorted(e.entered_with.items())},
        # What the patient agreed to (SMS, answering online) on which information sheet, and later acknowledgements
        "agreements": [{"kind": kind, "information_version": version, "given_on": day.isoformat()}
                       for kind, version, day in e.agreements],
        "revision": len(e.corrections),
        "removed": [{"kind": kind, "code": code, "repeat": repeat} for kind, code, repeat in gone],
        "corrections": [{"item": c[0], "repeat": c[1], "old_value": c[2], "new_value": c[3], "reason": c[4],
                         "by": c[5], "at": iso(c[6]),
                         "signature": {"meaning": c[7], "method": c[8]} if c[7] else None,
                         # where it comes from: the patient's request (when, how), a transcription error, other
                         "source": {"kind": c[9], "requested_on": c[10].isoformat() if c[10] else None,
                                    "method": c[11]} if c[9] else None} for c in e.corrections],
    }
