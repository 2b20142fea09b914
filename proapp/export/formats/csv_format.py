"""The export API's CSV: one row per answer, with the item and value labels in one language, the language the
patient answered each question in (``answer_language``: a patient may switch language midway) and how they gave it
(``answer_mode``: the web page, a call's keypad or speech, an SMS reply), with the remote wording version the
response was read or sent with (``mode_wording``, empty for the web page's)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

from sqlalchemy.orm import Session

from proapp import csvfiles
from proapp.export.data import Exported
from proapp.export.formats.common import Page, all_scores, correction_source, current_answers, iso, removed, shown
from proapp.instruments.schema import Instrument, Item

MEDIA_TYPES = ("text/csv",)
ATTACHMENT = "responses.csv"        # after the study's code

CSV_COLUMNS = ("response_id", "sequence", "subject_id", "site", "visit", "instrument", "instrument_version",
               "language", "completed_at", "completed_on_site", "item_code", "repeat", "value", "item_label",
               "value_label", "answered_at", "original_value", "corrected_at", "corrected_by", "correction_reason",
               "correction_signature", "correction_source", "correction_requested_on",
               "correction_request_method", "row_kind", "answer_language", "entered_with", "answer_mode",
               "mode_wording")


def value_label(item: Item, value: str | None, lang: str) -> str:
    if value is None:
        return ""
    if item.type == "choice":
        for opt in item.option_list:
            if opt.value == value:
                return opt.label(lang)
    if item.type == "check":
        return "ticked" if lang == "en" else "coché"
    return value


def csv_rows(e: Exported, inst: Instrument, lang: str, variant: str | None,
             sequence: int) -> Iterator[tuple[Any, ...]]:
    """One row per answer (``row_kind`` answer), then one per derived score (``score``: ``item_code`` the score's
    code, ``repeat`` its repeat for a value per ulcer). The item's label is what the patient read (stem, the study's
    ``variant``); a corrected answer keeps the time it was given (``answered_at``) beside ``corrected_at``. Last, a
    corrected response's ``removed_answer`` and ``removed_score`` rows (empty value) name what an earlier revision
    had and this one no longer has: the receiver deletes it. ``entered_with``: a visual analogue scale's control
    ("line" or "number"), empty elsewhere. ``answer_mode``: how the answer was given ("web" for one saved before
    modes were recorded; empty on score rows and on an answer a correction added); ``mode_wording`` on every row
    of a response answered by voice or SMS."""
    head = (e.id, sequence, e.subject_id, e.site, e.visit, e.instrument, e.version,
            e.language, iso(e.completed_at), "yes" if e.on_site else "no")
    originals = {(c[0], c[1]): c for c in reversed(e.corrections)}      # the first correction holds the original
    latest = {(c[0], c[1]): c for c in e.corrections}
    given = {(code, repeat): at for code, repeat, _value, at in e.answers}
    wording = e.mode_wording or ""
    for code, repeat, value, _at in current_answers(inst, e):
        try:
            item = inst.item(code)
        except KeyError:
            continue
        fix = latest.get((code, repeat))
        label = shown(item, e, variant or inst.default_variant)(lang)
        answered = given.get((code, repeat))       # None: an answer a correction added where there was none
        yield (*head, code, repeat, "" if value is None else value, label,
               value_label(item, value, lang), iso(answered) if answered else "",
               *(("" if originals[(code, repeat)][2] is None else originals[(code, repeat)][2], iso(fix[6]), fix[5],
                  fix[4], f"{fix[8]}: {fix[7]}" if fix[7] else "", *correction_source(fix)) if fix else ("",) * 8),
               "answer", e.answer_languages.get((code, repeat), ""), e.entered_with.get((code, repeat), ""),
               e.answer_modes.get((code, repeat), ""), wording)
    labels = {d.code: d.label(lang) for d in inst.derived}
    no_answer_columns = ("",) * 10             # value_label, answered_at and the correction's eight columns
    for code, repeat, value in all_scores(inst, e.current_scores):
        yield (*head, code, repeat or 0, "" if value is None else value, labels[code], *no_answer_columns, "score",
               "", "", "", wording)
    items = {i.code: i for i in inst.items}
    for kind, code, repeat in removed(inst, e):
        label = labels[code] if kind == "score" else (
            shown(items[code], e, variant or inst.default_variant)(lang) if code in items else "")
        yield (*head, code, repeat or 0, "", label, *no_answer_columns, f"removed_{kind}", "", "",
               "", wording)


def page_chunks(page: Page, db: Session) -> Iterator[str]:
    """A page of responses: the header row, then each response's rows, in blocks of about 32 kB."""
    out = io.StringIO()
    writer = csvfiles.writer(out)
    writer.writerow(CSV_COLUMNS)
    for n, e in enumerate(page.responses(db), 1):
        use = page.study.instruments.get(e.instrument)
        writer.writerows(csv_rows(e, page.instrument(e), page.labels, use.variant if use else None,
                                  page.position + n))
        if out.tell() > 32 * 1024:
            yield out.getvalue()
            out.seek(0)
            out.truncate()
    yield out.getvalue()
