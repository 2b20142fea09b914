"""API keys and what they did: pulls, acknowledgements; and the pushes of responses to an EDC endpoint."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from proapp.db import Base


class ApiKey(Base):
    """A key for one study (optionally some of its sites). Only the SHA-256 of the secret is kept."""

    __tablename__ = "api_key"

    id: Mapped[int] = mapped_column(primary_key=True)
    prefix: Mapped[str] = mapped_column(String(16), unique=True)       # shown in lists and logs; not secret
    secret_sha256: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(120))
    study_id: Mapped[int] = mapped_column(ForeignKey("study.id"), index=True)
    site_ids: Mapped[list[int] | None] = mapped_column(JSON)            # None: every site of the study
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(120))
    revoked_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]


class ApiPull(Base):
    """Every request made with a key: which key, what, when, how many responses went out."""

    __tablename__ = "api_pull"

    id: Mapped[int] = mapped_column(primary_key=True)
    api_key_id: Mapped[int] = mapped_column(ForeignKey("api_key.id"), index=True)
    at: Mapped[datetime]
    endpoint: Mapped[str] = mapped_column(String(60))
    params: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    status: Mapped[int]
    items: Mapped[int | None]


class Acknowledgement(Base):
    """The EDC says it has imported a response in one revision (0 as completed, n after n corrections); once per
    key and revision. Acknowledging revision 0 says nothing of a later correction."""

    __tablename__ = "acknowledgement"
    __table_args__ = (UniqueConstraint("response_id", "api_key_id", "revision"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    response_id: Mapped[int] = mapped_column(ForeignKey("response.id"), index=True)
    api_key_id: Mapped[int] = mapped_column(ForeignKey("api_key.id"))
    revision: Mapped[int] = mapped_column(default=0, server_default="0")
    at: Mapped[datetime]


class PushDelivery(Base):
    """One completed response to POST to the study's EDC endpoint, retried with backoff until accepted."""

    __tablename__ = "push_delivery"
    __table_args__ = (UniqueConstraint("response_id", "endpoint", "export_seq"),
                      Index("ix_push_delivery_due", "status", "due_at"))

    id: Mapped[int] = mapped_column(primary_key=True)
    response_id: Mapped[int] = mapped_column(ForeignKey("response.id"))
    export_seq: Mapped[int | None] = mapped_column(BigInteger)      # the response's version: a correction re-sends
    study_id: Mapped[int] = mapped_column(ForeignKey("study.id"), index=True)
    endpoint: Mapped[str] = mapped_column(String(500))
    status: Mapped[str] = mapped_column(String(12))        # proapp/outbox's words: pending, sending, sent, failed
    attempts: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime]
    due_at: Mapped[datetime]                               # the next try
    claimed_by: Mapped[str | None] = mapped_column(String(80))
    claimed_at: Mapped[datetime | None]
    last_attempt_at: Mapped[datetime | None]
    last_status_code: Mapped[int | None]
    last_error: Mapped[str | None] = mapped_column(String(300))
    delivered_at: Mapped[datetime | None]


class ExportFeed(Base):
    """One row: the last export sequence number given. Locking it serialises the sequencers (row lock on
    PostgreSQL, the write lock on SQLite), so numbers follow commit order and never go back."""

    __tablename__ = "export_feed"

    id: Mapped[int] = mapped_column(primary_key=True)
    last_seq: Mapped[int] = mapped_column(BigInteger, default=0)
