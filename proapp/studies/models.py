"""Studies and their sites, as loaded from the study files (the files are the source of truth)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from proapp.db import Base


class Study(Base):
    __tablename__ = "study"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    title: Mapped[str] = mapped_column(String(300))
    subject_id_pattern: Mapped[str] = mapped_column(String(200))
    definition_version: Mapped[str] = mapped_column(String(40))
    definition_sha256: Mapped[str] = mapped_column(String(64))
    loaded_at: Mapped[datetime]

    sites: Mapped[list[Site]] = relationship(back_populates="study", order_by="Site.code")


class Site(Base):
    __tablename__ = "site"
    __table_args__ = (UniqueConstraint("study_id", "code"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("study.id"), index=True)
    code: Mapped[str] = mapped_column(String(12))
    name: Mapped[str] = mapped_column(String(200))
    phone: Mapped[str | None] = mapped_column(String(32))              # for patients (E.164)
    on_call_email: Mapped[str | None] = mapped_column(String(254))     # receives the site's alerts
    on_call_mobile: Mapped[str | None] = mapped_column(String(32))     # receives urgent alerts by SMS
    timezone: Mapped[str] = mapped_column(String(64))
    active: Mapped[bool] = mapped_column(default=True)

    study: Mapped[Study] = relationship(back_populates="sites")


class StudyClosure(Base):
    """A study being closed, then closed (``proapp study close``, or an admin's signed page): from the row's
    creation the study takes no new patient, its links say it is closed and no SMS goes. Each later step records
    when it was done, so that a closure interrupted continues where it stopped and never does a step twice: the
    final export and the signed archive, the phone numbers erased, the live data removed (or kept, per the study
    file's ``closure.live_data``). The study row itself stays."""

    __tablename__ = "study_closure"

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("study.id"), unique=True)
    started_at: Mapped[datetime]
    started_by: Mapped[str] = mapped_column(String(160))
    forced_reason: Mapped[str | None] = mapped_column(String(500))     # closed while visits were still open
    signature: Mapped[dict[str, Any] | None] = mapped_column(JSON)     # an admin's electronic signature (page)
    live_data: Mapped[str] = mapped_column(String(10))                 # keep or remove, from the study file
    archive_name: Mapped[str | None] = mapped_column(String(200))
    archive_sha256: Mapped[str | None] = mapped_column(String(64))
    archived_at: Mapped[datetime | None]
    contacts_erased_at: Mapped[datetime | None]
    live_data_done_at: Mapped[datetime | None]                        # removed, or kept as the study file says


class ClosedLink(Base):
    """An SMS link of a closed study: only its token's SHA-256 (as ``access_link`` keeps it) and the patient's
    language, so that the link still says, in the patient's language, that the study is closed once the live
    data is removed."""

    __tablename__ = "closed_link"

    token_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("study.id"), index=True)
    language: Mapped[str] = mapped_column(String(2))
