"""Pushing completed responses to the EDC when the study file names an endpoint (``edc: push: url, secret_env``).

Each response becomes a ``push_delivery`` row (unique per response and endpoint), POSTed as the same JSON the
API returns, signed ``X-Proapp-Signature: t=<unix time>,v1=<HMAC-SHA256 of "<t>.<body>">`` with the secret from
the named environment variable, with ``Idempotency-Key: proapp-response-<id>-r<revision>`` (a correction is a
new message). A 2xx is sent (shown "delivered"); anything else (or no answer) is retried after 30 s, 60 s,
120 s ... at most an hour apart, until accepted or ``PROAPP_PUSH_MAX_ATTEMPTS`` tries (then failed: the deliveries
page and /metrics show it, and the EDC can still pull the response). The rows are an outbox like the others
(proapp/outbox): claimed by one worker, a claim a stopped worker left given back. A redirect is never followed
(it would re-send the response, its signature and its idempotency key to another address): a 3xx is a failed
try, shown in the delivery log. In production the endpoint must be ``https://`` (``insecure_endpoints``: the app
refuses to start, ``proapp check`` says so)."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import requests
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from proapp import outbox
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
RETRY_BASE = timedelta(seconds=30)
MAX_DELAY = timedelta(hours=1)
LEASE = timedelta(minutes=2)            # longer than a request's timeout: a send in progress never looks abandoned


def signature(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def push_problems(cfg: Mapping[str, Any]) -> list[str]:
    """The push settings that cannot work (start-up and ``proapp check``)."""
    if int(cfg.get("PUSH_MAX_ATTEMPTS", 48)) < 1:
        return ["PROAPP_PUSH_MAX_ATTEMPTS must be at least 1."]
    return []


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
                 "status": outbox.Status.PENDING, "attempts": 0, "created_at": now, "due_at": now}
                for rid, seq in ids])
            count += len(ids)
    return count


def claim(db: Session, worker: str, now: datetime, limit: int = 100) -> list[int]:
    """Take due deliveries for this worker (proapp/outbox). A claim a stopped worker left goes back to pending:
    sending a push again is safe (the EDC sees the same ``Idempotency-Key``), unlike an SMS."""
    db.execute(update(PushDelivery).where(outbox.abandoned(PushDelivery, now, LEASE))
               .values(status=outbox.Status.PENDING, claimed_by=None, claimed_at=None))
    return outbox.claim(db, PushDelivery, worker, now, limit)


@dataclass(frozen=True)
class Ready:
    """A claimed delivery, ready to go: the signed request, or why it cannot be made."""

    id: int
    url: str
    body: bytes = b""
    headers: dict[str, str] | None = None
    error: str | None = None


def prepare(db: Session, delivery_id: int, catalog: StudyCatalog, registry: Registry, now: datetime,
            env: Mapping[str, str]) -> Ready:
    """The request for one delivery: the response as the API's JSON, signed with the endpoint's secret."""
    d = db.get(PushDelivery, delivery_id)
    study = db.get(Study, d.study_id)
    push = catalog.get(study.code).edc.push
    secret = env.get(push.secret_env) if push else None
    if push is None or push.url != d.endpoint:
        return Ready(d.id, d.endpoint, error="the study file no longer names this endpoint")
    if not secret:
        return Ready(d.id, d.endpoint, error=f"{push.secret_env} is not set")
    [item] = data.load(db, ApiKey(study_id=d.study_id, site_ids=None), Response.id == d.response_id) or [None]
    if item is None:
        return Ready(d.id, d.endpoint, error="response not found")
    # Its place among this endpoint's deliveries of the study (other studies' volume is not told).
    sequence = db.scalar(select(func.count(PushDelivery.id)).where(
        PushDelivery.study_id == d.study_id, PushDelivery.endpoint == d.endpoint, PushDelivery.id <= d.id)) or 0
    document = json_format.json_item(item, registry.get(item.instrument, item.version), sequence)
    body = json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()
    return Ready(d.id, d.endpoint, body, {
        "Content-Type": "application/json", "X-Proapp-Signature": signature(secret, int(now.timestamp()), body),
        # A correction is a new message: an idempotent inbox must not drop it as a repeat.
        "Idempotency-Key": f"proapp-response-{d.response_id}-r{document['revision']}",
        "User-Agent": "proapp-push/1"})


def send(ready: Ready, session: requests.Session, timeout: float = 10) -> outbox.Outcome:
    """POST one delivery. A 2xx is sent; anything else is retried (a redirect is never followed)."""
    if ready.error is not None:
        return outbox.Outcome("retry", ready.error)
    try:
        resp = session.post(ready.url, data=ready.body, timeout=timeout, headers=ready.headers,
                            allow_redirects=False)
    except requests.RequestException as exc:
        return outbox.Outcome("retry", type(exc).__name__)
    code = resp.status_code
    if 200 <= code < 300:
        return outbox.Outcome("sent", error_code=code)
    if 300 <= code < 400:
        where = resp.headers.get("Location", "?")
        return outbox.Outcome("retry", f"HTTP {code}: a redirect, not followed (to {where})", error_code=code)
    return outbox.Outcome("retry", f"HTTP {code}", error_code=code)


def apply_outcome(db: Session, delivery_id: int, worker: str, outcome: outbox.Outcome, now: datetime,
                  max_attempts: int) -> str:
    """Record what the EDC answered; after the last try the delivery fails (shown on the deliveries page, counted
    in /metrics; the EDC can still pull the response through the API)."""
    d = db.scalar(select(PushDelivery).where(PushDelivery.id == delivery_id, PushDelivery.claimed_by == worker,
                                             PushDelivery.status == outbox.Status.SENDING).with_for_update())
    if d is None:
        return "released"          # the claim is no longer this worker's
    d.attempts += 1
    if outcome.kind == "unknown":        # pushing again is safe (the same Idempotency-Key): a retry
        outcome = outbox.Outcome("retry", outcome.error)
    kind, values = outbox.settled(outcome, d.attempts, max_attempts, now, RETRY_BASE, MAX_DELAY)
    for column, value in values.items():
        setattr(d, column, value)
    d.last_attempt_at, d.last_status_code = now, outcome.error_code
    if kind == "sent":
        d.delivered_at, d.last_error = now, None
    else:
        d.last_error = (outcome.error or "")[:300]
        log.warning("push of response %s to %s failed (%s); %s", d.response_id, d.endpoint, outcome.error,
                    f"next try {d.due_at.isoformat()}" if kind == "retry" else f"given up after {d.attempts} tries")
    return kind
