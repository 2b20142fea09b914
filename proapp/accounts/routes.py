"""Signing in and out of the staff pages (``/staff/login``, ``/staff/logout``)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import Blueprint, current_app, flash, redirect, render_template, request, session, url_for
from flask_babel import gettext as _

from proapp import db, services
from proapp.accounts import services as accounts
from proapp.accounts.access import SESSION_KEY, current_viewer, staff_routes, viewer
from proapp.web import safe_next

bp = Blueprint("accounts", __name__, url_prefix="/staff")
staff_route = staff_routes(bp)


def _safe_next(target: str | None) -> str:
    return safe_next(target, "/staff", url_for("staff.overview"))


@staff_route("/login", "public", methods=["GET", "POST"])
def login() -> Any:
    error = None
    email = ""
    if request.method == "POST":
        email = request.form.get("email", "")[:254]
        from proapp import ratelimit
        from proapp.web import too_many_requests

        wait = (ratelimit.check("login_ip", request.remote_addr or "")
                or ratelimit.check("login_account", email.strip().lower()))
        if wait:
            return too_many_requests(wait)
        s = db.session()
        cfg = current_app.config
        try:
            user = accounts.authenticate(s, email, request.form.get("password", ""), now=services.now(),
                                         max_failures=cfg["LOGIN_MAX_FAILURES"],
                                         lock_for=timedelta(minutes=cfg["LOGIN_LOCK_MINUTES"]),
                                         client={"ip": request.remote_addr or "",
                                                 "agent": request.user_agent.string[:120]})
        except accounts.LoginRefused:
            s.commit()                      # the failure count is kept
            error = _("Wrong e-mail or password. After %(n)s wrong tries in a row an account is locked for "
                      "%(m)s minutes.", n=cfg["LOGIN_MAX_FAILURES"], m=cfg["LOGIN_LOCK_MINUTES"])
        else:
            target = _safe_next(request.args.get("next"))
            token = accounts.start_session(s, user, services.now())
            s.commit()
            session.clear()                 # a new session at sign-in: nothing from before it survives
            session[SESSION_KEY] = {"uid": user.id, "sid": token}
            return redirect(target, code=303)
    elif current_viewer() is not None:
        return redirect(url_for("staff.overview"), code=303)
    return render_template("staff/login.html", error=error, email=email), 200


@staff_route("/logout", "read", methods=["POST"])
def logout() -> Any:
    from proapp.audit.services import record

    v = viewer()
    s = db.session()
    record(s, actor=v.actor, action="user.logout", entity="app_user", entity_id=v.user_id, at=services.now())
    accounts.end_session(s, session[SESSION_KEY]["sid"], services.now())
    s.commit()
    session.clear()
    flash(_("You are signed out."), "notice")
    return redirect(url_for("accounts.login"), code=303)


def init_app(app) -> None:
    app.register_blueprint(bp)
