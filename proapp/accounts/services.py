"""Creating staff accounts. Passwords are hashed with scrypt (werkzeug)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from proapp.accounts.models import Role, User, UserScope
from proapp.studies.models import Site, Study

MIN_PASSWORD_LENGTH = 12


class AccountError(ValueError):
    pass


def create_user(db: Session, *, email: str, password: str, role: Role, now: datetime,
                study_code: str | None = None, site_code: str | Sequence[str] | None = None,
                language: str = "fr", created_by: str = "cli") -> User:
    email = email.strip().lower()
    if "@" not in email or len(email) > 254:
        raise AccountError(f"{email!r} is not an e-mail address")
    if db.scalar(select(User.id).where(User.email == email)) is not None:
        raise AccountError(f"an account for {email} already exists")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccountError(f"the password must have at least {MIN_PASSWORD_LENGTH} characters")
    if role != Role.ADMIN and not study_code:
        raise AccountError(f"a {role.value} needs a study")
    user = User(email=email, password_hash=generate_password_hash(password, method="scrypt"), role=role,
                language=language, created_at=now)
    db.add(user)
    db.flush()
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
    from proapp.audit.services import record

    record(db, actor=created_by, action="user.created", entity="app_user", entity_id=user.id,
           new={"email": email, "role": role.value, "study": study_code,
                "sites": [site_code] if isinstance(site_code, str) else list(site_code or []),
                "language": language}, at=now)
    db.flush()
    return user


# Signing in ------------------------------------------------------------------------------------------------

_DUMMY_HASH: list[str] = []


class LoginRefused(Exception):
    """Wrong e-mail or password, inactive or locked account: the page says the same thing in every case, so
    it never tells whether an account exists."""


def _dummy_check(password: str) -> None:
    """Spend the time a real check takes, so an unknown e-mail is not faster to refuse."""
    if not _DUMMY_HASH:
        _DUMMY_HASH.append(generate_password_hash("proapp-dummy-password", method="scrypt"))
    check_password_hash(_DUMMY_HASH[0], password)


def authenticate(db: Session, email: str, password: str, *, now: datetime, max_failures: int,
                 lock_for: timedelta, client: dict[str, str] | None = None) -> User:
    """The user these credentials belong to, or LoginRefused. ``max_failures`` wrong passwords in a row lock the
    account for ``lock_for`` (counted in one UPDATE, so parallel attempts cannot slip through)."""
    from proapp.audit.services import record

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
    if not password or len(password) > 1024 or not check_password_hash(user.password_hash, password):
        failures = db.execute(update(User).where(User.id == user.id)
                              .values(failed_logins=User.failed_logins + 1)
                              .returning(User.failed_logins)).scalar_one()
        if failures >= max_failures:
            db.execute(update(User).where(User.id == user.id).values(locked_until=now + lock_for, failed_logins=0))
            record(db, actor="system:login", action="user.locked", entity="app_user", entity_id=user.id,
                   new={"locked_until": (now + lock_for).isoformat()}, at=now)
        db.flush()
        raise refused("wrong password")
    user.failed_logins, user.locked_until = 0, None
    record(db, actor=f"user:{user.email}", action="user.login", entity="app_user", entity_id=user.id,
           new=client or None, at=now)
    db.flush()
    return user


def scopes_of(db: Session, user_id: int) -> list[tuple[int, int | None]]:
    return [(s, site) for s, site in db.execute(select(UserScope.study_id, UserScope.site_id)
                                                  .where(UserScope.user_id == user_id))]
