"""After a restore: the outbox against the gateway's log, so that no SMS goes twice and no link is lost.

A backup knows nothing of what went out after it was taken: its outbox still shows those SMS as waiting, and the
links they carry are unknown to it. ``reconcile_after_restore`` reads, for each patient with an SMS waiting or in
flight, the messages the gateway took since just before the backup (Twilio's message log) that the outbox does not
know, and pairs each with the earliest waiting SMS of that patient due by then: that SMS is marked as taken by the
gateway, with its SID, and the link in its text works again. What is left was never sent and goes out as usual.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload

from proapp.patients.models import Patient
from proapp.patients.phones import PhoneVault
from proapp.questionnaire.models import AccessLink
from proapp.sms.delivery import _audit_sms
from proapp.sms.gateways import Gateway, body_hash
from proapp.sms.models import SmsMessage, SmsStatus
from proapp.tokens import token_hash

_LINK = re.compile(r"/s/([A-Za-z0-9_-]{16,})")


@dataclass
class AfterRestore:
    patients: int = 0             # patients whose gateway log was read
    found: int = 0                # SMS sent after the backup, now marked as sent (never sent again)
    links: int = 0                # links of those SMS made to work again
    released: int = 0             # claims of the backup's time given back: they go out as usual
    unmatched: list[str] = field(default_factory=list)   # messages at the gateway no waiting SMS explains (SIDs)


def reconcile_after_restore(db: Session, gateway: Gateway, vault: PhoneVault, since: datetime,
                            now: datetime) -> AfterRestore:
    out = AfterRestore()
    rows = db.scalars(select(SmsMessage)
                      .where(SmsMessage.status.in_((SmsStatus.PENDING, SmsStatus.SENDING)), SmsMessage.due_at <= now)
                      .options(joinedload(SmsMessage.patient).joinedload(Patient.contact))
                      .order_by(SmsMessage.patient_id, SmsMessage.due_at, SmsMessage.id)).all()
    by_patient: dict[int, list[SmsMessage]] = {}
    for row in rows:
        by_patient.setdefault(row.patient_id, []).append(row)
    for patient_id, waiting in by_patient.items():
        contact = waiting[0].patient.contact
        if contact is None or contact.phone_ciphertext is None:
            continue
        try:
            phone = vault.decrypt(contact.phone_ciphertext)
        except ValueError:                   # a lost phone key: nothing to look up (the worker flags it)
            continue
        out.patients += 1
        known = set(db.scalars(select(SmsMessage.provider_sid).where(SmsMessage.patient_id == patient_id,
                                                                     SmsMessage.provider_sid.is_not(None))))
        sent = sorted((m for m in gateway.sent_since(phone, since)
                       if m.sid not in known), key=lambda m: m.created)
        for message in sent:
            row = next((r for r in waiting if r.due_at <= message.created), None)
            if row is None:
                out.unmatched.append(message.sid)
                continue
            waiting.remove(row)
            old = row.status.value
            row.status, row.status_at, row.provider_sid = SmsStatus.ACCEPTED, now, message.sid
            row.provider_status, row.submitted_at = message.provider_status, message.created
            row.body_sha256, row.body_length = body_hash(message.body), len(message.body)
            row.attempts, row.claimed_by, row.claimed_at = row.attempts + 1, None, None
            token = _LINK.search(message.body)
            if token is not None:
                digest = token_hash(token.group(1))
                link = db.scalar(select(AccessLink).where(AccessLink.token_sha256 == digest))
                if link is None:
                    link = AccessLink(occurrence_id=row.occurrence_id, token_sha256=digest, created_at=message.created)
                    db.add(link)
                    db.flush()
                    out.links += 1
                row.access_link_id = link.id
            _audit_sms(db, [(row.id, row.patient_id)], old, SmsStatus.ACCEPTED.value, now,
                       found_after_restore=message.sid)
            out.found += 1
        for row in waiting:
            if row.status == SmsStatus.SENDING:         # claimed when the backup was taken, never reached it
                _audit_sms(db, [(row.id, row.patient_id)], row.status.value, SmsStatus.PENDING.value, now)
                row.status, row.status_at, row.claimed_by, row.claimed_at = SmsStatus.PENDING, now, None, None
                out.released += 1
    db.flush()
    return out
