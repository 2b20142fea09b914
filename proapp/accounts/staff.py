"""Staff accounts: creating them, signing in, the server-side sessions. Passwords are hashed with scrypt (werkzeug)."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from proapp.accounts import passwords
from proapp.accounts.models import Role, StaffSession, User, UserScope
from proapp.audit.trail import record
from proapp.mail import plain_address
from proapp.studies.models import Site, Study
from proapp.tokens import token_hash

MIN_PASSWORD_LENGTH = passwords.MIN_LENGTH
MAX_PASSWORD_LENGTH = passwords.MAX_LENGTH
UNUSABLE_HASH = "!"         # an invited account until its owner sets a password: no password matches it


class AccountError(ValueError):
    pass


def create_user(db: Session, *, email: str, password: str | None, role: Role, now: datetime,
                study_code: str | None = None, site_code: str | Sequence[str] | None = None,
                language: str = "fr", created_by: str = "cli") -> User:
    """An account. ``password`` None: an invitation, whose owner sets the password through the mailed link."""
    address = plain_address(email)
    if address is None:
        raise AccountError(f"{email.strip()[:254]!r} is not one plain e-mail address (name@hospital.fr)")
    email = address
    if db.scalar(select(User.id).where(User.email == email)) is not None:
        raise AccountError(f"an account for {email} already exists")
    if password is not None and (why := passwords.problem(password, email)):
        raise AccountError(why)
    if role != Role.ADMIN and not study_code:
        raise AccountError(f"a {role.value} needs a study")
    user = User(email=email, role=role, language=language, created_at=now,
                password_hash=UNUSABLE_HASH if password is None else generate_password_hash(password, method="scrypt"))
    db.add(user)
    db.flush()
    _set_scopes(db, user, study_code, site_code)

    record(db, actor=created_by, action="user.invited" if password is None else "user.created", entity="app_user",
           entity_id=user.id, new={"email": email, "role": role.value, "study": study_code,
                                   "sites": [site_code] if isinstance(site_code, str) else list(site_code or []),
                                   "language": language}, at=now)
    db.flush()
    return user


def _set_scopes(db: Session, user: User, study_code: str | None, site_code: str | Sequence[str] | None) -> None:
    db.execute(UserScope.__table__.delete().where(UserScope.user_id == user.id))
    if study_code:
        study = db.scalar(select(Study).where(Study.code == study_code))
        if study is None:
            raise AccountError(f"unknown study {study_code}")
        codes = [site_code] if isinstance(site_code, str) else list(site_code or [])
        site_ids: list[int | None] = []
        for code in dict.fromkeys(codes):
            site = db.scalar(select(Site).where(Site.study_id == study.id, Site.code == code))
            if site is None:
                raise AccountError(f"unknown site {code} in {study_code}")
            site_ids.append(site.id)
        for site_id in site_ids or [None]:          # no site: every site of the study
            db.add(UserScope(user_id=user.id, study_id=study.id, site_id=site_id))
    db.flush()


def _other_active_admins(db: Session, user: User) -> int:
    """How many other active admins there are, with their rows locked until the transaction ends: two admins
    disabling (or demoting) each other at the same moment are taken one after the other, and the second one
    sees that the first is no longer an active admin (PostgreSQL re-reads a locked row once it is released;
    SQLite's writers already take turns)."""
    admins = db.scalars(select(User.id).where(User.role == Role.ADMIN, User.active.is_(True))
                        .order_by(User.id).with_for_update()).all()
    return sum(1 for admin_id in admins if admin_id != user.id)


def update_account(db: Session, user: User, *, role: Role, study_code: str | None, site_codes: Sequence[str],
                   language: str, now: datetime, actor: str, reason: str) -> None:
    """Change an account's role, scope and language (a reason is required). The last active admin stays one."""
    if not reason.strip():
        raise AccountError("a reason is required")
    if role != Role.ADMIN and not study_code:
        raise AccountError(f"a {role.value} needs a study")
    if user.role == Role.ADMIN and role != Role.ADMIN and user.active and not _other_active_admins(db, user):
        raise AccountError("the last active admin must stay an admin")
    old = {"role": user.role.value, "scopes": scopes_of(db, user.id), "language": user.language}
    user.role, user.language = role, language
    _set_scopes(db, user, study_code if role != Role.ADMIN else None, site_codes)

    record(db, actor=actor, action="user.changed", entity="app_user", entity_id=user.id, old=old,
           new={"role": role.value, "scopes": scopes_of(db, user.id), "language": language}, reason=reason.strip(),
           at=now)
    if old["role"] != role.value or old["scopes"] != scopes_of(db, user.id):
        end_all_sessions(db, user.id, now, actor=actor, reason="access_changed")     # new rights at next sign-in
    db.flush()


# Signing in ------------------------------------------------------------------------------------------------

_DUMMY_HASH: list[str] = []


class LoginRefused(Exception):
    """Wrong e-mail or password, inactive or locked account: the page says the same thing in every case, so
    it never tells whether an account exists."""


def _dummy_check(password: str) -> None:
    """Spend the time a real check takes, so an unknown e-mail is not faster to refuse."""
    if not _DUMMY_HASH:
        _DUMMY_HASH.append(generate_password_hash("proapp-dummy-password", method="scrypt"))
    check_password_hash(_DUMMY_HASH[0], password[:MAX_PASSWORD_LENGTH])


def authenticate(db: Session, email: str, password: str, *, now: datetime, max_failures: int,
                 lock_for: timedelta, client: dict[str, str] | None = None) -> User:
    """The user these credentials belong to, or LoginRefused. ``max_failures`` wrong passwords in a row lock the
    account for ``lock_for`` (counted in one UPDATE, so parallel attempts cannot slip through). For an account
    with two-factor sign-in the password is only the first step: the count of failures goes on until the code."""
    email = (email or "").strip().lower()
    user = db.scalar(select(User).where(User.email == email)) if 0 < len(email) <= 254 else None

    def refused(why: str) -> LoginRefused:
        record(db, actor=f"user:{email[:120]}" if email else "anonymous", action="user.login_failed",
               entity="app_user", entity_id=user.id if user else None, new={"why": why, **(client or {})}, at=now)
        return LoginRefused()

    if user is None or not user.active:
        _dummy_check(password or "")
        raise refused("unknown or disabled account")
    if user.locked_until is not None and now < user.locked_until:
        _dummy_check(password or "")
        raise refused("account locked")
    if len(password or "") > MAX_PASSWORD_LENGTH:
        _dummy_check(password)          # the same work as any wrong password: timing tells nothing
        valid = False
    else:
        valid = bool(password) and check_password_hash(user.password_hash, password)
    if not valid:
        count_failure(db, user, now, max_failures=max_failures, lock_for=lock_for)
        raise refused("wrong password")
    if user.totp_enabled_at is not None:
        record(db, actor=f"user:{user.email}", action="user.login_password_ok", entity="app_user",
               entity_id=user.id, new=client or None, at=now)
        db.flush()
        return user
    signed_in(db, user, now, client)
    return user


def count_failure(db: Session, user: User, now: datetime, *, max_failures: int, lock_for: timedelta) -> None:
    """One more wrong password, code or signature; ``max_failures`` in a row lock the account."""
    failures = db.execute(update(User).where(User.id == user.id).values(failed_logins=User.failed_logins + 1)
                          .returning(User.failed_logins)).scalar_one()
    if failures >= max_failures:
        db.execute(update(User).where(User.id == user.id).values(locked_until=now + lock_for, failed_logins=0))
        record(db, actor="system:login", action="user.locked", entity="app_user", entity_id=user.id,
               new={"locked_until": (now + lock_for).isoformat()}, at=now)
    db.flush()


def signed_in(db: Session, user: User, now: datetime, client: dict[str, str] | None = None,
              second_factor: str | None = None) -> None:
    user.failed_logins, user.locked_until = 0, None
    record(db, actor=f"user:{user.email}", action="user.login", entity="app_user", entity_id=user.id,
           new={**(client or {}), **({"second_factor": second_factor} if second_factor else {})} or None, at=now)
    db.flush()


def scopes_of(db: Session, user_id: int) -> list[tuple[int, int | None]]:
    return sorted(((s, site) for s, site in db.execute(select(UserScope.study_id, UserScope.site_id)
                                                         .where(UserScope.user_id == user_id))),
                  key=lambda sc: (sc[0], sc[1] or 0))


def check_current_password(user: User, password: str) -> bool:
    """The signed-in user's own password, asked again before a change (the same cost when too long)."""
    if len(password or "") > MAX_PASSWORD_LENGTH:
        _dummy_check(password)
        return False
    return bool(password) and check_password_hash(user.password_hash, password)


# Sessions --------------------------------------------------------------------------------------------------


def start_session(db: Session, user: User, now: datetime) -> str:
    """A new session for ``user``; returns the token the session cookie carries (only its hash is stored)."""
    token = secrets.token_urlsafe(32)
    db.add(StaffSession(token_hash=token_hash(token), user_id=user.id, created_at=now, last_seen_at=now))
    db.flush()
    return token


@dataclass(frozen=True)
class SessionCheck:
    """What the session cookie's token is worth now: the user, or why not (``ended``: unknown, signed out or
    ended by the server; ``idle``; ``expired``: over the absolute lifetime)."""

    user: User | None
    refused: str | None = None


def check_session(db: Session, token: str, now: datetime, *, idle: timedelta, lifetime: timedelta,
                  touch_every: timedelta = timedelta(seconds=60)) -> SessionCheck:
    """The user behind ``token`` if its session is live, else why not (an idle or expired session is ended
    here). Activity moves the idle deadline; it is written at most once per ``touch_every``."""
    row = db.scalar(select(StaffSession).where(StaffSession.token_hash == token_hash(token)))
    if row is None or row.ended_at is not None:
        return SessionCheck(None, "ended")
    user = db.get(User, row.user_id)
    for reason, over in (("disabled", user is None or not user.active), ("expired", now - row.created_at > lifetime),
                         ("idle", now - row.last_seen_at > idle)):
        if over:
            row.ended_at, row.end_reason = now, reason
            db.flush()
            return SessionCheck(None, reason)
    if now - row.last_seen_at >= touch_every:
        row.last_seen_at = now
        db.flush()
    return SessionCheck(user)


def end_session(db: Session, token: str, now: datetime, reason: str = "signed_out") -> None:
    db.execute(update(StaffSession).where(StaffSession.token_hash == token_hash(token),
                                          StaffSession.ended_at.is_(None))
               .values(ended_at=now, end_reason=reason))


def end_all_sessions(db: Session, user_id: int, now: datetime, *, actor: str, reason: str) -> int:
    """End every open session of an account at once (password change, disabled account, an admin's "end all
    sessions"); recorded in the audit trail. Returns how many were open."""
    ended = db.execute(update(StaffSession).where(StaffSession.user_id == user_id, StaffSession.ended_at.is_(None))
                       .values(ended_at=now, end_reason=reason[:40])).rowcount

    record(db, actor=actor, action="user.sessions_ended", entity="app_user", entity_id=user_id,
           new={"sessions": ended}, reason=reason, at=now)
    return ended


def set_password(db: Session, user: User, password: str, now: datetime, *, actor: str) -> None:
    """A new password; every open session of the account ends. The count of wrong tries (and a lock) ends too,
    unless the account signs in with a second factor: a new password does not buy more tries at the code."""
    why = passwords.problem(password, user.email)
    if why:
        raise AccountError(why)
    user.password_hash = generate_password_hash(password, method="scrypt")
    if user.totp_enabled_at is None:
        user.failed_logins, user.locked_until = 0, None

    record(db, actor=actor, action="user.password_changed", entity="app_user", entity_id=user.id, at=now)
    end_all_sessions(db, user.id, now, actor=actor, reason="password_changed")
    db.flush()


def set_active(db: Session, user: User, active: bool, now: datetime, *, actor: str, reason: str) -> None:
    """Disable or re-enable an account (a reason is required); disabling ends its sessions. The last active
    admin cannot be disabled."""
    if not reason.strip():
        raise AccountError("a reason is required")
    if user.active == active:
        raise AccountError(f"the account is already {'enabled' if active else 'disabled'}")
    if not active and user.role == Role.ADMIN and not _other_active_admins(db, user):
        raise AccountError("the last active admin cannot be disabled")
    user.active = active

    record(db, actor=actor, action="user.enabled" if active else "user.disabled", entity="app_user",
           entity_id=user.id, old={"active": not active}, new={"active": active}, reason=reason.strip(), at=now)
    if not active:
        end_all_sessions(db, user.id, now, actor=actor, reason="disabled")
    db.flush()
