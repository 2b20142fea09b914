"""Two-factor sign-in: TOTP (RFC 6238, ``pyotp``) with ten one-time recovery codes.

The secret is kept encrypted with the app's data keys (``PROAPP_PHONE_KEYS``, outside the database); a code is
accepted once (the last time step used is kept), within one step of the clock either way; a recovery code is kept
as its SHA-256 and works once. Wrong codes count with wrong passwords towards the account's lockout. The QR code
is drawn on the server as SVG (``segno``): no JavaScript, no outside service.
"""

from __future__ import annotations

import hmac
import secrets
import unicodedata
from datetime import datetime
from typing import Any

import pyotp
from sqlalchemy import JSON, Text, cast, literal, or_, update
from sqlalchemy.orm import Session

from proapp.accounts.models import User
from proapp.audit.trail import record
from proapp.tokens import token_hash

ISSUER = "proapp"
RECOVERY_CODES = 10
STEP_SECONDS = 30


def new_secret() -> str:
    return pyotp.random_base32()


def provisioning_uri(secret: str, email: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=email, issuer_name=ISSUER)


def qr_svg(uri: str, title: str) -> str:
    """The otpauth:// URI as an inline SVG QR code."""
    import segno

    return segno.make(uri, error="m").svg_inline(scale=4, title=title, border=2)


def _matching_step(secret: str, code: str, now: datetime) -> int | None:
    """The time step (one either side of now) whose code is ``code``, or None."""
    totp = pyotp.TOTP(secret)
    step = int(now.timestamp()) // STEP_SECONDS
    for candidate in (step, step - 1, step + 1):
        if hmac.compare_digest(totp.at(candidate * STEP_SECONDS), code):
            return candidate
    return None



def _normalise(code: str) -> str:
    """The code's ASCII letters and digits, lower case. Full-width digits (`１２３４５６`, typed on a phone in some
    keyboards) become ASCII ones (NFKC); any other character is dropped, so a comparison never sees non-ASCII."""
    code = unicodedata.normalize("NFKC", (code or "")[:64])
    return "".join(ch for ch in code if ch.isascii() and ch.isalnum()).lower()[:32]


def recovery_codes() -> list[str]:
    """Ten codes of 10 letters and digits, shown once (xxxxx-xxxxx)."""
    alphabet = "abcdefghjkmnpqrstuvwxyz23456789"
    return [f"{c[:5]}-{c[5:]}" for c in ("".join(secrets.choice(alphabet) for _ in range(10))
                                        for _ in range(RECOVERY_CODES))]


def enable(db: Session, user: User, secret: str, code: str, *, vault: Any, now: datetime, actor: str) -> list[str]:
    """Turn two-factor sign-in on once the user typed a code of the new secret; returns the recovery codes."""
    step = _matching_step(secret, _normalise(code), now)
    if step is None:
        raise ValueError("code")
    codes = recovery_codes()
    user.totp_secret_ciphertext = vault.encrypt(secret)
    user.totp_enabled_at, user.totp_last_step = now, step
    user.recovery_codes = [token_hash(_normalise(c)) for c in codes]

    record(db, actor=actor, action="user.two_factor_enabled", entity="app_user", entity_id=user.id, at=now)
    db.flush()
    return codes


def check(db: Session, user: User, code: str, *, vault: Any, now: datetime) -> str | None:
    """"totp" or "recovery" when ``code`` is a good one for this user (and uses it up); "used" for the app's
    code of a time step already used (the one typed to turn two-factor sign-in on, a moment ago: the next one
    works); else None."""
    if user.totp_secret_ciphertext is None:
        return None
    code = _normalise(code)
    if code.isdigit() and len(code) == 6:
        step = _matching_step(vault.decrypt(user.totp_secret_ciphertext), code, now)
        if step is None:
            return None
        moved = db.execute(update(User).where(User.id == user.id, or_(User.totp_last_step.is_(None),
                                                                       User.totp_last_step < step))
                           .values(totp_last_step=step)).rowcount
        return "totp" if moved else "used"      # a code already used (replayed) is refused
    hashed = token_hash(code)
    db.refresh(user, ["recovery_codes"])
    before = list(user.recovery_codes or [])
    if hashed not in before:
        return None
    remaining = [h for h in before if h != hashed]
    # One conditional UPDATE, as for a TOTP step: it only changes the list this request read, so the same code
    # typed in two sign-ins at the same instant works for one of them.
    used = db.execute(update(User).where(User.id == user.id,
                                         cast(User.recovery_codes, Text) == cast(literal(before, JSON), Text))
                      .values(recovery_codes=remaining)).rowcount
    if not used:
        return None

    record(db, actor=f"user:{user.email}", action="user.recovery_code_used", entity="app_user", entity_id=user.id,
           new={"left": len(remaining)}, at=now)
    db.flush()
    return "recovery"


def reset(db: Session, user: User, *, now: datetime, actor: str, reason: str) -> None:
    """An admin's re-enrolment: the secret and the codes go; the user sets it up again at the next sign-in."""
    user.totp_secret_ciphertext, user.totp_enabled_at, user.totp_last_step, user.recovery_codes = None, None, None, None

    record(db, actor=actor, action="user.two_factor_reset", entity="app_user", entity_id=user.id, reason=reason,
           at=now)
    db.flush()


def required(user_role: str, roles_setting: str) -> bool:
    return user_role in {r.strip() for r in roles_setting.split(",") if r.strip()}
