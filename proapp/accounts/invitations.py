"""Invitations and password resets: a one-time link by e-mail, in the account's language, with no health data.

An admin's invitation (valid 72 hours) or a "forgot your password?" request (1 hour) queues a mail; the worker
makes the link's token when it sends the mail (only its SHA-256 is stored, and a newer link revokes the older
ones of the same kind), so no secret waits in the database. A link sets the password once; a reset ends every
session of the account. The "forgot" form answers the same whether the address has an account or not.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask_babel import force_locale, gettext
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from proapp import outbox
from proapp.accounts import staff as accounts
from proapp.accounts.models import AccountMail, AccountToken, User
from proapp.audit.trail import record
from proapp.mail import Mail
from proapp.tokens import token_hash

VALID_FOR = {"invite": timedelta(hours=72), "reset": timedelta(hours=1)}
CLAIM_LEASE = timedelta(minutes=5)
RETRY_BASE = timedelta(seconds=60)
QUEUE_AGAIN_AFTER = timedelta(minutes=1)       # a second request within a minute queues no second mail



def queue(db: Session, user: User, purpose: str, now: datetime, *, actor: str) -> bool:
    """Queue an invitation or reset mail for ``user``; False when one was queued in the last minute."""
    recent = db.scalar(select(AccountMail.id).where(AccountMail.user_id == user.id, AccountMail.purpose == purpose,
                                                    AccountMail.created_at > now - QUEUE_AGAIN_AFTER))
    if recent is not None:
        return False
    db.add(AccountMail(user_id=user.id, purpose=purpose, status="pending", created_at=now, due_at=now))

    record(db, actor=actor, action=f"user.{purpose}_mail_queued", entity="app_user", entity_id=user.id, at=now)
    db.flush()
    return True


def request_reset(db: Session, email: str, now: datetime, *, client: str) -> None:
    """A "forgot your password?" request: a reset mail when the address is an active account with a password;
    nothing otherwise (and the page says the same)."""
    email = (email or "").strip().lower()
    user = db.scalar(select(User).where(User.email == email)) if 0 < len(email) <= 254 else None
    if user is None or not user.active or user.password_hash == accounts.UNUSABLE_HASH:
        return
    queue(db, user, "reset", now, actor=f"anonymous:{client}")


@dataclass(frozen=True)
class Link:
    token: AccountToken
    user: User


def find(db: Session, token: str, purpose: str, now: datetime) -> Link | None:
    """The live link behind ``token`` (right purpose, not used, not expired, account active), or None."""
    if not token or len(token) > 100:
        return None
    row = db.scalar(select(AccountToken).where(AccountToken.token_hash == token_hash(token),
                                               AccountToken.purpose == purpose))
    if row is None or row.used_at is not None or row.expires_at <= now:
        return None
    user = db.get(User, row.user_id)
    return Link(row, user) if user is not None and user.active else None


def redeem(db: Session, token: str, purpose: str, password: str, now: datetime) -> User:
    """Set the password through a live link, once. Raises AccountError (policy) or LookupError (dead link)."""
    link = find(db, token, purpose, now)
    if link is None:
        raise LookupError(token)
    accounts.set_password(db, link.user, password, now, actor=f"user:{link.user.email}")   # ends every session
    used = db.execute(update(AccountToken).where(AccountToken.id == link.token.id, AccountToken.used_at.is_(None))
                      .values(used_at=now)).rowcount
    if not used:                                         # the same link used at the same moment in another tab
        raise LookupError(token)

    record(db, actor=f"user:{link.user.email}", action="user.invitation_accepted" if purpose == "invite"
           else "user.password_reset", entity="app_user", entity_id=link.user.id, at=now)
    db.flush()
    return link.user


# The worker's side ---------------------------------------------------------------------------------------------

def claim(db: Session, worker: str, now: datetime, limit: int = 20) -> list[int]:
    """Take due mails for this worker (proapp/outbox); first give up the claims a stopped worker left (unknown:
    they may have gone, never resent)."""
    db.execute(update(AccountMail).where(outbox.abandoned(AccountMail, now, CLAIM_LEASE))
               .values(status=outbox.Status.UNKNOWN,
                       error="the worker stopped while sending: it may have gone; not resent"))
    return outbox.claim(db, AccountMail, worker, now, limit, attempts=AccountMail.attempts + 1)


def prepare(db: Session, mail_id: int, now: datetime, public_url: str) -> Mail | None:
    """Make the link (revoking the earlier unused ones of its kind) and the mail, in the account's language."""
    row = db.get(AccountMail, mail_id)
    user = db.get(User, row.user_id) if row is not None else None
    if row is None or user is None or not user.active:
        if row is not None:
            row.status, row.error = "failed", "the account was disabled"
        return None
    db.execute(update(AccountToken).where(AccountToken.user_id == user.id, AccountToken.purpose == row.purpose,
                                          AccountToken.used_at.is_(None)).values(used_at=now))
    token = secrets.token_urlsafe(32)
    link = AccountToken(user_id=user.id, purpose=row.purpose, token_hash=token_hash(token), created_at=now,
                        expires_at=now + VALID_FOR[row.purpose])
    db.add(link)
    db.flush()
    row.token_id = link.id
    path = "welcome" if row.purpose == "invite" else "reset"
    subject, body = texts(row.purpose, user.language, f"{public_url}/staff/{path}/{token}", user.email)
    return Mail(user.email, subject, body, f"<account-{row.id}.{row.attempts}@proapp>")


def apply_outcome(db: Session, mail_id: int, worker: str, outcome: outbox.Outcome, now: datetime,
                  max_attempts: int) -> str:
    row = db.scalar(select(AccountMail).where(AccountMail.id == mail_id, AccountMail.claimed_by == worker,
                                              AccountMail.status == "sending").with_for_update())
    if row is None:
        return "released"          # the claim is no longer this worker's
    kind, values = outbox.settled(outcome, row.attempts, max_attempts, now, RETRY_BASE)
    values.update(error=outcome.error, sent_at=now if kind == "sent" else None)
    if kind == "retry" and row.token_id is not None:        # that link never reached anyone
        db.execute(update(AccountToken).where(AccountToken.id == row.token_id).values(used_at=now))
    db.execute(update(AccountMail).where(AccountMail.id == row.id).values(**values))

    if kind != "retry":
        record(db, actor="system:mail", action=f"user.{row.purpose}_mail_{kind}", entity="app_user",
               entity_id=row.user_id, new={"attempts": row.attempts}, at=now)
    return kind


def texts(purpose: str, language: str, link: str, email: str) -> tuple[str, str]:
    with force_locale(language if language in ("fr", "en") else "fr"):
        if purpose == "invite":
            subject = gettext("proapp: your study team account")
            lines = [gettext("An account was opened for you (%(email)s) on proapp, the study team's pages of the "
                             "patient questionnaires.", email=email), "",
                     gettext("Choose your password with this link. It works once, for 72 hours:"), link, "",
                     gettext("If you did not expect this invitation, ignore this e-mail.")]
        else:
            subject = gettext("proapp: choose a new password")
            lines = [gettext("Someone asked to reset the password of your proapp account (%(email)s).",
                             email=email), "",
                     gettext("Choose a new password with this link. It works once, for one hour:"), link, "",
                     gettext("If you did not ask for it, ignore this e-mail: your password has not changed.")]
    return subject, "\n".join(lines)
