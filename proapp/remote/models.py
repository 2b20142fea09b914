"""A conversation: one call or one SMS exchange about one visit, its place in the questions and what it holds."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from proapp.db import Base


class ConversationStatus(enum.StrEnum):
    OPEN = "open"                    # questions being asked (a dropped call resumes it)
    COMPLETED = "completed"          # the visit's questionnaires were completed in it
    TIMED_OUT = "timed_out"          # no reply in time: the web link was sent instead
    TO_WEB = "to_web"                # the patient chose the web page
    STOPPED = "stopped"              # the window closed, the patient was withdrawn, or STOP


class Conversation(Base):
    __tablename__ = "conversation"
    __table_args__ = (Index("ix_conversation_patient_status", "patient_id", "status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    occurrence_id: Mapped[int] = mapped_column(ForeignKey("occurrence.id"), index=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patient.id"))
    channel: Mapped[str] = mapped_column(String(10))          # voice, sms
    status: Mapped[str] = mapped_column(String(20), default=ConversationStatus.OPEN.value)
    language: Mapped[str] = mapped_column(String(2))
    # Where it is: the question asked last, the answers heard and not yet confirmed (voice), the tries left.
    state: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    provider_ref: Mapped[str | None] = mapped_column(String(64))   # the call's sid (voice)
    started_at: Mapped[datetime]
    last_activity_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]
