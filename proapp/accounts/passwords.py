"""What a staff password must be (NIST SP 800-63B): at least 12 characters, up to 1,024, not one of the common
passwords of zxcvbn's list, not easy to guess (zxcvbn's score 3 of 4 at least: no repeated or keyboard patterns,
no dictionary word alone), and not the account's own e-mail."""

from __future__ import annotations

from functools import lru_cache

from flask_babel import lazy_gettext as _l

MIN_LENGTH = 12
MAX_LENGTH = 1024
MIN_SCORE = 3
SCORED_PREFIX = 64          # zxcvbn's time grows with the length; a longer password is judged on its start


@lru_cache(maxsize=1)
def _common() -> frozenset[str]:
    from zxcvbn.frequency_lists import FREQUENCY_LISTS

    return frozenset(FREQUENCY_LISTS["passwords"])


def problem(password: str, email: str = "") -> str | None:
    """Why ``password`` is refused (a sentence for the form, in the user's language), or None."""
    if len(password) < MIN_LENGTH:
        return str(_l("Use at least %(n)s characters: a phrase of several words is easy to remember.", n=MIN_LENGTH))
    if len(password) > MAX_LENGTH:
        return str(_l("Use at most %(n)s characters.", n=MAX_LENGTH))
    lowered = password.lower()
    local = email.split("@")[0].lower()
    if lowered in _common() or (len(local) >= 4 and local in lowered):
        return str(_l("This password is too common or too close to your e-mail: choose another one."))
    from zxcvbn import zxcvbn

    if zxcvbn(password[:SCORED_PREFIX], user_inputs=[email, local, "proapp"])["score"] < MIN_SCORE:
        return str(_l("This password is too easy to guess (repeated letters, a keyboard row, a single word...): "
                      "add unrelated words."))
    return None
