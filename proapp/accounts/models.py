"""Staff accounts and their roles (admin, coordinator of sites, monitor of a study)."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import JSON, BigInteger, Enum, ForeignKey, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from proapp.db import Base


class Role(enum.StrEnum):
    ADMIN = "admin"
    COORDINATOR = "coordinator"
    MONITOR = "monitor"


class User(Base):
    __tablename__ = "app_user"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[Role] = mapped_column(Enum(Role, name="user_role", native_enum=False, create_constraint=True,
                                            length=20, values_callable=lambda e: [m.value for m in e],
                                            validate_strings=True))
    language: Mapped[str] = mapped_column(String(2), default="fr")
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime]
    failed_logins: Mapped[int] = mapped_column(default=0)
    locked_until: Mapped[datetime | None]
    # Two-factor sign-in (TOTP, RFC 6238): the secret encrypted with the app's data keys (PROAPP_PHONE_KEYS), the
    # last time step accepted (a code works once), and the recovery codes' SHA-256 (each works once).
    totp_secret_ciphertext: Mapped[bytes | None] = mapped_column(LargeBinary)
    totp_enabled_at: Mapped[datetime | None]
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger)
    recovery_codes: Mapped[list[str] | None] = mapped_column(JSON)

    scopes: Mapped[list[UserScope]] = relationship(back_populates="user", cascade="all, delete-orphan")


class UserScope(Base):
    """What a coordinator or monitor may see: a study, optionally one site of it (None: every site)."""

    __tablename__ = "user_scope"
    __table_args__ = (UniqueConstraint("user_id", "study_id", "site_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("app_user.id"), index=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("study.id"))
    site_id: Mapped[int | None] = mapped_column(ForeignKey("site.id"))

    user: Mapped[User] = relationship(back_populates="scopes")


class StaffSession(Base):
    """A signed-in browser. The session cookie carries a random token; only its SHA-256 is kept here, so the
    server can end a session at once (sign-out, password change, disabled account, "end all sessions") and a
    copied cookie stops working. Ended sessions stay as the record of who was signed in when."""

    __tablename__ = "staff_session"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("app_user.id"), index=True)
    created_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]
    end_reason: Mapped[str | None] = mapped_column(String(40))


class AccountToken(Base):
    """A one-time link to set a password: an invitation (72 hours) or a reset (1 hour). Only the SHA-256 of the
    token is kept; the link works once."""

    __tablename__ = "account_token"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("app_user.id"), index=True)
    purpose: Mapped[str] = mapped_column(String(10))          # invite, reset
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]


class AccountMail(Base):
    """An invitation or reset mail waiting for the worker. The link's token is made when the mail is sent (never
    stored in clear), so the row holds no secret; claimed atomically, sent once."""

    __tablename__ = "account_mail"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("app_user.id"), index=True)
    purpose: Mapped[str] = mapped_column(String(10))          # invite, reset
    status: Mapped[str] = mapped_column(String(10), index=True)   # pending, sending, sent, failed, unknown
    created_at: Mapped[datetime]
    due_at: Mapped[datetime]
    attempts: Mapped[int] = mapped_column(default=0)
    claimed_by: Mapped[str | None] = mapped_column(String(80))
    claimed_at: Mapped[datetime | None]
    sent_at: Mapped[datetime | None]
    error: Mapped[str | None] = mapped_column(String(300))
    token_id: Mapped[int | None] = mapped_column(ForeignKey("account_token.id"))
