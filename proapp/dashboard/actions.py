"""Staff actions on one visit of a patient: a new link sent by SMS now, a link for a site tablet. Each composes the
questionnaire's links and the SMS outbox, so it lives here, above them; the changes to the patient themselves are
in proapp/patients/actions.py (whose ``ChangeRefused`` these raise too)."""

from __future__ import annotations

from datetime import datetime

from flask_babel import lazy_gettext as _l
from sqlalchemy.orm import Session

from proapp.patients.actions import ChangeRefused, check_active, check_reason
from proapp.patients.models import Occurrence, OccurrenceStatus, Patient
from proapp.patients.preferences import record_event
from proapp.questionnaire.answering import new_link
from proapp.questionnaire.models import AccessLink
from proapp.sms import delivery as sms


def _open(occ: Occurrence, now: datetime) -> None:
    if occ.status == OccurrenceStatus.COMPLETED:
        raise ChangeRefused(_l("This questionnaire is already completed."), "occurrence")
    if not occ.is_open(now):
        raise ChangeRefused(_l("This questionnaire's window is not open."), "occurrence")


def resend_link(db: Session, patient: Patient, occ: Occurrence, *, actor: str, reason: str | None,
                now: datetime) -> str:
    """Send a new link by SMS now; the previous links stop working at once."""
    reason = check_reason(reason)
    check_active(patient)
    _open(occ, now)
    contact = patient.contact
    if contact is None or contact.phone_ciphertext is None:
        raise ChangeRefused(_l("This patient has no phone number."), "occurrence")
    if contact.opted_out_at is not None or contact.sms_paused_at is not None:
        raise ChangeRefused(_l("SMS are stopped for this patient: resume them first."), "occurrence")
    if not contact.usable:
        raise ChangeRefused(_l("This phone number cannot receive SMS: change it first."), "occurrence")
    kind = sms.queue_resend(db, occ, now)
    record_event(db, patient.id, now, actor, "link_resent", reason, {"visit": occ.visit_code, "sms": kind})
    db.flush()
    return kind


def start_on_site(db: Session, patient: Patient, occ: Occurrence, *, actor: str, now: datetime) -> AccessLink:
    """A link for a site tablet; the patient's SMS link keeps working. The response is recorded on site."""
    check_active(patient)
    _open(occ, now)
    _token, link = new_link(db, occ, now, revoke_previous=False)
    link.first_opened_at = now
    record_event(db, patient.id, now, actor, "started_on_site", None, {"visit": occ.visit_code})
    db.flush()
    return link
