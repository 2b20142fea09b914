"""Creating staff accounts. Passwords are hashed with scrypt (werkzeug)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.security import generate_password_hash

from proapp.accounts.models import Role, User, UserScope
from proapp.studies.models import Site, Study

MIN_PASSWORD_LENGTH = 12


class AccountError(ValueError):
    pass


def create_user(db: Session, *, email: str, password: str, role: Role, now: datetime,
                study_code: str | None = None, site_code: str | None = None, language: str = "fr") -> User:
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
        site_id = None
        if site_code:
            site = db.scalar(select(Site).where(Site.study_id == study.id, Site.code == site_code))
            if site is None:
                raise AccountError(f"unknown site {site_code} in {study_code}")
            site_id = site.id
        db.add(UserScope(user_id=user.id, study_id=study.id, site_id=site_id))
        db.flush()
    return user
