"""Telling the study team: an outbox of notifications, unique per (alert, step, channel, recipient).

Step 0 goes when the worker first sees a new alert: e-mail to the site's coordinators and on-call address, and an
SMS to the on-call mobile when the alert is urgent. While nobody acknowledges it, step k goes k escalation delays
after it was raised (the study file's hours for its severity), to the same people and to the admins, up to the
study's ``max_escalations``. Each row is claimed atomically before it is sent (two workers never send the same
row), retried when the server says "later", and never resent when a worker stopped in the middle of a send.
The messages carry the study, site, subject ID, rule and a link: no answer, no score.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from flask_babel import force_locale, gettext
from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session, joinedload

from proapp import outbox
from proapp.accounts.models import Role, User, UserScope
from proapp.alerts.models import Alert, AlertNotification, AlertState, NotificationStatus
from proapp.audit.trail import record
from proapp.db import dialect_insert
from proapp.mail import Mail, Mailer
from proapp.patients.models import Patient
from proapp.sms.gateways import Gateway, Outgoing
from proapp.studies.catalog import StudyCatalog
from proapp.studies.models import Site, Study

ACTOR = "system:alerts"
CLAIM_LEASE = timedelta(minutes=5)       # longer than any send's timeout: a send in progress never looks abandoned
RETRY_BASE = timedelta(seconds=60)


@dataclass(frozen=True)
class Recipient:
    channel: str              # email, sms
    address: str
    kind: str                 # coordinator, on_call, admin
    language: str | None      # None: both languages (an on-call address may be read by anyone)


def recipients(db: Session, alert: Alert, step: int) -> list[Recipient]:
    """Who hears about the alert at this step (one row per address, first reason kept)."""
    site = alert.site
    found: list[Recipient] = []
    coordinators = db.execute(
        select(User.email, User.language).join(UserScope, UserScope.user_id == User.id)
        .where(User.active.is_(True), User.role == Role.COORDINATOR, UserScope.study_id == alert.study_id,
               or_(UserScope.site_id == alert.site_id, UserScope.site_id.is_(None)))
        .order_by(User.email)).all()
    found += [Recipient("email", email, "coordinator", lang) for email, lang in coordinators]
    if site.on_call_email:
        found.append(Recipient("email", site.on_call_email, "on_call", None))
    if alert.severity == "urgent" and site.on_call_mobile:
        found.append(Recipient("sms", site.on_call_mobile, "on_call", None))
    if step > 0:
        admins = db.execute(select(User.email, User.language)
                            .where(User.active.is_(True), User.role == Role.ADMIN).order_by(User.email)).all()
        found += [Recipient("email", email, "admin", lang) for email, lang in admins]
    seen: set[tuple[str, str]] = set()
    unique = []
    for r in found:
        if (r.channel, r.address.lower()) not in seen:
            seen.add((r.channel, r.address.lower()))
            unique.append(r)
    return unique


def _add_step(db: Session, alert: Alert, step: int, now: datetime) -> int:
    rows = [{"alert_id": alert.id, "step": step, "channel": r.channel, "recipient": r.address,
             "recipient_kind": r.kind, "language": r.language, "status": NotificationStatus.PENDING,
             "created_at": now, "due_at": now, "status_at": now, "attempts": 0}
            for r in recipients(db, alert, step)]
    insert = dialect_insert(db.get_bind().dialect.name)
    added = 0
    for row in rows:
        stmt = insert(AlertNotification).values(**row).on_conflict_do_nothing(
            index_elements=["alert_id", "step", "channel", "recipient"]).returning(AlertNotification.id)
        added += db.execute(stmt).first() is not None
    return added


def plan(db: Session, studies: StudyCatalog, now: datetime) -> dict[str, int]:
    """Add the notifications due: step 0 of new alerts, and the escalations of alerts left open too long.

    Each alert moves to its next step with a compare-and-set on its step, so two workers plan a step once."""
    planned = {"notified": 0, "escalated": 0, "notifications": 0}
    new = db.scalars(select(Alert).where(Alert.notified_at.is_(None)).options(joinedload(Alert.site))
                     .order_by(Alert.id).limit(200)).all()
    for alert in new:
        if not db.execute(update(Alert).where(Alert.id == alert.id, Alert.notified_at.is_(None))
                          .values(notified_at=now)).rowcount:
            continue
        n = _add_step(db, alert, 0, now)
        planned["notified"] += 1
        planned["notifications"] += n
        record(db, actor=ACTOR, action="alert.notified", entity="alert", entity_id=alert.id,
               patient_id=alert.patient_id, new={"step": 0, "notifications": n}, at=now)
    # One statement for every open alert with its study's code and site (the pass runs every few seconds).
    open_alerts = db.execute(select(Alert, Study.code).join(Study, Study.id == Alert.study_id)
                             .options(joinedload(Alert.site))
                             .where(Alert.state == AlertState.OPEN, Alert.notified_at.is_not(None))
                             .order_by(Alert.id)).all()
    for alert, study_code in open_alerts:
        settings = studies.get(study_code).alerts
        level = alert.escalation_level
        if level >= settings.max_escalations:
            continue
        delay = timedelta(hours=settings.escalation_hours[alert.severity])   # type: ignore[index]
        if alert.raised_at + (level + 1) * delay > now:
            continue
        if not db.execute(update(Alert).where(Alert.id == alert.id, Alert.escalation_level == level,
                                              Alert.state == AlertState.OPEN)
                          .values(escalation_level=level + 1, escalated_at=now)).rowcount:
            continue
        n = _add_step(db, alert, level + 1, now)
        planned["escalated"] += 1
        planned["notifications"] += n
        record(db, actor=ACTOR, action="alert.escalated", entity="alert", entity_id=alert.id,
               patient_id=alert.patient_id, old={"step": level},
               new={"step": level + 1, "notifications": n,
                    "unacknowledged_hours": settings.escalation_hours[alert.severity] * (level + 1)},  # type: ignore[index]
               at=now)
    return planned


def claim(db: Session, worker: str, now: datetime, limit: int = 50) -> list[int]:
    """Take due notifications for this worker (proapp/outbox); first give up the claims a stopped worker left:
    they may have gone, so they are recorded as unknown and never resent."""
    stale = db.execute(update(AlertNotification).where(outbox.abandoned(AlertNotification, now, CLAIM_LEASE))
                       .values(status=NotificationStatus.UNKNOWN, status_at=now,
                               error="the worker stopped while sending: it may have gone; not resent")
                       .returning(AlertNotification.id, AlertNotification.alert_id)).all()
    for nid, alert_id in stale:
        _audit(db, nid, alert_id, "sending", "unknown", now)
    return outbox.claim(db, AlertNotification, worker, now, limit, attempts=AlertNotification.attempts + 1)


def _audit(db: Session, notification_id: int, alert_id: int, old: str, new: str, now: datetime,
           **details: Any) -> None:
    patient_id = db.scalar(select(Alert.patient_id).where(Alert.id == alert_id))
    record(db, actor=ACTOR, action=f"alert.notification_{new}", entity="alert_notification",
           entity_id=notification_id, patient_id=patient_id, old={"status": old},
           new={"status": new, "alert": alert_id, **details}, at=now)


@dataclass
class Ready:
    """A claimed notification, ready to go."""

    id: int
    alert_id: int
    channel: str
    recipient: str
    mail: Mail | None = None
    sms: Outgoing | None = None


def prepare(db: Session, ids: Iterable[int], *, public_url: str, sender_name: str) -> list[Ready]:
    rows = db.execute(select(AlertNotification, Alert, Patient.subject_id, Study.code, Site.code, Site.name,
                             Site.timezone)
                      .join(Alert, Alert.id == AlertNotification.alert_id)
                      .join(Patient, Patient.id == Alert.patient_id).join(Study, Study.id == Alert.study_id)
                      .join(Site, Site.id == Alert.site_id)
                      .where(AlertNotification.id.in_(list(ids))).order_by(AlertNotification.id)).all()
    out = []
    for n, alert, subject, study, site, site_name, tz in rows:
        facts = Facts(study, site, site_name, subject, alert.rule_label, alert.severity, alert.raised_at, tz,
                      f"{public_url}/staff/alerts/{alert.id}", n.step)
        if n.channel == "sms":
            out.append(Ready(n.id, alert.id, "sms", n.recipient,
                                 sms=Outgoing(n.id, n.recipient, sms_text(facts, sender_name), None)))
        else:
            subject_line, body = mail_text(facts, n.language)
            digest = hashlib.sha256(f"{alert.id}|{n.step}|{n.recipient}".encode()).hexdigest()[:16]
            out.append(Ready(n.id, alert.id, "email", n.recipient, mail=Mail(
                n.recipient, subject_line, body, f"<alert-{alert.id}.{n.step}.{digest}@proapp>")))
    return out


def send(out: Ready, mailer: Mailer, gateway: Gateway) -> outbox.Outcome:
    """One notification through its channel."""
    if out.mail is not None:
        return mailer.send(out.mail)
    assert out.sms is not None
    return gateway.send(out.sms)


def apply_outcome(db: Session, out: Ready, worker: str, outcome: outbox.Outcome, now: datetime,
                  max_attempts: int) -> str:
    n = db.scalar(select(AlertNotification).where(AlertNotification.id == out.id,
                                                  AlertNotification.claimed_by == worker,
                                                  AlertNotification.status == NotificationStatus.SENDING)
                  .with_for_update())
    if n is None:
        return "released"          # the claim is no longer this worker's
    kind, values = outbox.settled(outcome, n.attempts, max_attempts, now, RETRY_BASE)
    values.update(status_at=now, error=outcome.error)
    if kind == "sent":
        values.update(sent_at=now, provider_id=out.mail.message_id if out.mail else outcome.reference)
    db.execute(update(AlertNotification).where(AlertNotification.id == n.id).values(**values))
    if kind != "retry":
        _audit(db, n.id, n.alert_id, "sending", kind, now, channel=n.channel, recipient_kind=n.recipient_kind,
               step=n.step, attempts=n.attempts)
    return kind


# The texts --------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Facts:
    study: str
    site: str
    site_name: str
    subject: str
    label: dict[str, str]
    severity: str
    raised_at: datetime
    timezone: str
    link: str
    step: int


def severity_label(severity: str) -> str:
    return {"urgent": gettext("urgent"), "same_day": gettext("same day"), "review": gettext("to review")}[severity]


def _one_language(f: Facts, language: str) -> tuple[str, str]:
    with force_locale(language):
        local = f.raised_at.astimezone(ZoneInfo(f.timezone))
        subject = gettext("[%(study)s] Alert (%(severity)s): %(subject)s, %(rule)s", study=f.study,
                          severity=severity_label(f.severity), subject=f.subject, rule=f.label[language])
        if f.step:
            subject = gettext("Reminder %(n)s, not acknowledged: ", n=f.step) + subject
        lines = [
            gettext("A patient's answers met a safety rule of the study."),
            "",
            gettext("Study: %(study)s", study=f.study),
            gettext("Site: %(site)s (%(name)s)", site=f.site, name=f.site_name),
            gettext("Subject: %(subject)s", subject=f.subject),
            gettext("Rule: %(rule)s", rule=f.label[language]),
            gettext("Priority: %(severity)s", severity=severity_label(f.severity)),
            gettext("Raised: %(local)s (%(zone)s time), %(utc)s UTC", local=local.strftime("%Y-%m-%d %H:%M"),
                    zone=f.timezone, utc=f.raised_at.strftime("%Y-%m-%d %H:%M")),
            "",
        ]
        if f.step:
            lines += [gettext("Nobody has acknowledged this alert yet (reminder %(n)s).", n=f.step), ""]
        lines += [gettext("See the answers and acknowledge the alert (sign-in required):"), f.link, "",
                  gettext("This message holds no answer of the patient: they are in the application only.")]
    return subject, "\n".join(lines)


def mail_text(f: Facts, language: str | None) -> tuple[str, str]:
    """Subject and body in the recipient's language, or French then English for an on-call address."""
    if language in ("fr", "en"):
        return _one_language(f, language)
    fr_subject, fr_body = _one_language(f, "fr")
    _en_subject, en_body = _one_language(f, "en")
    return fr_subject, f"{fr_body}\n\n----- English -----\n\n{en_body}"


def sms_text(f: Facts, sender: str) -> str:
    """The on-call SMS: which study, site and subject, and the alert's link; never what the patient reported (an
    SMS crosses the carrier's network in clear, and rule labels name symptoms). The page behind the link says it."""
    with force_locale("fr"):
        return gettext("%(sender)s: URGENT alert %(study)s/%(site)s, subject %(subject)s. %(link)s",
                       sender=sender, study=f.study, site=f.site, subject=f.subject, link=f.link)
