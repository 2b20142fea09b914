"""Signing in and out of the staff pages, one's own password (change, forgotten), invitations, and the admins'
accounts pages."""

from __future__ import annotations

from datetime import timedelta
from functools import partial
from typing import Any

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    g,
    make_response,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import gettext as _

from proapp import db, ratelimit, runtime
from proapp.accounts import admin_queries, invitations, two_factor
from proapp.accounts import staff as accounts
from proapp.accounts.access import SESSION_KEY, current_viewer, staff_routes, viewer
from proapp.accounts.models import Role, User
from proapp.accounts.signatures import MEANINGS
from proapp.audit.trail import record
from proapp.i18n import use_locale
from proapp.mail import plain_address
from proapp.web import safe_next, too_many_requests

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

        wait = (ratelimit.check("login_ip", request.remote_addr or "")
                or ratelimit.check("login_account", email.strip().lower()))
        if wait:
            return too_many_requests(wait)
        s = db.session()
        cfg = current_app.config
        try:
            user = accounts.authenticate(s, email, request.form.get("password", ""), now=runtime.now(),
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
            if user.totp_enabled_at is not None:            # the password was the first step
                return _code_step(s, user, target)
            return _signed_in(s, user, target)
    elif current_viewer() is not None:
        return redirect(url_for("staff.overview"), code=303)
    return render_template("staff/login.html", error=error, email=email), 200


def _code_step(s, user, target: str) -> Any:
    """The password is right; the session only remembers that, for a few minutes, until the code is typed."""
    s.commit()
    session.clear()
    session[PENDING_KEY] = {"uid": user.id, "next": target, "at": runtime.now().timestamp()}
    return redirect(url_for("accounts.login_code"), code=303)


def _after_password(s, user, target: str) -> Any:
    """After a password set through a mailed link (invitation, reset): a sign-in like any other. An account with
    two-factor sign-in goes through the code step (whoever reads the mailbox does not hold the phone); one that
    must have it and has none goes to its set-up page (the staff pages' guard); the sign-in is audited."""
    if user.totp_enabled_at is not None:
        s.commit()                      # the new password is kept; the account is not signed in yet
        return _code_step(s, user, target)
    accounts.signed_in(s, user, runtime.now(), {"ip": request.remote_addr or "",
                                                  "agent": request.user_agent.string[:120]})
    return _signed_in(s, user, target)


def _signed_in(s, user, target: str) -> Any:
    token = accounts.start_session(s, user, runtime.now())
    s.commit()
    session.clear()                 # a new session at sign-in: nothing from before it survives
    session[SESSION_KEY] = {"uid": user.id, "sid": token}
    return redirect(target, code=303)


PENDING_KEY = "pending_2fa"
PENDING_SECONDS = 300


@staff_route("/login/code", "public", methods=["GET", "POST"])
def login_code() -> Any:
    """The second step of signing in: a code of the authenticator app, or a recovery code."""
    pending = session.get(PENDING_KEY)
    if not isinstance(pending, dict) or runtime.now().timestamp() - float(pending.get("at", 0)) > PENDING_SECONDS:
        session.pop(PENDING_KEY, None)
        return redirect(url_for("accounts.login"), code=303)
    error = None
    if request.method == "POST":
        wait = ratelimit.check("login_ip", request.remote_addr or "")
        if wait:
            return too_many_requests(wait)
        s = db.session()
        user = s.get(User, pending["uid"])
        email = user.email if user else ""
        s.commit()                  # SQLite: the counter below takes the write lock in its own transaction
        wait = ratelimit.check("login_account", email)
        if wait:
            return too_many_requests(wait)
        cfg = current_app.config
        now = runtime.now()
        locked = user is None or not user.active or (user.locked_until is not None and now < user.locked_until)
        used = None if locked else two_factor.check(s, user, request.form.get("code", "")[:40],
                                                     vault=runtime.phone_vault(), now=now)
        if used in ("totp", "recovery"):
            accounts.signed_in(s, user, now, {"ip": request.remote_addr or ""}, second_factor=used)
            return _signed_in(s, user, pending.get("next") or url_for("staff.overview"))
        if used == "used":          # the right code, already used: not a wrong try
            s.rollback()
            error = _("This code was already used. Wait for the next code in your app (a new one every 30 "
                      "seconds), then type it.")
            return render_template("staff/login_code.html", error=error), 422
        if user is not None and not locked:
            accounts.count_failure(s, user, now, max_failures=cfg["LOGIN_MAX_FAILURES"],
                                   lock_for=timedelta(minutes=cfg["LOGIN_LOCK_MINUTES"]))

        record(s, actor=f"user:{user.email}" if user else "anonymous", action="user.login_failed",
               entity="app_user", entity_id=pending["uid"], new={"why": "wrong second factor"}, at=now)
        s.commit()
        error = _("This code does not work. After %(n)s wrong tries in a row the account is locked for %(m)s "
                  "minutes.", n=cfg["LOGIN_MAX_FAILURES"], m=cfg["LOGIN_LOCK_MINUTES"])
    return render_template("staff/login_code.html", error=error), 422 if error else 200


@staff_route("/account/two-factor", "read", methods=["GET", "POST"])
def two_factor_setup() -> Any:
    """Set up the authenticator app: a QR code drawn here, a code typed back, then the recovery codes, once."""
    v = viewer()
    s = db.session()
    user = s.get(User, v.user_id)
    if user.totp_enabled_at is not None:
        return render_template("staff/two_factor.html", enrolled=True, user=user), 200
    secret = session.get("totp_pending")
    if not isinstance(secret, str) or len(secret) != 32 or (request.method == "GET" and not request.args.get("keep")):
        secret = two_factor.new_secret()
        session["totp_pending"] = secret
    error = None
    if request.method == "POST":
        try:
            codes = two_factor.enable(s, user, secret, request.form.get("code", "")[:40],
                                      vault=runtime.phone_vault(), now=runtime.now(), actor=v.actor)
        except ValueError:
            error = _("This code does not match: check the phone's time and type the code shown now.")
        else:
            s.commit()
            session.pop("totp_pending", None)
            g.pop("viewer", None)
            return render_template("staff/two_factor.html", enrolled=True, user=user, codes=codes), 200
    uri = two_factor.provisioning_uri(secret, user.email)
    return render_template("staff/two_factor.html", enrolled=False, user=user, secret=secret,
                           qr=two_factor.qr_svg(uri, _("QR code to scan with an authenticator app")),
                           error=error, required=v.needs_two_factor), 422 if error else 200


def _limited() -> Any:
    wait = ratelimit.check("login_ip", request.remote_addr or "")
    return too_many_requests(wait) if wait else None


# Forgotten password, invitation and reset links -----------------------------------------------------------------

@staff_route("/forgot", "public", methods=["GET", "POST"])
def forgot() -> Any:
    if request.method == "POST":
        limited = _limited()
        if limited:
            return limited
        # The same page whether the address has an account or not, answered before any look-up: the mail is
        # queued once the answer is sent (the response's close), so its time tells nothing either.
        resp = make_response(render_template("staff/forgot.html", sent=True), 200)
        resp.call_on_close(partial(_request_reset, current_app._get_current_object(),
                                   request.form.get("email", "")[:254], request.remote_addr or ""))
        return resp
    return render_template("staff/forgot.html", sent=False), 200


def _request_reset(app, email: str, client: str) -> None:
    """The work behind "forgot your password?", after the answer (its own app context and transaction)."""
    try:
        with app.app_context(), db.transaction() as s:
            invitations.request_reset(s, email, runtime.now(), client=client)
    except Exception:           # the page is sent already: the error goes to the log, as a job's would
        app.logger.exception("a password reset request could not be queued")


def _password_link(token: str, purpose: str) -> Any:
    if request.method == "POST":
        limited = _limited()            # before the request's own transaction (SQLite: one writer at a time)
        if limited:
            return limited
    s = db.session()
    link = invitations.find(s, token, purpose, runtime.now())
    if link is None:
        return render_template("staff/set_password.html", dead=True, purpose=purpose), 404
    if session.get("lang") not in ("fr", "en"):
        use_locale(link.user.language)      # the invitation's language (its e-mail's), unless FR | EN was pressed
    error = None
    if request.method == "POST":
        new, again = request.form.get("password", ""), request.form.get("password2", "")
        if new != again:
            error = _("The two passwords differ.")
        else:
            try:
                user = invitations.redeem(s, token, purpose, new, runtime.now())
            except accounts.AccountError as exc:
                s.rollback()
                error = str(exc)
            except LookupError:
                s.rollback()
                return render_template("staff/set_password.html", dead=True, purpose=purpose), 404
            else:
                resp = _after_password(s, user, url_for("staff.overview"))
                flash(_("Your password is set."), "notice")
                return resp
        s.rollback()
    return render_template("staff/set_password.html", dead=False, purpose=purpose, email=link.user.email,
                           error=error), 422 if error else 200


@staff_route("/welcome/<token>", "public", methods=["GET", "POST"])
def welcome(token: str) -> Any:
    return _password_link(token, "invite")


@staff_route("/reset/<token>", "public", methods=["GET", "POST"])
def reset(token: str) -> Any:
    return _password_link(token, "reset")


# One's own account ------------------------------------------------------------------------------------------------

@staff_route("/account", "read", methods=["GET", "POST"])
def my_account() -> Any:
    v = viewer()
    if request.method == "POST":            # the current password is guessed no faster than at the sign-in
        wait = (ratelimit.check("login_ip", request.remote_addr or "")
                or ratelimit.check("login_account", v.email))
        if wait:
            return too_many_requests(wait)
    s = db.session()
    user = s.get(User, v.user_id)
    errors: dict[str, str] = {}
    if request.method == "POST":
        current, new, again = (request.form.get(k, "") for k in ("current", "password", "password2"))
        if not _current_password_ok(s, user, current):
            errors["current"] = _("This is not your current password. After %(n)s wrong tries in a row the "
                                  "account is locked for %(m)s minutes.", n=current_app.config["LOGIN_MAX_FAILURES"],
                                  m=current_app.config["LOGIN_LOCK_MINUTES"])
        elif new != again:
            errors["password"] = _("The two passwords differ.")
        else:
            try:
                accounts.set_password(s, user, new, runtime.now(), actor=v.actor)    # ends every session
            except accounts.AccountError as exc:
                errors["password"] = str(exc)
        if not errors:
            flash(_("Your password is changed. Your other sessions were ended."), "notice")
            return _signed_in(s, user, url_for("accounts.my_account"))
        s.rollback()
    return render_template("staff/account.html", user=user, errors=errors), 422 if errors else 200


def _current_password_ok(s, user, current: str) -> bool:
    """The current password, asked again before a change, counted like a sign-in: a wrong one counts towards
    the lockout and is audited; a locked account is answered as a wrong password, even with the right one (the
    same check is made, so the answer and its time tell nothing)."""
    now, cfg = runtime.now(), current_app.config
    right = accounts.check_current_password(user, current)
    locked = user.locked_until is not None and now < user.locked_until
    if right and not locked:
        return True
    if not locked:
        accounts.count_failure(s, user, now, max_failures=cfg["LOGIN_MAX_FAILURES"],
                               lock_for=timedelta(minutes=cfg["LOGIN_LOCK_MINUTES"]))

    record(s, actor=f"user:{user.email}", action="user.password_change_refused", entity="app_user",
           entity_id=user.id, new={"why": "account locked" if locked else "wrong current password",
                                   "ip": request.remote_addr or ""}, at=now)
    s.commit()                          # the count and the audit entry are kept
    return False


# The admins' accounts pages -----------------------------------------------------------------------------------

def _account_or_404(user_id: int):
    user = db.session().get(User, user_id)
    if user is None:
        abort(404)
    return user


@staff_route("/accounts", "admin")
def accounts_list() -> str:
    return render_template("staff/accounts.html", rows=admin_queries.accounts(db.session()), now=runtime.now())


def _form_values() -> dict[str, Any]:
    f = request.form
    return {"email": f.get("email", "").strip()[:254], "role": f.get("role", ""), "study": f.get("study", ""),
            "sites": [c for c in f.getlist("sites") if c][:50], "language": f.get("language", "fr"),
            "reason": f.get("reason", "").strip()[:500]}


def _parse_role(values: dict[str, Any], errors: dict[str, str]) -> Any:
    try:
        role = Role(values["role"])
    except ValueError:
        errors["role"] = _("Choose a role.")
        return None
    if role != Role.ADMIN and not values["study"]:
        errors["study"] = _("A coordinator or monitor needs a study.")
    if values["language"] not in ("fr", "en"):
        errors["language"] = _("Choose a language.")
    return role


@staff_route("/accounts/new", "admin", methods=["GET", "POST"])
def invite() -> Any:
    values: dict[str, Any] = {"email": "", "role": "coordinator", "study": "", "sites": [], "language": "fr"}
    errors: dict[str, str] = {}
    if request.method == "POST":
        values = _form_values()
        role = _parse_role(values, errors)

        if plain_address(values["email"]) is None:
            errors["email"] = _("Give one e-mail address and nothing else, such as name@hospital.fr.")
        if not errors:
            s = db.session()
            try:
                user = accounts.create_user(s, email=values["email"], password=None, role=role, now=runtime.now(),
                                            study_code=values["study"] or None, site_code=values["sites"],
                                            language=values["language"], created_by=viewer().actor)
                invitations.queue(s, user, "invite", runtime.now(), actor=viewer().actor)
            except accounts.AccountError as exc:
                s.rollback()
                errors["email"] = str(exc)
            else:
                s.commit()
                flash(_("Invitation sent to %(email)s: the link works for 72 hours.", email=user.email), "notice")
                return redirect(url_for("accounts.account_page", user_id=user.id), code=303)
    return render_template("staff/account_edit.html", user=None, values=values, errors=errors,
                           studies=admin_queries.studies_and_sites(db.session())), 422 if errors else 200


@staff_route("/accounts/<int:user_id>", "admin", methods=["GET", "POST"])
def account_page(user_id: int) -> Any:
    user = _account_or_404(user_id)
    s = db.session()
    errors: dict[str, str] = {}
    values = admin_queries.values_of(s, user)
    if request.method == "POST":
        values = {**_form_values(), "email": user.email}
        role = _parse_role(values, errors)
        if not values["reason"]:
            errors["reason"] = _("Give a reason: it is kept in the audit trail.")
        if not errors:
            try:
                accounts.update_account(s, user, role=role, study_code=values["study"] or None,
                                        site_codes=values["sites"], language=values["language"],
                                        now=runtime.now(), actor=viewer().actor, reason=values["reason"])
            except accounts.AccountError as exc:
                s.rollback()
                errors["role"] = str(exc)
            else:
                s.commit()
                flash(_("Account changed."), "notice")
                return redirect(url_for("accounts.account_page", user_id=user.id), code=303)
        s.rollback()
        user = _account_or_404(user_id)
    return render_template("staff/account_edit.html", user=user, values=values, errors=errors,
                           studies=admin_queries.studies_and_sites(s), info=admin_queries.account_info(s, user)
                           ), 422 if errors else 200


def _account_action(user_id: int, action: str) -> Any:
    user = _account_or_404(user_id)
    v = viewer()
    reason = request.form.get("reason", "").strip()[:500]
    s = db.session()
    try:
        if not reason:
            raise accounts.AccountError(_("Give a reason: it is kept in the audit trail."))
        if action == "end_sessions":
            if user.id == v.user_id:
                raise accounts.AccountError(_("To end your own session, sign out."))
            accounts.end_all_sessions(s, user.id, runtime.now(), actor=v.actor, reason=reason)
        elif action == "reset_two_factor":
            from proapp.accounts import two_factor

            two_factor.reset(s, user, now=runtime.now(), actor=v.actor, reason=reason)
            accounts.end_all_sessions(s, user.id, runtime.now(), actor=v.actor, reason="two_factor_reset")
        elif action == "resend":
            if user.password_hash != accounts.UNUSABLE_HASH:
                raise accounts.AccountError(_("This account already has a password: the person can use "
                                              "“Forgot your password?”."))
            invitations.queue(s, user, "invite", runtime.now(), actor=v.actor)
        else:
            accounts.set_active(s, user, action == "enable", runtime.now(), actor=v.actor, reason=reason)
    except accounts.AccountError as exc:
        s.rollback()
        flash(str(exc), "error")
        return redirect(url_for("accounts.account_page", user_id=user_id), code=303)
    s.commit()
    flash(_("Done."), "notice")
    return redirect(url_for("accounts.account_page", user_id=user_id), code=303)


@staff_route("/accounts/<int:user_id>/disable", "admin", methods=["POST"])
def disable(user_id: int) -> Any:
    return _account_action(user_id, "disable")


@staff_route("/accounts/<int:user_id>/enable", "admin", methods=["POST"])
def enable(user_id: int) -> Any:
    return _account_action(user_id, "enable")


@staff_route("/accounts/<int:user_id>/end-sessions", "admin", methods=["POST"])
def end_sessions(user_id: int) -> Any:
    return _account_action(user_id, "end_sessions")


@staff_route("/accounts/<int:user_id>/reset-two-factor", "admin", methods=["POST"])
def reset_two_factor(user_id: int) -> Any:
    return _account_action(user_id, "reset_two_factor")


@staff_route("/accounts/<int:user_id>/resend", "admin", methods=["POST"])
def resend(user_id: int) -> Any:
    return _account_action(user_id, "resend")


@staff_route("/logout", "read", methods=["POST"])
def logout() -> Any:
    v = viewer()
    s = db.session()
    record(s, actor=v.actor, action="user.logout", entity="app_user", entity_id=v.user_id, at=runtime.now())
    accounts.end_session(s, session[SESSION_KEY]["sid"], runtime.now())
    s.commit()
    session.clear()
    flash(_("You are signed out."), "notice")
    return redirect(url_for("accounts.login"), code=303)


def signature_form(kind: str) -> dict[str, Any]:
    """What a signature field set shows: the meaning, in the signer's language, and whether a code is asked."""
    v = current_viewer()
    return {"meaning": str(MEANINGS[kind][1]), "code": bool(v and v.two_factor)}


def init_app(app) -> None:
    app.register_blueprint(bp)
    app.add_template_global(signature_form, "signature_form")
