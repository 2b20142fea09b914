"""The one outbox: what every message waiting to leave shares, whatever it is and whatever carries it.

Four features queue messages: the patients' SMS (``sms_message``), the alerts' notifications by e-mail or SMS
(``alert_notification``), the staff's invitation and reset mails (``account_mail``) and the responses pushed to
an EDC (``push_delivery``). Each table has the shared columns (``status``, ``due_at``, ``attempts``, ``claimed_by``,
``claimed_at``) and the shared words (`Status`); each channel (proapp/sms/gateways.py, proapp/mail.py, the HTTP
push) answers with one `Outcome`. This module claims due rows (at most the limit, whatever PostgreSQL's plan),
finds the claims a stopped worker left, says when a retry is due, and turns an outcome into the row's next state.
What a message is and what else its outcome means (a link revoked, a number marked unusable, an audit entry) stays
with its feature.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session


class Status(enum.StrEnum):
    """The words every outbox row uses (an SMS adds the network's progress after SENT: delivered, undelivered)."""

    PENDING = "pending"      # waiting for its due time (first try or a retry after a temporary error)
    SENDING = "sending"      # claimed by a worker; the request may be on its way
    UNKNOWN = "unknown"      # it may have gone: looked up where the channel allows it, never sent again blindly
    SENT = "sent"            # the channel took it (the SMS gateway, the mail server, the EDC's 2xx)
    FAILED = "failed"        # refused for good, or given up after the last try
    CANCELLED = "cancelled"  # not sent, on purpose (the SMS's reason is kept)


@dataclass(frozen=True)
class Outcome:
    """What a channel answered to one send."""

    kind: str                           # sent, retry, failed, unknown
    error: str | None = None
    reference: str | None = None        # the channel's id of what went: the SMS's SID, the mail's Message-ID
    provider_status: str | None = None  # SMS: Twilio's status at once (queued, accepted, sent...)
    error_code: int | None = None       # SMS: Twilio's error code


@dataclass
class Report:
    """One pass over one outbox: how many rows were claimed, and what became of them."""

    queued: int = 0
    claimed: int = 0
    sent: int = 0
    retry: int = 0
    failed: int = 0
    unknown: int = 0
    cancelled: int = 0
    postponed: int = 0
    released: int = 0

    def count(self, kind: str) -> None:
        setattr(self, kind, getattr(self, kind) + 1)


def claim(db: Session, model: Any, worker: str, now: datetime, limit: int, **also: Any) -> list[int]:
    """Take up to ``limit`` due rows of ``model`` for ``worker``, atomically: no other worker takes them too.

    Two statements, not ``UPDATE ... WHERE id IN (SELECT ... LIMIT n FOR UPDATE SKIP LOCKED)``: PostgreSQL may run
    such a subquery once per row (a nested loop on a never-analysed table), and one claim would then take the
    whole backlog. ``also``: more columns to set on the claimed rows (``attempts=model.attempts + 1``)."""
    due = (select(model.id).where(model.status == Status.PENDING, model.due_at <= now)
           .order_by(model.due_at, model.id).limit(limit))
    if db.get_bind().dialect.name == "postgresql":
        due = due.with_for_update(skip_locked=True)
    ids = list(db.scalars(due))
    if not ids:
        return []
    values = {"status": Status.SENDING, "claimed_by": worker, "claimed_at": now, **also}
    if hasattr(model, "status_at"):
        values["status_at"] = now
    return sorted(db.scalars(update(model).where(model.id.in_(ids), model.status == Status.PENDING)
                             .values(**values).returning(model.id)))


def abandoned(model: Any, now: datetime, lease: timedelta) -> Any:
    """The condition of rows a stopped worker left: claimed longer ago than the lease and never settled."""
    return (model.status == Status.SENDING) & (model.claimed_at < now - lease)


def retry_at(now: datetime, attempts: int, base: timedelta, cap: timedelta = timedelta(hours=1)) -> datetime:
    """When the next try is due after ``attempts`` tries: ``base``, then twice as long each time, at most ``cap``."""
    return now + min(base * 2 ** max(attempts - 1, 0), cap)


def settled(outcome: Outcome, attempts: int, max_attempts: int, now: datetime, base: timedelta,
            cap: timedelta = timedelta(hours=1)) -> tuple[str, dict[str, Any]]:
    """(the outcome's kind, given up after the last try; the row's new columns) for a claimed row: the claim is
    released; a retry is due later, or the row fails when it was the last try."""
    kind = "failed" if outcome.kind == "retry" and attempts >= max_attempts else outcome.kind
    values: dict[str, Any] = {"claimed_by": None, "claimed_at": None}
    if kind == "retry":
        values.update(status=Status.PENDING, due_at=retry_at(now, attempts, base, cap))
    else:
        values["status"] = Status(kind)
    return kind, values
