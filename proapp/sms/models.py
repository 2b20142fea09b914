"""The SMS outbox: every message is a row before it is sent, unique per (occurrence, kind)."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import BigInteger, Enum, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from proapp.db import Base

if TYPE_CHECKING:
    from proapp.patients.models import Occurrence, Patient


class SmsStatus(enum.StrEnum):
    PENDING = "pending"          # waiting for its due time (first try or a retry after a temporary error)
    SENDING = "sending"          # claimed by a worker; the request may be on its way
    UNKNOWN = "unknown"          # the request may have reached the gateway: look it up before anything else
    ACCEPTED = "accepted"        # the gateway took it (Twilio: queued, accepted, scheduled, sending)
    SENT = "sent"                # handed to the mobile network
    DELIVERED = "delivered"      # the phone received it
    UNDELIVERED = "undelivered"  # the network could not deliver it
    FAILED = "failed"            # refused by the gateway, or given up after the last retry
    CANCELLED = "cancelled"      # not sent: completed, paused, opted out, withdrawn, window closed, number unusable


# How far a message has gone; a status callback never moves a message backwards.
PROGRESS = {
    SmsStatus.PENDING: 0, SmsStatus.SENDING: 1, SmsStatus.UNKNOWN: 1, SmsStatus.ACCEPTED: 2, SmsStatus.SENT: 3,
    SmsStatus.DELIVERED: 4, SmsStatus.UNDELIVERED: 4, SmsStatus.FAILED: 4, SmsStatus.CANCELLED: 4,
}
PROBLEMS = (SmsStatus.UNDELIVERED, SmsStatus.FAILED)


class SmsMessage(Base):
    __tablename__ = "sms_message"
    __table_args__ = (
        UniqueConstraint("occurrence_id", "round", "kind"),
        Index("ix_sms_message_status_due_at", "status", "due_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    occurrence_id: Mapped[int] = mapped_column(ForeignKey("occurrence.id"), index=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patient.id"), index=True)
    kind: Mapped[str] = mapped_column(String(20))          # invitation, reminder_1, reminder_2, ...
    # "sms": a text with the link; "voice": a call that asks the questions; "sms_replies": a text that opens an
    # SMS conversation (the patient's answer channel when the row was queued).
    channel: Mapped[str] = mapped_column(String(12), default="sms", server_default="sms")
    round: Mapped[int] = mapped_column(default=0, server_default="0")   # the occurrence's sms_round when queued
    status: Mapped[SmsStatus] = mapped_column(
        Enum(SmsStatus, name="sms_status", native_enum=False, create_constraint=True, length=20,
             values_callable=lambda e: [m.value for m in e], validate_strings=True),
        default=SmsStatus.PENDING)
    created_at: Mapped[datetime]
    due_at: Mapped[datetime]                               # not sent before (local hour, quiet hours, backoff)
    status_at: Mapped[datetime]                            # last change of status
    attempts: Mapped[int] = mapped_column(default=0)
    claimed_by: Mapped[str | None] = mapped_column(String(80))
    claimed_at: Mapped[datetime | None]
    language: Mapped[str | None] = mapped_column(String(2))
    gateway: Mapped[str | None] = mapped_column(String(10))
    # The body holds a link token, so only its SHA-256 is kept (to find the message again at the gateway).
    body_sha256: Mapped[str | None] = mapped_column(String(64))
    body_length: Mapped[int | None]
    access_link_id: Mapped[int | None] = mapped_column(ForeignKey("access_link.id"))
    provider_sid: Mapped[str | None] = mapped_column(String(64), unique=True)
    provider_status: Mapped[str | None] = mapped_column(String(20))
    submitted_at: Mapped[datetime | None]
    error_code: Mapped[int | None]
    error_message: Mapped[str | None] = mapped_column(String(300))
    cancel_reason: Mapped[str | None] = mapped_column(String(40))

    occurrence: Mapped[Occurrence] = relationship()
    patient: Mapped[Patient] = relationship()


class SendSlot(Base):
    """The next free sending instant per sender, shared by every worker: the send rate holds across processes."""

    __tablename__ = "sms_send_slot"

    sender: Mapped[str] = mapped_column(String(80), primary_key=True)
    next_us: Mapped[int] = mapped_column(BigInteger)      # microseconds since the epoch (UTC)
