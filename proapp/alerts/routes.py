"""The alerts queue (``/staff/alerts``) and one alert's page, where it is acknowledged."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from proapp import db, runtime
from proapp.accounts.access import staff_routes, viewer
from proapp.alerts import raising as alerting
from proapp.alerts.models import AckAction, Alert, AlertNotification
from proapp.patients.models import Patient

bp = Blueprint("alerts", __name__, url_prefix="/staff")
staff_route = staff_routes(bp)

SEVERITIES = {"urgent": _l("Urgent"), "same_day": _l("Same day"), "review": _l("To review")}
STATES = {"open": _l("Open"), "acknowledged": _l("Acknowledged")}
ACTIONS = {AckAction.CALLED_PATIENT.value: _l("Called the patient"),
           AckAction.REFERRED.value: _l("Referred to a doctor or the emergency department"),
           AckAction.SEEN_AT_VISIT.value: _l("Seen at a visit"),
           AckAction.NO_ACTION.value: _l("No action needed (say why in the note)")}
NOTIFICATION_STATUSES = {"pending": _l("waiting"), "sending": _l("sending"), "sent": _l("sent"),
                         "failed": _l("failed"), "unknown": _l("may have gone (worker stopped)")}


def _lang() -> str:
    return str(get_locale() or "fr")


@staff_route("/alerts", "read")
def queue() -> str:
    args = request.args
    state = args.get("state", "open")
    f = {"study": (args.get("study") or "")[:40], "site": (args.get("site") or "")[:12],
         "state": state if state in ("open", "acknowledged", "all") else "open",
         "severity": args.get("severity") if args.get("severity") in SEVERITIES else ""}
    rows = alerting.alerts_page(db.session(), viewer().patients(), study=f["study"] or None,
                                site=f["site"] or None, state=f["state"], severity=f["severity"] or None)
    return render_template("staff/alerts.html", rows=rows, f=f, severities=SEVERITIES, states=STATES,
                           actions=ACTIONS, now=runtime.now(), minutes=alerting.minutes_between)


def _alert_or_404(alert_id: int) -> Alert:
    alert = db.session().scalar(select(Alert).join(Patient, Patient.id == Alert.patient_id)
                                .where(Alert.id == alert_id, viewer().patients()))
    if alert is None:
        abort(404)
    return alert


def _evidence(alert: Alert, lang: str) -> list[dict[str, Any]]:
    """The answers and scores that met the rule, worded as the patient saw them (question and answer)."""
    study = runtime.studies().get(alert.study.code)
    out = []
    for e in alert.evidence:
        inst_code, _dot, code = str(e.get("ref", "")).partition(".")
        use = study.instruments.get(inst_code)
        question, answer = e.get("ref", ""), str(e.get("value"))
        if use is not None:
            inst = runtime.instruments().get(inst_code, use.version)
            if e.get("kind") == "item":
                try:
                    item = inst.item(code)
                except KeyError:
                    item = None
                if item is not None:
                    question = item.text_for(lang, use.variant or inst.default_variant)
                    answer = next((o.label(lang) for o in item.option_list if o.value == answer), answer)
            else:
                derived = next((d for d in inst.derived if d.code == code), None)
                if derived is not None:
                    question = derived.label(lang)
        out.append({"question": question, "answer": answer, "reference_visit": e.get("reference_visit"),
                    "reference_value": e.get("reference_value"), "change": e.get("change"),
                    "no_reference": bool(e.get("compared_with")) and e.get("reference_visit") is None})
    return out


def _render(alert: Alert, errors: dict[str, str] | None = None, values: dict[str, str] | None = None,
            status: int = 200) -> tuple[str, int]:
    notifications = db.session().scalars(select(AlertNotification).where(AlertNotification.alert_id == alert.id)
                                         .order_by(AlertNotification.step, AlertNotification.id)).all()
    return render_template("staff/alert.html", a=alert, evidence=_evidence(alert, _lang()),
                           notifications=notifications, severities=SEVERITIES, states=STATES, actions=ACTIONS,
                           statuses=NOTIFICATION_STATUSES, errors=errors or {}, values=values or {},
                           minutes=alerting.minutes_between, now=runtime.now()), status


@staff_route("/alerts/<int:alert_id>", "read")
def alert_page(alert_id: int) -> tuple[str, int]:
    return _render(_alert_or_404(alert_id))


@staff_route("/alerts/<int:alert_id>", "change", methods=["POST"])
def acknowledge(alert_id: int) -> Any:
    alert = _alert_or_404(alert_id)
    values = {"action": request.form.get("action", ""), "note": request.form.get("note", "")}
    s = db.session()
    try:
        alerting.acknowledge(s, alert.id, actor=viewer().actor, action=values["action"], note=values["note"],
                             now=runtime.now())
    except alerting.AcknowledgeError as exc:
        s.rollback()
        messages = {"action": _("Choose what was done."),
                    "note": _("The note is too long (at most %(n)s characters).", n=alerting.NOTE_MAX),
                    "note_required": _("Say in the note why no action is needed."),
                    "already": _("This alert was already acknowledged.")}
        field = "note" if str(exc).startswith("note") else "action"
        return _render(_alert_or_404(alert_id), {field: messages[str(exc)]}, values, 422)
    s.commit()
    flash(_("Alert acknowledged."), "notice")
    return redirect(url_for("alerts.queue"), code=303)


def init_app(app) -> None:
    app.register_blueprint(bp)
