"""The ordered feed of completed responses.

A response's ``export_seq`` is given *after* its transaction committed, by ``sequence_pending``, which runs in a
transaction of its own that first locks the single ``export_feed`` row. Sequencers are therefore serialised, and
each numbers only rows already committed, after every number given before. So the numbers grow in the order
the responses *became visible*, and a reader that asks for ``export_seq > cursor`` never misses a response that
committed late with a lower id, and never gets one twice.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from proapp.db import dialect_insert
from proapp.export.models import ExportFeed
from proapp.questionnaire.models import Response, ResponseStatus

FEED_ROW = 1


def _lock_feed(db: Session) -> int:
    """Lock the feed row (creating it if needed) and return the last number given."""
    last = db.execute(update(ExportFeed).where(ExportFeed.id == FEED_ROW)
                      .values(last_seq=ExportFeed.last_seq).returning(ExportFeed.last_seq)).scalar()
    if last is None:
        insert = dialect_insert(db.get_bind().dialect.name)
        db.execute(insert(ExportFeed).values(id=FEED_ROW, last_seq=0).on_conflict_do_nothing())
        last = db.execute(update(ExportFeed).where(ExportFeed.id == FEED_ROW)
                          .values(last_seq=ExportFeed.last_seq).returning(ExportFeed.last_seq)).scalar_one()
    return last


def sequence_pending(db: Session) -> int:
    """Number the completed responses not in the feed yet; commit. Returns how many were numbered."""
    try:
        last = _lock_feed(db)
        pending = list(db.scalars(select(Response.id)
                                  .where(Response.status == ResponseStatus.COMPLETED, Response.export_seq.is_(None))
                                  .order_by(Response.completed_at, Response.id)))
        if pending:
            db.execute(update(Response), [{"id": rid, "export_seq": last + n} for n, rid in enumerate(pending, 1)])
            db.execute(update(ExportFeed).where(ExportFeed.id == FEED_ROW).values(last_seq=last + len(pending)))
        db.commit()
    except BaseException:
        db.rollback()
        raise
    return len(pending)


class BadCursor(ValueError):
    pass


def cursor_scope(study_id: int, site_ids: list[int] | None) -> str:
    """What a cursor is bound to: the study and the key's sites (a cursor of one scope is refused in another)."""
    return f"{study_id}:{','.join(str(s) for s in sorted(site_ids)) if site_ids else '*'}"


def encode_cursor(seq: int, secret: str, scope: str, position: int) -> str:
    """An opaque, signed cursor: the feed number reached and how many responses the key has been given up to it
    (its ``sequence`` numbers continue from there: they count this key's responses, never other studies' or
    sites')."""
    body = json.dumps({"v": 2, "s": seq, "p": position, "k": scope}, separators=(",", ":")).encode()
    mac = hmac.new(secret.encode(), body, hashlib.sha256).digest()[:12]
    return base64.urlsafe_b64encode(body + mac).decode().rstrip("=")


def decode_cursor(cursor: str | None, secret: str, scope: str) -> tuple[int, int | None]:
    """The feed number behind an opaque cursor (0 for none) and the key's position there (None: a cursor of the
    first form, without it); BadCursor if malformed, tampered with, or given by this API for another study or
    other sites."""
    if not cursor:
        return 0, 0
    try:
        if len(cursor) > 300:
            raise ValueError
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        body, mac = raw[:-12], raw[-12:]
        if not hmac.compare_digest(mac, hmac.new(secret.encode(), body, hashlib.sha256).digest()[:12]):
            raise ValueError
        data = json.loads(body)
        seq, position = data["s"], data.get("p")
        if data.get("v") not in (1, 2) or not isinstance(seq, int) or seq < 0:
            raise ValueError
        if data["v"] == 2 and (not isinstance(position, int) or position < 0):
            raise ValueError
    except (ValueError, KeyError, TypeError, json.JSONDecodeError, UnicodeDecodeError):
        raise BadCursor("the cursor is not one this API gave") from None
    if data.get("k") != scope:
        raise BadCursor("the cursor was given for another study or other sites") from None
    return seq, position
