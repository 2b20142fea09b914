"""The audit trail's pages: browsing it (admins; monitors for their study's patients) and the certified copy of
one patient's entries."""

from __future__ import annotations

import io
import json
from datetime import date, timedelta

from flask import Blueprint, Response, render_template, request
from flask_babel import gettext as _
from sqlalchemy import select

from proapp import csvfiles, db, services
from proapp.accounts.access import patient_or_404, staff_routes, viewer
from proapp.web import int_arg

bp = Blueprint("audit", __name__, url_prefix="/staff")
staff_route = staff_routes(bp)


AUDIT_PER_PAGE = 100


@staff_route("/audit", "audit")
def audit() -> str:
    """The audit trail, newest first, with filters. Monitors see the entries of their study's patients."""
    from proapp.audit.models import AuditEvent
    from proapp.patients.models import Patient

    v, s = viewer(), db.session()
    args = request.args
    q = select(AuditEvent, Patient.subject_id).outerjoin(Patient, Patient.id == AuditEvent.patient_id)
    if not v.is_admin:
        q = q.where(AuditEvent.patient_id.is_not(None), v.patients())
    subject = (args.get("subject") or "").strip()[:40]
    if subject:
        q = q.where(Patient.subject_id == subject)
    action = (args.get("action") or "").strip()[:60]
    if action:
        q = q.where(AuditEvent.action.startswith(action, autoescape=True))
    actor = (args.get("actor") or "").strip()[:120]
    if actor:
        q = q.where(AuditEvent.actor.contains(actor, autoescape=True))
    errors = []
    for name, op in (("since", ">="), ("until", "<")):
        raw = args.get(name) or ""
        if raw:
            try:
                day = date.fromisoformat(raw)
            except ValueError:
                errors.append(_("Give the date as year-month-day, for example 2026-03-02."))
                continue
            from datetime import UTC, datetime, time

            instant = datetime.combine(day + (timedelta(days=1) if op == "<" else timedelta()), time(), tzinfo=UTC)
            q = q.where(AuditEvent.at >= instant if op == ">=" else AuditEvent.at < instant)
    page = max(int_arg("page", 1), 1)
    rows = s.execute(q.order_by(AuditEvent.id.desc()).limit(AUDIT_PER_PAGE + 1)
                     .offset((page - 1) * AUDIT_PER_PAGE)).all()
    f = {"subject": subject, "action": action, "actor": actor, "since": args.get("since", ""),
         "until": args.get("until", "")}
    return render_template("staff/audit.html", rows=rows[:AUDIT_PER_PAGE], more=len(rows) > AUDIT_PER_PAGE,
                           page=page, errors=errors, f=f)


@staff_route("/patients/<int:patient_id>/audit.csv", "read")
def patient_audit_csv(patient_id: int) -> Response:
    """A certified copy of one patient's audit trail: every entry with its chain hashes, the chain verified at
    export time (X-Audit-Chain header), and the copy's own SHA-256 (X-Content-SHA256)."""
    import hashlib

    from proapp.audit.models import AuditEvent
    from proapp.audit.services import record, verify

    patient = patient_or_404(patient_id)
    s = db.session()
    count, findings = verify(s)
    out = io.StringIO()
    writer = csvfiles.writer(out)
    writer.writerow(("entry", "at_utc", "actor", "action", "entity", "entity_id", "old", "new", "reason",
                     "prev_hash", "hash"))
    for e in s.scalars(select(AuditEvent).where(AuditEvent.patient_id == patient.id).order_by(AuditEvent.id)):
        writer.writerow((e.id, e.at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), e.actor, e.action, e.entity, e.entity_id or "",
                         "" if e.old is None else json.dumps(e.old, sort_keys=True, ensure_ascii=False),
                         "" if e.new is None else json.dumps(e.new, sort_keys=True, ensure_ascii=False),
                         e.reason or "", e.prev_hash, e.hash))
    body = out.getvalue().encode()
    record(s, actor=viewer().actor, action="audit.exported", entity="patient", entity_id=patient.id,
           patient_id=patient.id, new={"sha256": hashlib.sha256(body).hexdigest(), "chain_intact": not findings},
           at=services.now())
    s.commit()
    name = f"audit-{patient.subject_id}-{services.now():%Y%m%dT%H%M%SZ}.csv"
    return Response(body, mimetype="text/csv", headers={
        "Content-Disposition": f'attachment; filename="{name}"',
        "X-Audit-Chain": f"intact; {count} entries verified" if not findings else f"TAMPERED: {findings[0]}",
        "X-Content-SHA256": hashlib.sha256(body).hexdigest()})


def init_app(app) -> None:
    app.register_blueprint(bp)
