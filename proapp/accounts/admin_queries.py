"""Reads of the admins' accounts pages: every account with its scope, last sign-in and state."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask_babel import gettext as _
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from proapp.accounts.models import AccountMail, StaffSession, User, UserScope
from proapp.accounts.staff import UNUSABLE_HASH
from proapp.studies.models import Site, Study


@dataclass
class AccountRow:
    user: User
    scope: str                         # "ADUSE (TLS)", "IMATINIB-SSC (every site)", "" for an admin
    last_sign_in: datetime | None
    open_sessions: int
    invited: bool                      # no password set yet


def _scopes(db: Session) -> dict[int, list[tuple[str, str | None]]]:
    out: dict[int, list[tuple[str, str | None]]] = {}
    for user_id, study, site in db.execute(select(UserScope.user_id, Study.code, Site.code)
                                           .join(Study, Study.id == UserScope.study_id)
                                           .outerjoin(Site, Site.id == UserScope.site_id)
                                           .order_by(Study.code, Site.code)):
        out.setdefault(user_id, []).append((study, site))
    return out


def scope_text(scopes: list[tuple[str, str | None]], every_site: str) -> str:
    by_study: dict[str, list[str]] = {}
    for study, site in scopes:
        by_study.setdefault(study, []).append(site or every_site)
    return "; ".join(f"{study} ({', '.join(sites)})" for study, sites in by_study.items())


def accounts(db: Session) -> list[AccountRow]:
    last = dict(db.execute(select(StaffSession.user_id, func.max(StaffSession.created_at))
                           .group_by(StaffSession.user_id)).all())
    open_ = dict(db.execute(select(StaffSession.user_id, func.count()).where(StaffSession.ended_at.is_(None))
                            .group_by(StaffSession.user_id)).all())
    scopes = _scopes(db)
    every = _("every site")
    return [AccountRow(u, scope_text(scopes.get(u.id, []), every), last.get(u.id), open_.get(u.id, 0),
                       u.password_hash == UNUSABLE_HASH)
            for u in db.scalars(select(User).order_by(User.active.desc(), User.role, User.email))]


def studies_and_sites(db: Session) -> list[tuple[str, list[str]]]:
    """Every study and its active sites, for the scope fields."""
    out: dict[str, list[str]] = {}
    for study, site in db.execute(select(Study.code, Site.code).join(Site, Site.study_id == Study.id)
                                  .where(Site.active.is_(True)).order_by(Study.code, Site.code)):
        out.setdefault(study, []).append(site)
    return list(out.items())


def values_of(db: Session, user: User) -> dict[str, Any]:
    scopes = _scopes(db).get(user.id, [])
    return {"email": user.email, "role": user.role.value, "study": scopes[0][0] if scopes else "",
            "sites": [site for _study, site in scopes if site], "language": user.language, "reason": ""}


def account_info(db: Session, user: User) -> dict[str, Any]:
    row = next(r for r in accounts(db) if r.user.id == user.id)
    pending = db.scalar(select(AccountMail).where(AccountMail.user_id == user.id)
                        .order_by(AccountMail.id.desc()).limit(1))
    return {"row": row, "last_mail": pending}
