"""Pushing completed responses to the EDC when the study file names an endpoint (``edc: push: url, secret_env``).

Each response becomes a ``push_delivery`` row (unique per response and endpoint), POSTed as the same JSON the
API returns, signed ``X-Proapp-Signature: t=<unix time>,v1=<HMAC-SHA256 of "<t>.<body>">`` with the secret from
the named environment variable, with ``Idempotency-Key: proapp-response-<id>-r<revision>`` (a correction is a
new message). A 2xx is delivered; anything else (or no answer) is retried after 30 s, 60 s, 120 s ... at most an
hour apart, until accepted. A redirect is never followed (it would re-send the response, its signature and its
idempotency key to another address): a 3xx is a failed delivery, shown in the delivery log. In production the
endpoint must be ``https://`` (``insecure_endpoints``: the app refuses to start, ``proapp check`` says so)."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
from dataclasses import dataclass
from datetime import datetime, timedelta

import requests
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from proapp.db import dialect_insert
from proapp.export import data, feed
from proapp.export.formats import json_format
from proapp.export.models import ApiKey, PushDelivery
from proapp.instruments import Registry
from proapp.patients.models import Occurrence, Patient
from proapp.questionnaire.models import Response, ResponseStatus
from proapp.studies.catalog import StudyCatalog
from proapp.studies.models import Study

log = logging.getLogger("proapp.push")
MAX_DELAY = timedelta(hours=1)
LEASE = timedelta(minutes=2)
PENDING, DELIVERED = "pending", "delivered"


@dataclass
class PushReport:
    queued: int = 0
    delivered: int = 0
    retried: int = 0


def signature(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def insecure_endpoints(catalog: StudyCatalog) -> list[str]:
    """One sentence per study whose push endpoint is not https (refused in production)."""
    return [f"study {loaded.definition.code} pushes responses to {loaded.definition.edc.push.url}: in production "
            "the EDC endpoint must be https://" for loaded in catalog.all()
            if loaded.definition.edc.push is not None
            and not loaded.definition.edc.push.url.lower().startswith("https://")]


def queue(db: Session, catalog: StudyCatalog, now: datetime) -> int:
    """A delivery row for each completed, sequenced response of a study with a push endpoint."""
    feed.sequence_pending(db)
    count = 0
    for loaded in catalog.all():
        push = loaded.definition.edc.push
        if push is None:
            continue
        study_id = db.scalar(select(Study.id).where(Study.code == loaded.definition.code))
        if study_id is None:
            continue
        ids = list(db.execute(
            select(Response.id, Response.export_seq).join(Occurrence, Occurrence.id == Response.occurrence_id)
            .join(Patient, Patient.id == Occurrence.patient_id)
            .where(Patient.study_id == study_id, Response.status == ResponseStatus.COMPLETED,
                   Response.export_seq.is_not(None),
                   ~select(PushDelivery.id).where(PushDelivery.response_id == Response.id,
                                                  PushDelivery.endpoint == push.url,
                                                  PushDelivery.export_seq == Response.export_seq).exists())
            .order_by(Response.export_seq)).all())
        if ids:
            insert = dialect_insert(db.get_bind().dialect.name)
            db.execute(insert(PushDelivery).on_conflict_do_nothing(), [
                {"response_id": rid, "export_seq": seq, "study_id": study_id, "endpoint": push.url,
                 "status": PENDING, "attempts": 0, "created_at": now, "next_at": now} for rid, seq in ids])
            count += len(ids)
    db.commit()
    return count


def send_due(db: Session, catalog: StudyCatalog, registry: Registry, now: datetime, *, timeout: float = 10,
             limit: int = 100, env: dict[str, str] | None = None) -> PushReport:
    env = os.environ if env is None else env
    report = PushReport()
    due = (select(PushDelivery.id).where(PushDelivery.status == PENDING, PushDelivery.next_at <= now)
           .order_by(PushDelivery.next_at, PushDelivery.id).limit(limit))
    if db.get_bind().dialect.name == "postgresql":
        due = due.with_for_update(skip_locked=True)
    ids = list(db.scalars(due))           # two statements: at most ``limit`` rows whatever the plan (sms.claim)
    claimed = list(db.scalars(
        update(PushDelivery).where(PushDelivery.id.in_(ids), PushDelivery.status == PENDING,
                                   PushDelivery.next_at <= now)
        .values(next_at=now + LEASE).returning(PushDelivery.id))) if ids else []
    db.commit()
    session = requests.Session()
    for delivery_id in claimed:
        d = db.get(PushDelivery, delivery_id)
        study = db.get(Study, d.study_id)
        push = catalog.get(study.code).edc.push
        secret = env.get(push.secret_env) if push else None
        error, code = None, None
        if push is None or push.url != d.endpoint:
            error = "the study file no longer names this endpoint"
        elif not secret:
            error = f"{push.secret_env} is not set"
        else:
            key = ApiKey(study_id=d.study_id, site_ids=None)
            [item] = data.load(db, key, Response.id == d.response_id) or [None]
            if item is None:
                error = "response not found"
            else:
                # Its place among this endpoint's deliveries of the study (other studies' volume is not told).
                sequence = db.scalar(select(func.count(PushDelivery.id)).where(
                    PushDelivery.study_id == d.study_id, PushDelivery.endpoint == d.endpoint,
                    PushDelivery.id <= d.id)) or 0
                document = json_format.json_item(item, registry.get(item.instrument, item.version), sequence)
                body = json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()
                stamp = int(now.timestamp())
                try:
                    resp = session.post(d.endpoint, data=body, timeout=timeout, headers={
                        "Content-Type": "application/json", "X-Proapp-Signature": signature(secret, stamp, body),
                        # A correction is a new message: an idempotent inbox must not drop it as a repeat.
                        "Idempotency-Key": f"proapp-response-{d.response_id}-r{document['revision']}",
                        "User-Agent": "proapp-push/1"}, allow_redirects=False)
                    code = resp.status_code
                    if 300 <= code < 400:
                        error = f"HTTP {code}: a redirect, not followed (to {resp.headers.get('Location', '?')})"
                    elif not 200 <= code < 300:
                        error = f"HTTP {code}"
                except requests.RequestException as exc:
                    error = f"{type(exc).__name__}"
        d.attempts += 1
        d.last_attempt_at, d.last_status_code = now, code
        if error is None:
            d.status, d.delivered_at, d.last_error = DELIVERED, now, None
            report.delivered += 1
        else:
            d.last_error = error[:300]
            d.next_at = now + min(timedelta(seconds=30 * 2 ** (d.attempts - 1)), MAX_DELAY)
            report.retried += 1
            log.warning("push of response %s to %s failed (%s); next try %s", d.response_id, d.endpoint, error,
                        d.next_at.isoformat())
        db.commit()
    return report
