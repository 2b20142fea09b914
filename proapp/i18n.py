"""Locale selection: a feature's explicit choice (the patient's or user's language) > the FR|EN switch
remembered in the session > the browser's Accept-Language > the configured default (French)."""

from __future__ import annotations

from flask import current_app, g, has_request_context, request, session

from proapp.config import SUPPORTED_LANGUAGES


def select_locale() -> str:
    chosen = g.get("locale")
    if chosen in SUPPORTED_LANGUAGES:
        return chosen
    if has_request_context():
        switched = session.get("lang")
        if switched in SUPPORTED_LANGUAGES:
            return switched
        best = request.accept_languages.best_match(SUPPORTED_LANGUAGES)
        if best:
            return best
    return current_app.config["DEFAULT_LANGUAGE"]


def use_locale(language: str) -> None:
    """Make ``language`` the locale for the rest of this request (e.g. the patient's language)."""
    if language in SUPPORTED_LANGUAGES:
        g.locale = language
        from flask_babel import refresh

        refresh()


def ensure_compiled(translations_dir: str) -> None:
    """Compile each messages.po whose .mo is missing or older, so a checkout never serves stale text.

    Written to a temporary file then renamed: several processes starting at once cannot see half a file.
    """
    import os
    import tempfile
    from pathlib import Path

    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    for po in Path(translations_dir).glob("*/LC_MESSAGES/messages.po"):
        mo = po.with_suffix(".mo")
        if mo.exists() and mo.stat().st_mtime >= po.stat().st_mtime:
            continue
        with po.open("rb") as fh:
            catalog = read_po(fh)
        fd, tmp = tempfile.mkstemp(dir=po.parent, suffix=".mo.tmp")
        with os.fdopen(fd, "wb") as out:
            write_mo(out, catalog)
        os.replace(tmp, mo)
