"""Electronic signatures on changes to clinical data (21 CFR 11.50, 11.200; EMA guideline on computerised
systems): the signer types their password again (and a code of their authenticator app when they use one), and
sees what the signature means. Wrong ones count towards the account's lockout like wrong sign-ins."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flask_babel import lazy_gettext as _l
from sqlalchemy.orm import Session

from proapp.accounts import staff as accounts
from proapp.accounts import two_factor
from proapp.accounts.models import User
from proapp.refusals import Refused

# What each signature means: stored in English (the record), shown in the signer's language.
MEANINGS = {
    "correction": ("I am correcting this answer for the reason given.",
                   _l("I am correcting this answer for the reason given.")),
    "closure": ("I am closing this study: its data is archived, then its patients' phone numbers are erased and its "
                "live data removed or kept as the study file says.",
                _l("I am closing this study: its data is archived, then its patients' phone numbers are erased and its "
                   "live data removed or kept as the study file says.")),
    "withdrawal": ("I am withdrawing this patient from the study's follow-up for the reason given.",
                   _l("I am withdrawing this patient from the study's follow-up for the reason given.")),
    "reschedule": ("I am moving this patient's anchor date, and the visits not yet completed, for the reason given.",
                   _l("I am moving this patient's anchor date, and the visits not yet completed, for the reason "
                      "given.")),
}


class SignatureRefused(Refused):
    """The signature was not given; ``message`` says why."""


@dataclass(frozen=True)
class Signature:
    signer: str
    at: datetime
    meaning: str
    method: str                 # password, password+totp, password+recovery

    def record(self) -> dict[str, Any]:
        return {"signer": self.signer, "at": self.at.isoformat(), "meaning": self.meaning, "method": self.method}


def sign(db: Session, user_id: int, kind: str, *, password: str, code: str, vault: Any, now: datetime,
         max_failures: int, lock_for: timedelta) -> Signature:
    """The signature of ``user_id`` for a change of ``kind``, or SignatureRefused (wrong password or code, locked
    account). A refusal is counted; the caller commits it."""
    user = db.get(User, user_id)
    if user is None or not user.active or (user.locked_until is not None and now < user.locked_until):
        raise SignatureRefused(_l("This account is locked for now: the change is not signed."))
    if not accounts.check_current_password(user, password):
        accounts.count_failure(db, user, now, max_failures=max_failures, lock_for=lock_for)
        raise SignatureRefused(_l("The password does not match: the change is not signed, nothing is changed."))
    method = "password"
    if user.totp_enabled_at is not None:
        used = two_factor.check(db, user, code, vault=vault, now=now)
        if not used:
            accounts.count_failure(db, user, now, max_failures=max_failures, lock_for=lock_for)
            raise SignatureRefused(_l("The code does not match: the change is not signed, nothing is changed."))
        method = f"password+{used}"
    user.failed_logins = 0
    return Signature(user.email, now, MEANINGS[kind][0], method)
