"""Locale selection: a feature's explicit choice (the patient's or signed-in user's language) > the FR|EN switch
remembered in the session > the language last chosen on this browser (its cookie: the sign-in page before and after
a session) > the browser's Accept-Language > the configured default (French)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from zoneinfo import ZoneInfo

from babel.dates import format_date
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_decimal
from flask import current_app, g, has_request_context, request, session
from flask_babel import get_locale

from proapp.config import SUPPORTED_LANGUAGES


def select_locale() -> str:
    chosen = g.get("locale")
    if chosen in SUPPORTED_LANGUAGES:
        return chosen
    if has_request_context():
        switched = session.get("lang")
        if switched in SUPPORTED_LANGUAGES:
            return switched
        remembered = request.cookies.get(lang_cookie())
        if remembered in SUPPORTED_LANGUAGES:
            return remembered
        best = request.accept_languages.best_match(SUPPORTED_LANGUAGES)
        if best:
            return best
    return current_app.config["DEFAULT_LANGUAGE"]


LANG_COOKIE_MAX_AGE = 365 * 24 * 3600


def lang_cookie() -> str:
    """The language cookie's name: ``__Host-lang`` over HTTPS (bound to this host, never sent in clear)."""
    return "__Host-lang" if current_app.config.get("SESSION_COOKIE_SECURE") else "lang"


def use_locale(language: str) -> None:
    """Make ``language`` the locale for the rest of this request (e.g. the patient's language)."""
    if language in SUPPORTED_LANGUAGES:
        g.locale = language
        from flask_babel import refresh

        refresh()


def stale_catalogues(translations_dir: str) -> list[Path]:
    """The messages.po files whose compiled .mo is missing or older."""
    out = []
    for po in sorted(Path(translations_dir).glob("*/LC_MESSAGES/messages.po")):
        mo = po.with_suffix(".mo")
        if not mo.exists() or mo.stat().st_mtime < po.stat().st_mtime:
            out.append(po)
    return out


def compile_catalogues(translations_dir: str) -> int:
    """Compile each stale messages.po (at install: ``.ci/setup``; in development: at start-up, so a checkout
    never serves stale text). Never at start-up in production, where the code's tree is read-only (systemd's
    ``ProtectSystem=strict``). Written to a temporary file then renamed: several processes starting at once cannot
    see half a file."""
    stale = stale_catalogues(translations_dir)
    for po in stale:
        with po.open("rb") as fh:
            catalog = read_po(fh)
        fd, tmp = tempfile.mkstemp(dir=po.parent, suffix=".mo.tmp")
        with os.fdopen(fd, "wb") as out:
            write_mo(out, catalog)
        # mkstemp makes the file its owner's alone; the compiled catalogue is read by the service's own user
        # (compiled at install as root, read by proapp under systemd).
        os.chmod(tmp, 0o644)
        os.replace(tmp, po.with_suffix(".mo"))
    return len(stale)


def _formatting_locale() -> str:
    """English dates the European way (en_GB: 3 Dec 2026, never the US 12/3/26); French as it is."""
    return "en_GB" if str(get_locale() or "fr") == "en" else "fr"


def day(value, style: str = "short") -> str:
    """A calendar day in the user's language: 03/12/2026 in French, 3 Dec 2026 in English; ``long``: 3 décembre
    2026, 3 December 2026."""
    if value is None:
        return "–"
    loc = _formatting_locale()
    pattern = "long" if style == "long" else "dd/MM/yyyy" if loc == "fr" else "d MMM yyyy"
    return format_date(value, pattern, locale=loc)


def moment(value, timezone: str) -> str:
    """An instant as a local time that names its zone: 03/12/2026 15:05 CET, 3 Dec 2026 15:05 CET."""
    if value is None:
        return "–"
    local = value.astimezone(ZoneInfo(timezone))
    return f"{day(local.date())} {local:%H:%M} {local.tzname()}"


def number(value) -> str:
    """A number in the user's language: 1.125 in English, 1,125 in French (at most three decimals); text as is."""
    if value is None:
        return "–"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    return format_decimal(round(value, 3), "0.###", locale=_formatting_locale())


def init_app(app) -> None:
    """The date and number filters every template uses."""
    app.add_template_filter(day, "day")
    app.add_template_filter(number, "number")


if __name__ == "__main__":          # python -m proapp.i18n: compile the catalogues (at install, by .ci/setup)
    import sys

    root = Path(__file__).resolve().parent.parent / "translations"
    print(f"{compile_catalogues(str(root))} catalogue(s) compiled in {root}", file=sys.stderr)
