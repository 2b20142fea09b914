"""Alerts raised by the study files' rules, and the outbox of their notifications."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Enum, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from proapp.db import Base
from proapp.patients.models import Occurrence, Patient
from proapp.studies.models import Site, Study


def _enum(cls: type[enum.StrEnum], name: str) -> Enum:
    return Enum(cls, name=name, native_enum=False, create_constraint=True, length=20,
                values_callable=lambda e: [m.value for m in e], validate_strings=True)


class AlertState(enum.StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"


class AckAction(enum.StrEnum):
    """What the person who acknowledged an alert did about it."""

    CALLED_PATIENT = "called_patient"
    REFERRED = "referred"
    SEEN_AT_VISIT = "seen_at_visit"
    NO_ACTION = "no_action"


class Alert(Base):
    """A rule met by an occurrence's answers: one per (occurrence, rule), never deleted."""

    __tablename__ = "alert"
    __table_args__ = (
        UniqueConstraint("occurrence_id", "rule_code"),
        Index("ix_alert_state_raised_at", "state", "raised_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("study.id"))
    site_id: Mapped[int] = mapped_column(ForeignKey("site.id"), index=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patient.id"), index=True)
    occurrence_id: Mapped[int] = mapped_column(ForeignKey("occurrence.id"))
    rule_code: Mapped[str] = mapped_column(String(40))
    rule_label: Mapped[dict[str, str]] = mapped_column(JSON)          # {"en": ..., "fr": ...} as raised
    severity: Mapped[str] = mapped_column(String(10))                  # urgent, same_day, review
    source: Mapped[str] = mapped_column(String(20))    # answer_saved, completed, window_closed, withdrawn, study_closed
    evidence: Mapped[list[dict[str, Any]]] = mapped_column(JSON)       # the answers and scores that met the rule
    raised_at: Mapped[datetime]
    state: Mapped[AlertState] = mapped_column(_enum(AlertState, "alert_state"), default=AlertState.OPEN)
    escalation_level: Mapped[int] = mapped_column(default=0)           # notification steps planned after step 0
    notified_at: Mapped[datetime | None]                               # step 0 planned (the worker saw it)
    escalated_at: Mapped[datetime | None]
    acknowledged_at: Mapped[datetime | None]
    acknowledged_by: Mapped[str | None] = mapped_column(String(160))
    ack_action: Mapped[AckAction | None] = mapped_column(_enum(AckAction, "alert_ack_action"))
    ack_note: Mapped[str | None] = mapped_column(String(1000))

    study: Mapped[Study] = relationship()
    site: Mapped[Site] = relationship()
    patient: Mapped[Patient] = relationship()
    occurrence: Mapped[Occurrence] = relationship()


class NotificationStatus(enum.StrEnum):
    PENDING = "pending"      # waiting for its due time (first try or a retry)
    SENDING = "sending"      # claimed by a worker; the message may be on its way
    SENT = "sent"            # the mail server or the SMS gateway took it
    FAILED = "failed"        # refused for good, or given up after the last try
    UNKNOWN = "unknown"      # a worker stopped in the middle of sending: never resent blindly


class AlertNotification(Base):
    """One message about one alert to one recipient at one step (0: raised; 1, 2...: escalations). The unique
    key makes each one exist once; the claim makes it go once."""

    __tablename__ = "alert_notification"
    __table_args__ = (
        UniqueConstraint("alert_id", "step", "channel", "recipient"),
        Index("ix_alert_notification_status_due_at", "status", "due_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alert.id"), index=True)
    step: Mapped[int]
    channel: Mapped[str] = mapped_column(String(10))                   # email, sms
    recipient: Mapped[str] = mapped_column(String(254))                # an e-mail address or an E.164 number
    recipient_kind: Mapped[str] = mapped_column(String(20))            # coordinator, on_call, admin
    language: Mapped[str | None] = mapped_column(String(2))            # None: both languages
    status: Mapped[NotificationStatus] = mapped_column(_enum(NotificationStatus, "alert_notification_status"),
                                                       default=NotificationStatus.PENDING)
    created_at: Mapped[datetime]
    due_at: Mapped[datetime]
    status_at: Mapped[datetime]
    attempts: Mapped[int] = mapped_column(default=0)
    claimed_by: Mapped[str | None] = mapped_column(String(80))
    claimed_at: Mapped[datetime | None]
    sent_at: Mapped[datetime | None]
    provider_id: Mapped[str | None] = mapped_column(String(120))        # Message-ID, or the SMS gateway's SID
    error: Mapped[str | None] = mapped_column(String(300))

    alert: Mapped[Alert] = relationship()
