"""The admin's page to close a study: where the closure stands, and the form that starts (or continues) it,
signed electronically as corrections and withdrawals are."""

from __future__ import annotations

from datetime import timedelta

from flask import Blueprint, abort, current_app, render_template, request
from flask_babel import gettext as _

from proapp import db, runtime
from proapp.accounts.access import staff_routes, viewer
from proapp.accounts.signatures import SignatureRefused, sign
from proapp.closure import steps as closing

bp = Blueprint("closure", __name__, url_prefix="/staff")
staff_route = staff_routes(bp)


@staff_route("/studies/<code>/close", "admin", methods=["GET", "POST"])
def close(code: str) -> tuple[str, int] | str:
    s = db.session()
    if code not in runtime.studies().codes():
        abort(404)
    try:
        study = closing.find_study(s, code)
    except closing.ClosureRefused:
        abort(404)
    errors: list[object] = []
    done: list[str] = []
    if request.method == "POST":
        reason = (request.form.get("reason") or "").strip()[:500]
        cfg = current_app.config
        try:
            signature = sign(s, viewer().user_id, "closure", password=request.form.get("signature_password", "")[:1100],
                             code=request.form.get("signature_code", "")[:40], vault=runtime.phone_vault(),
                             now=runtime.now(), max_failures=cfg["LOGIN_MAX_FAILURES"],
                             lock_for=timedelta(minutes=cfg["LOGIN_LOCK_MINUTES"]))
        except SignatureRefused as exc:
            s.commit()                          # the failure counts towards the lockout
            errors.append(exc.message)
        else:
            s.commit()
            try:                             # what was done before a step stops is shown too
                for line in closing.run(code, current_app.extensions["proapp.audit_keys"], closing.archive_dir(),
                                        closing.sources(), actor=viewer().actor, force_reason=reason or None,
                                        signature=signature.record()):
                    done.append(line)
            except closing.ClosureRefused as exc:
                errors.append(exc.message)
        study = closing.find_study(s, code)
    closure = closing.closure_of(s, study.id)
    page = render_template("staff/closure.html", study=study, closure=closure, errors=errors, done=done,
                           open_visits=closing.open_visits(s, study.id, runtime.now()),
                           settings=runtime.studies().get(study.code).closure,
                           title=_("Close the study %(study)s", study=study.code))
    return (page, 422) if errors else page


def init_app(app) -> None:
    app.register_blueprint(bp)
