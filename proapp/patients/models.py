"""Patients (pseudonymised: a subject ID, never a name), their contact kept apart, and their schedule."""

from __future__ import annotations

import enum
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import JSON, Enum, ForeignKey, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from proapp.db import Base

if TYPE_CHECKING:
    from proapp.studies.models import Site, Study


ANSWER_CHANNELS = ("web", "voice", "sms")


class PatientStatus(enum.StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"
    WITHDRAWN = "withdrawn"
    COMPLETED = "completed"


class OccurrenceStatus(enum.StrEnum):
    SCHEDULED = "scheduled"      # not completed yet; "open" or "upcoming" follows from the window and the clock
    COMPLETED = "completed"
    MISSED = "missed"            # the window closed before completion
    CANCELLED = "cancelled"      # the patient was withdrawn before the window closed


def _enum(cls: type[enum.StrEnum], name: str) -> Enum:
    return Enum(cls, name=name, native_enum=False, create_constraint=True, length=20,
                values_callable=lambda e: [m.value for m in e], validate_strings=True)


class Patient(Base):
    __tablename__ = "patient"
    __table_args__ = (UniqueConstraint("study_id", "subject_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("study.id"), index=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("site.id"), index=True)
    subject_id: Mapped[str] = mapped_column(String(40))
    language: Mapped[str] = mapped_column(String(2))
    timezone: Mapped[str] = mapped_column(String(64))
    anchor_date: Mapped[date]
    # The liposuction (autologous cells, a study with ``fat_harvest``): on or before the anchor date (the injection),
    # never moved by a reschedule of it. None: not recorded yet.
    harvest_date: Mapped[date | None]
    sms_hour: Mapped[int]
    # How the patient answers (``ANSWER_CHANNELS``): the web link by SMS, a voice call, or SMS replies; a visit whose
    # questionnaires the study does not allow in that channel goes by web link anyway.
    answer_channel: Mapped[str] = mapped_column(String(10), default="web", server_default="web")
    status: Mapped[PatientStatus] = mapped_column(_enum(PatientStatus, "patient_status"),
                                                  default=PatientStatus.ACTIVE)
    schedule_version: Mapped[str] = mapped_column(String(40))
    enrolled_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    study: Mapped[Study] = relationship()
    site: Mapped[Site] = relationship()
    contact: Mapped[PatientContact | None] = relationship(back_populates="patient", uselist=False)
    occurrences: Mapped[list[Occurrence]] = relationship(
        back_populates="patient", order_by="Occurrence.window_opens_at")


class PatientContact(Base):
    """The patient's phone number, encrypted, in a table of its own so exports never touch it."""

    __tablename__ = "patient_contact"

    patient_id: Mapped[int] = mapped_column(ForeignKey("patient.id"), primary_key=True)
    phone_ciphertext: Mapped[bytes | None] = mapped_column(LargeBinary)
    phone_lookup: Mapped[str | None] = mapped_column(String(64), index=True)
    usable: Mapped[bool] = mapped_column(default=True)
    unusable_reason: Mapped[str | None] = mapped_column(String(200))
    sms_paused_at: Mapped[datetime | None]               # paused by a coordinator (see patient_event)
    opted_out_at: Mapped[datetime | None]                # the patient asked for no more SMS
    # The PIN a voice call asks before any question (scrypt hash, werkzeug); None: no call is answered.
    voice_pin_hash: Mapped[str | None] = mapped_column(String(200))
    updated_at: Mapped[datetime]

    patient: Mapped[Patient] = relationship(back_populates="contact")


class Occurrence(Base):
    """One assessment a patient is due to complete: a visit of the study, its window and instruments."""

    __tablename__ = "occurrence"
    __table_args__ = (UniqueConstraint("patient_id", "visit_code"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patient.id"), index=True)
    visit_code: Mapped[str] = mapped_column(String(20))
    visit_day: Mapped[int]
    instruments: Mapped[list[str]] = mapped_column(JSON)
    due_on: Mapped[date]                   # the visit's target day (anchor + visit day); late after it
    window_opens_on: Mapped[date]          # first local calendar day of the window (patient's zone)
    window_closes_on: Mapped[date]         # last local calendar day of the window
    window_opens_at: Mapped[datetime] = mapped_column(index=True)   # UTC instant of local midnight
    window_closes_at: Mapped[datetime] = mapped_column(index=True)  # UTC instant the window ends (exclusive)
    status: Mapped[OccurrenceStatus] = mapped_column(_enum(OccurrenceStatus, "occurrence_status"),
                                                     default=OccurrenceStatus.SCHEDULED, index=True)
    completed_at: Mapped[datetime | None]
    completed_on_site: Mapped[bool | None]
    # How many times the visit's SMS started again: a reschedule of the anchor date that moved the window after an
    # SMS of it was queued gives it a new round (a new invitation and reminders for the new window).
    sms_round: Mapped[int] = mapped_column(default=0, server_default="0")

    patient: Mapped[Patient] = relationship(back_populates="occurrences")

    def is_open(self, now: datetime) -> bool:
        return window_is_open(self.status, self.window_opens_at, self.window_closes_at, now)


def window_is_open(status: OccurrenceStatus, opens_at: datetime, closes_at: datetime, now: datetime) -> bool:
    """Not completed (nor missed or cancelled), and ``now`` inside the window (closing instant excluded)."""
    return status == OccurrenceStatus.SCHEDULED and opens_at <= now < closes_at


class PatientEvent(Base):
    """What happened to a patient's contact preferences, by whom, when and why (SMS paused, opted out...)."""

    __tablename__ = "patient_event"

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patient.id"), index=True)
    at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(120))       # "user:<email>", "patient:link", "system:<why>"
    action: Mapped[str] = mapped_column(String(40))
    reason: Mapped[str | None] = mapped_column(String(500))
    details: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class Agreement(Base):
    """What the patient agreed to and on which information sheet: at enrolment, the team records the patient's
    agreement to SMS and to answering online (``kind`` agreement); a patient who reads a new version of the
    information sheet acknowledges it on their page (``acknowledgement``). Never changed nor deleted."""

    __tablename__ = "agreement"

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patient.id"), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    information_version: Mapped[str | None] = mapped_column(String(40))  # None: the study file gives no sheet (dev)
    given_on: Mapped[date]                                # the day the patient agreed (their calendar)
    recorded_by: Mapped[str] = mapped_column(String(160))
    recorded_at: Mapped[datetime]
