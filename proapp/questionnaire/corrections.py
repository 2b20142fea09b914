"""Corrections of completed answers by authorised staff. The original answer never changes: a correction is a
new record with the value it replaces, the new value, who, when and why. The response's scores are recomputed
from the corrected answers (the completion's scores are kept), and the response goes back into the export feed
so the EDC receives it again, corrected."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from flask_babel import lazy_gettext as _l
from sqlalchemy import select
from sqlalchemy.orm import Session

from proapp.audit.trail import record
from proapp.instruments import Instrument, Registry, removed_scores, score_with, still_asked
from proapp.instruments.ulcers import context_from_json, reports_of
from proapp.questionnaire import flow as flowmod
from proapp.questionnaire.models import Answer, Correction, Response, ResponseStatus
from proapp.studies.schema import CORRECTION_SOURCES

REASON_MAX = 500
REQUEST_METHODS = ("phone", "visit", "letter", "email")


class CorrectionRefused(ValueError):
    def __init__(self, message: object):
        super().__init__(str(message))
        self.message = message


def effective_answers(db: Session, response: Response) -> tuple[dict[tuple[str, int], str], list[Correction]]:
    """The answers as corrected (latest correction wins) and the corrections in order."""
    answers = {(code, rep): value for code, rep, value in db.execute(
        select(Answer.item_code, Answer.repeat_index, Answer.value).where(Answer.response_id == response.id))
        if value is not None}
    corrections = list(db.scalars(select(Correction).where(Correction.response_id == response.id)
                                  .order_by(Correction.id)))
    for c in corrections:
        answers[(c.item_code, c.repeat_index)] = c.new_value
    return answers, corrections


@dataclass(frozen=True)
class Source:
    """Where a correction comes from: ``kind`` one of CORRECTION_SOURCES; for the patient's request, the day they
    made it (``requested_on``, their calendar) and how (``method``, one of REQUEST_METHODS)."""

    kind: str
    requested_on: date | None = None
    method: str | None = None


def check_source(source: Source, allowed: list[str], response: Response, today: date) -> None:
    """Refuse a source the study does not allow, or one without what documents it."""
    if source.kind not in CORRECTION_SOURCES:
        raise CorrectionRefused(_l("Choose where the correction comes from."))
    if source.kind not in allowed:
        raise CorrectionRefused(_l("This study does not allow corrections from this source."))
    if source.kind == "patient_request":
        if source.method not in REQUEST_METHODS:
            raise CorrectionRefused(_l("Say how the patient asked for the correction."))
        completed = response.completed_at.date() if response.completed_at else today
        if source.requested_on is None or not completed - timedelta(days=1) <= source.requested_on <= today:
            raise CorrectionRefused(_l("Give the day the patient asked, between the questionnaire's completion "
                                       "and today."))
    elif source.requested_on is not None or source.method is not None:
        raise CorrectionRefused(_l("A request's day and means are given only for the patient's request."))
    if source.kind == "transcription_error" and not response.completed_on_site:
        raise CorrectionRefused(_l("A transcription error concerns a paper form entered on site; the patient "
                                   "answered this questionnaire on their own device."))


def correct_answer(db: Session, registry: Registry, response: Response, *, item_code: str, repeat: int,
                   value: str, reason: str | None, actor: str, patient_id: int, now: datetime,
                   signature: dict[str, Any] | None = None, source: Source | None = None,
                   allowed_sources: list[str] | None = None, today: date | None = None) -> Correction:
    """Record a correction; ``signature`` (meaning, method...) is the signer's electronic signature of it;
    ``source`` where it comes from, among the study's ``allowed_sources``; ``today`` the patient's day."""
    if response.status != ResponseStatus.COMPLETED:
        raise CorrectionRefused(_l("Only completed questionnaires are corrected; the patient can still change "
                                   "this one."))
    if source is None:
        raise CorrectionRefused(_l("Choose where the correction comes from."))
    check_source(source, list(allowed_sources or CORRECTION_SOURCES), response, today or now.date())
    inst: Instrument = registry.get(response.instrument_code, response.instrument_version)
    try:
        item = inst.item(item_code)
    except KeyError:
        raise CorrectionRefused(_l("This question is not part of this questionnaire.")) from None
    answers, _corrections = effective_answers(db, response)
    repeats = {rep for (_code, rep) in answers if rep}
    if (item.group is None and repeat != 0) or (item.group is not None and repeat not in repeats):
        raise CorrectionRefused(_l("This question was not asked in this questionnaire."))
    value = (value or "").strip()
    try:
        item.check_value(value)
    except ValueError:
        raise CorrectionRefused(_l("This value is not one the question allows.")) from None
    reason = (reason or "").strip()
    if not reason:
        raise CorrectionRefused(_l("Give the reason for this change."))
    if len(reason) > REASON_MAX:
        raise CorrectionRefused(_l("The reason must be at most %(n)s characters.", n=REASON_MAX))
    old = answers.get((item_code, repeat))
    if old == value:
        raise CorrectionRefused(_l("This is already the recorded answer."))
    correction = Correction(response_id=response.id, item_code=item_code, repeat_index=repeat, old_value=old,
                            new_value=value, reason=reason, corrected_by=actor, corrected_at=now,
                            signature_meaning=(signature or {}).get("meaning"),
                            signature_method=(signature or {}).get("method"), source=source.kind,
                            requested_on=source.requested_on, request_method=source.method)
    db.add(correction)
    answers[(item_code, repeat)] = value
    # Scored again with what the patient was asked with: the registry as the entry opened and the numbers its
    # ulcers were given at completion (a corrected finger does not renumber anything).
    ulcers = None
    if response.flow_state and "ulcers" in response.flow_state:
        ulcers = context_from_json(response.flow_state["ulcers"], reports_of(response.scores))
    # Answers the correction made meaningless (a closing day beside "not closed") are not scored.
    asked = still_asked(inst, answers)
    scores = score_with(inst, flowmod.as_scoring_answers({k: v for k, v in answers.items() if k in asked}), ulcers)
    removed = removed_scores(inst, response.corrected_scores or response.scores, scores)
    if removed:
        scores["removed"] = [list(k) for k in removed]
    response.corrected_scores = scores
    response.export_seq = None                    # back into the feed: the EDC gets the corrected response
    db.flush()
    record(db, actor=actor, action="answer.corrected", entity="answer", entity_id=f"{response.id}:{item_code}:{repeat}",
           patient_id=patient_id, old={"value": old}, new={"value": value, "instrument": inst.code,
                                                            "version": inst.version, "scores": scores,
                                                            "source": {"kind": source.kind,
                                                                       "requested_on": source.requested_on,
                                                                       "method": source.method},
                                                            **({"signature": signature} if signature else {})},
           reason=reason, at=now)
    return correction
