"""Responses to instruments and their answers, with server UTC timestamps."""

from __future__ import annotations

import enum
from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Enum, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from proapp.db import Base
from proapp.patients.models import Occurrence

ANSWER_MODES = ("web", "voice_dtmf", "voice_speech", "sms")


class ResponseStatus(enum.StrEnum):
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"


class Response(Base):
    __tablename__ = "response"
    __table_args__ = (UniqueConstraint("occurrence_id", "instrument_code"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    occurrence_id: Mapped[int] = mapped_column(ForeignKey("occurrence.id"), index=True)
    instrument_code: Mapped[str] = mapped_column(String(20))
    instrument_version: Mapped[str] = mapped_column(String(20))
    language: Mapped[str] = mapped_column(String(2))
    status: Mapped[ResponseStatus] = mapped_column(
        Enum(ResponseStatus, name="response_status", native_enum=False, create_constraint=True, length=20,
             values_callable=lambda e: [m.value for m in e], validate_strings=True),
        default=ResponseStatus.IN_PROGRESS)
    started_at: Mapped[datetime]
    last_saved_at: Mapped[datetime]
    completed_at: Mapped[datetime | None]
    completed_on_site: Mapped[bool | None]
    scores: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # Navigation state that is not clinical data: screens seen, repeats declared in a repeating group.
    flow_state: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # Its place in the export feed, given after completion in commit order (see proapp/export/feed.py); a
    # correction clears it so the response comes again, corrected, later in the feed.
    export_seq: Mapped[int | None] = mapped_column(BigInteger, unique=True)
    # Scores recomputed from the corrected answers (the completion's own scores stay in ``scores``).
    corrected_scores: Mapped[dict[str, Any] | None] = mapped_column(JSON)

    occurrence: Mapped[Occurrence] = relationship()
    answers: Mapped[list[Answer]] = relationship(
        back_populates="response", order_by="(Answer.item_code, Answer.repeat_index)")


VAS_CONTROLS = ("line", "number")


class Answer(Base):
    __tablename__ = "answer"
    __table_args__ = (UniqueConstraint("response_id", "item_code", "repeat_index"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    response_id: Mapped[int] = mapped_column(ForeignKey("response.id"), index=True)
    item_code: Mapped[str] = mapped_column(String(40))
    repeat_index: Mapped[int] = mapped_column(default=0)   # 0 outside a repeating group, 1.. inside
    value: Mapped[str | None] = mapped_column(String(64))
    answered_at: Mapped[datetime]
    # The language the patient read this question in (a response may switch language midway); None before 0024.
    language: Mapped[str | None] = mapped_column(String(2))
    # A visual analogue scale's control the value was given with (``VAS_CONTROLS``): the line drawn by the page's
    # script, or the number box the page shows without JavaScript; None for other items and earlier answers.
    entered_with: Mapped[str | None] = mapped_column(String(10))
    # How the answer was given (``ANSWER_MODES``): the web page, a voice call (keypad or speech) or an SMS reply;
    # None before 0028 (the web page was the only way then).
    mode: Mapped[str | None] = mapped_column(String(12))

    response: Mapped[Response] = relationship(back_populates="answers")


class AccessLink(Base):
    """The SMS link of an occurrence. Only the SHA-256 of the token is kept; a new link revokes the old."""

    __tablename__ = "access_link"

    id: Mapped[int] = mapped_column(primary_key=True)
    occurrence_id: Mapped[int] = mapped_column(ForeignKey("occurrence.id"), index=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime]
    first_opened_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    # None: the occurrence's questionnaire; "information": the SMS that asks the patient to read a new information
    # sheet (it opens the information page, whatever the occurrence's window)
    purpose: Mapped[str | None] = mapped_column(String(20))

    occurrence: Mapped[Occurrence] = relationship()


class Correction(Base):
    """A staff correction of a completed answer: a new record beside the original, which never changes."""

    __tablename__ = "correction"

    id: Mapped[int] = mapped_column(primary_key=True)
    response_id: Mapped[int] = mapped_column(ForeignKey("response.id"), index=True)
    item_code: Mapped[str] = mapped_column(String(40))
    repeat_index: Mapped[int] = mapped_column(default=0)
    old_value: Mapped[str | None] = mapped_column(String(64))     # the value it corrects (original or earlier)
    new_value: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(String(500))
    corrected_by: Mapped[str] = mapped_column(String(160))
    corrected_at: Mapped[datetime]
    # The electronic signature of the change (21 CFR 11.50): what it means, and how the signer was identified
    # ("password" or "password+totp"); the signer and the time are corrected_by and corrected_at.
    signature_meaning: Mapped[str | None] = mapped_column(String(200))
    signature_method: Mapped[str | None] = mapped_column(String(20))
    # Where the correction comes from (ICH E6 R3 on source data): the patient's request (the day they made it and
    # how), a transcription error on a paper form completed on site, or another reason; None before the sources.
    source: Mapped[str | None] = mapped_column(String(30))
    requested_on: Mapped[date | None]
    request_method: Mapped[str | None] = mapped_column(String(20))


class NotedUlcer(Base):
    """An ulcer the study team recorded (at enrolment or on site, usually a treated, injected one), or a mark that
    an ulcer the patient reported was treated. Rows are only added: the patient confirms a noted ulcer in their
    next entry, and the registry (``questionnaire.ulcers``) reads these rows with the completed entries."""

    __tablename__ = "noted_ulcer"
    __table_args__ = (UniqueConstraint("patient_id", "number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patient.id"), index=True)
    number: Mapped[int]                                   # the ulcer's number for this patient
    hand: Mapped[str] = mapped_column(String(1))
    finger: Mapped[str] = mapped_column(String(1))
    site: Mapped[str] = mapped_column(String(10))
    treated: Mapped[bool]
    noted_on: Mapped[date]                                # the day the team saw it (the patient's calendar)
    recorded_by: Mapped[str] = mapped_column(String(160))
    recorded_at: Mapped[datetime]
    # False: an ulcer the team found; True: the mark that an ulcer the patient reported (same number) was treated.
    marks_reported: Mapped[bool] = mapped_column(default=False)


class UlcerDecision(Base):
    """The study team's decision on a patient's ulcer: a dispute resolved (the patient said a noted ulcer is not
    where the team put it: ``confirmed`` the note, ``relocated`` it to the corrected place, or ``closed`` it), or an
    ulcer closed (``closed``: followed no more). Rows are only added; the registry (``questionnaire.ulcers``) applies
    them in order, and each is audited."""

    __tablename__ = "ulcer_decision"

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patient.id"), index=True)
    number: Mapped[int]                                   # the ulcer's number for this patient
    action: Mapped[str] = mapped_column(String(20))       # confirmed, relocated, closed
    hand: Mapped[str | None] = mapped_column(String(1))   # relocated: the corrected place
    finger: Mapped[str | None] = mapped_column(String(1))
    site: Mapped[str | None] = mapped_column(String(10))
    closed_on: Mapped[date | None]                        # closed: the day (the patient's calendar)
    reason: Mapped[str] = mapped_column(String(500))
    decided_by: Mapped[str] = mapped_column(String(160))
    decided_at: Mapped[datetime]
