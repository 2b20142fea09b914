"""Who is signed in, and what they may see and do.

An admin sees everything; a coordinator the sites of their scopes; a monitor a whole study, read-only. Every
query of the staff pages goes through ``Viewer.patients()``, so a patient outside the viewer's scope is simply not
found (404), never shown. Every staff page is declared with its access level through `staff_routes`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from functools import wraps
from typing import Any

from flask import Blueprint, Response, abort, current_app, flash, g, redirect, request, session, url_for
from flask_babel import gettext as _
from sqlalchemy import ColumnElement, and_, false, or_, select, true

from proapp import db, runtime
from proapp.accounts import staff as accounts
from proapp.accounts.models import Role
from proapp.accounts.two_factor import required as two_factor_required
from proapp.i18n import use_locale
from proapp.patients.models import Patient

ACCESS: dict[str, str] = {}
SESSION_KEY = "staff"
# What an account that must set up two-factor sign-in may reach before it does.
SETUP_ENDPOINTS = {"accounts.two_factor_setup", "accounts.logout", "accounts.my_account"}


@dataclass(frozen=True)
class Viewer:
    user_id: int
    email: str
    role: Role
    scopes: tuple[tuple[int, int | None], ...]     # (study id, site id or None for every site)
    language: str = "fr"
    needs_two_factor: bool = False                 # required for the role and not set up yet
    two_factor: bool = False                       # signs in (and signs changes) with a code too

    @property
    def actor(self) -> str:
        return f"user:{self.email}"

    @property
    def is_admin(self) -> bool:
        return self.role == Role.ADMIN

    @property
    def can_change(self) -> bool:
        """Monitors only look."""
        return self.role in (Role.ADMIN, Role.COORDINATOR)

    def patients(self) -> ColumnElement[bool]:
        """The SQL condition on ``Patient`` for the patients this viewer may see."""
        return self.sites_clause(Patient.study_id, Patient.site_id)

    def sites_clause(self, study_col, site_col) -> ColumnElement[bool]:
        if self.is_admin:
            return true()
        parts = [study_col == study if site is None else and_(study_col == study, site_col == site)
                 for study, site in self.scopes]
        return or_(*parts) if parts else false()

    def sees(self, study_id: int, site_id: int | None = None) -> bool:
        """Whether this viewer may see the study (``site_id`` None: any of its sites) or that site of it."""
        if self.is_admin:
            return True
        return any(s == study_id and (site is None or site_id is None or site == site_id)
                   for s, site in self.scopes)

    def sees_whole_study(self, study_id: int) -> bool:
        return self.is_admin or any(s == study_id and site is None for s, site in self.scopes)


def current_viewer() -> Viewer | None:
    """The signed-in staff member, or None (not signed in, signed out, session ended by the server, account
    disabled, idle for too long, or over the session's absolute lifetime). Checked once per request; it commits
    nothing: a staff page's request commits the check first (`_start_staff_request`)."""
    if "viewer" not in g:
        g.viewer = _check_viewer()
    return g.viewer


def _check_viewer() -> Viewer | None:
    data = session.get(SESSION_KEY)
    if not isinstance(data, dict) or not isinstance(data.get("sid"), str):
        return None
    s, cfg = db.session(), current_app.config
    check = accounts.check_session(s, data["sid"], runtime.now(),
                                   idle=timedelta(minutes=cfg["STAFF_IDLE_MINUTES"]),
                                   lifetime=timedelta(hours=cfg["STAFF_SESSION_HOURS"]))
    user = check.user
    if user is None:
        session.pop(SESSION_KEY, None)
        if check.refused == "idle":
            flash(_("You were signed out after a period without activity."), "notice")
        elif check.refused == "expired":
            flash(_("You were signed out: a session lasts at most %(n)s hours. Please sign in again.",
                    n=cfg["STAFF_SESSION_HOURS"]), "notice")
        return None
    needs = user.totp_enabled_at is None and two_factor_required(user.role.value, cfg["TWO_FACTOR_ROLES"])
    return Viewer(user.id, user.email, user.role, tuple(accounts.scopes_of(s, user.id)), user.language, needs,
                  user.totp_enabled_at is not None)


def viewer() -> Viewer:
    v = current_viewer()
    assert v is not None
    return v


def staff_routes(bp: Blueprint) -> Callable[..., Callable]:
    """The route decorator of a blueprint of staff pages: ``@staff_route(rule, access)``. Every page declares
    its access level (the role x route test walks the URL map against ``ACCESS``); the blueprint gets the
    account's language and ``Cache-Control: no-store``."""
    bp.before_request(_start_staff_request)
    bp.after_request(_no_store)

    def staff_route(rule: str, access: str, **options: Any) -> Callable:
        return _route(bp, rule, access, **options)

    return staff_route


def _route(bp: Blueprint, rule: str, access: str, **options: Any) -> Callable:
    if access not in ("public", "read", "change", "admin", "audit"):
        raise ValueError(access)

    def decorate(view: Callable) -> Callable:
        endpoint = view.__name__
        ACCESS[f"{bp.name}.{endpoint}"] = access

        @wraps(view)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            if access != "public":
                v = current_viewer()
                if v is None:
                    target = request.full_path if request.method == "GET" else url_for("staff.overview")
                    return redirect(url_for("accounts.login", next=target.rstrip("?")), code=303)
                if v.needs_two_factor and f"{bp.name}.{endpoint}" not in SETUP_ENDPOINTS:
                    return redirect(url_for("accounts.two_factor_setup"), code=303)
                if ((access == "change" and not v.can_change) or (access == "admin" and not v.is_admin)
                        or (access == "audit" and v.role.value not in ("admin", "monitor"))):
                    abort(403)
            return view(*args, **kwargs)

        bp.add_url_rule(rule, endpoint, guarded, **options)
        return guarded
    return decorate


def _start_staff_request() -> None:
    """Before every staff page: who is signed in, and the request commits what the check wrote (the session's last
    activity, or its end) on its own, so that a page that only reads keeps it; then the account's language."""
    v = current_viewer()
    db.session().commit()
    if v is not None and session.get("lang") not in ("fr", "en"):
        use_locale(v.language)


def _no_store(resp: Response) -> Response:
    resp.headers["Cache-Control"] = "no-store"
    return resp


def patient_or_404(patient_id: int) -> Patient:
    """A patient the signed-in viewer may see, or 404 (another site's patient does not exist for them)."""
    patient = db.session().scalar(select(Patient).where(Patient.id == patient_id, viewer().patients()))
    if patient is None:
        abort(404)
    return patient
