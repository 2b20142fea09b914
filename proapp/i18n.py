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
