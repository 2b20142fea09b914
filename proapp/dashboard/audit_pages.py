"""The audit trail's pages: browsing it (admins; monitors for their study's patients) and the certified copy of
one patient's entries. They are the study team's pages, above the accounts and the patients they join: the audit
trail itself (proapp/audit/) sits below every feature that writes to it."""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from flask import Blueprint, Response, render_template, request
from flask_babel import gettext as _
from sqlalchemy import select
from sqlalchemy.orm import Session

from proapp import csvfiles, db, runtime
from proapp.accounts.access import Viewer, patient_or_404, staff_routes, viewer
from proapp.audit.copies import certified_copy
from proapp.audit.models import AuditEvent
from proapp.audit.trail import record
from proapp.patients.models import Patient
from proapp.web import int_arg

bp = Blueprint("audit", __name__, url_prefix="/staff")
staff_route = staff_routes(bp)


AUDIT_PER_PAGE = 100


@staff_route("/audit", "audit")
def audit() -> str:
    """The audit trail, newest first, with filters. Monitors see the entries of their study's patients."""
    args = request.args
    subject = (args.get("subject") or "").strip()[:40]
    action = (args.get("action") or "").strip()[:60]
    actor = (args.get("actor") or "").strip()[:120]
    errors, days = [], {}
    for name in ("since", "until"):
        raw = args.get(name) or ""
        if raw:
            try:
                days[name] = date.fromisoformat(raw)
            except ValueError:
                errors.append(_("Give the date as year-month-day, for example 2026-03-02."))
    page = max(int_arg("page", 1), 1)
    rows = audit_page(db.session(), viewer(), subject=subject, action=action, actor=actor,
                              since=days.get("since"), until=days.get("until"), page=page, per_page=AUDIT_PER_PAGE)
    f = {"subject": subject, "action": action, "actor": actor, "since": args.get("since", ""),
         "until": args.get("until", "")}
    return render_template("staff/audit.html", rows=rows[:AUDIT_PER_PAGE], more=len(rows) > AUDIT_PER_PAGE,
                           page=page, errors=errors, f=f)


@staff_route("/patients/<int:patient_id>/audit.csv", "read")
def patient_audit_csv(patient_id: int) -> Response:
    """A certified copy of one patient's audit trail: every entry with its chain hashes, every chain it lists
    verified at export time (X-Audit-Chain header: the patient's own, and the sealed legacy chain when the patient's
    history began before chains were per patient), and the copy's own SHA-256 (X-Content-SHA256)."""
    patient = patient_or_404(patient_id)
    s = db.session()
    copy = certified_copy(s, patient.id, csvfiles.SEPARATORS.get(request.args.get("sep", ""), ","))  # as other CSVs
    body, count, findings = copy.body, copy.verified, copy.findings
    record(s, actor=viewer().actor, action="audit.exported", entity="patient", entity_id=patient.id,
           patient_id=patient.id, new={"sha256": hashlib.sha256(body).hexdigest(), "chain_intact": not findings},
           at=runtime.now())
    s.commit()
    name = f"audit-{patient.subject_id}-{runtime.now():%Y%m%dT%H%M%SZ}.csv"
    return Response(body, mimetype="text/csv", headers={
        "Content-Disposition": f'attachment; filename="{name}"',
        "X-Audit-Chain": f"intact; {count} entries verified" if not findings else f"TAMPERED: {findings[0]}",
        "X-Content-SHA256": hashlib.sha256(body).hexdigest()})


def audit_page(db: Session, viewer: Viewer, *, subject: str, action: str, actor: str, since: date | None,
               until: date | None, page: int, per_page: int) -> list[Any]:
    """One page of the audit trail, newest first, with each entry's subject ID (one row more than a page: there
    is a next page when it comes back). Monitors see the entries of the patients they may see."""
    q = select(AuditEvent, Patient.subject_id).outerjoin(Patient, Patient.id == AuditEvent.patient_id)
    if not viewer.is_admin:
        q = q.where(AuditEvent.patient_id.is_not(None), viewer.patients())
    if subject:
        q = q.where(Patient.subject_id == subject)
    if action:
        q = q.where(AuditEvent.action.startswith(action, autoescape=True))
    if actor:
        q = q.where(AuditEvent.actor.contains(actor, autoescape=True))
    if since is not None:
        q = q.where(AuditEvent.at >= datetime.combine(since, time(), tzinfo=UTC))
    if until is not None:
        q = q.where(AuditEvent.at < datetime.combine(until + timedelta(days=1), time(), tzinfo=UTC))
    return list(db.execute(q.order_by(AuditEvent.id.desc()).limit(per_page + 1).offset((page - 1) * per_page)))


def init_app(app) -> None:
    app.register_blueprint(bp)
