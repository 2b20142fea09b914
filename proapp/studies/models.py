"""Studies and their sites, as loaded from the study files (the files are the source of truth)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, UniqueConstraint
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
