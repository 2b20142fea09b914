"""What the current app knows, for routes, commands and jobs: the loaded definitions and the clock."""

from __future__ import annotations

from datetime import datetime

from flask import current_app

from proapp.db import utcnow
from proapp.instruments import Registry
from proapp.patients.phones import PhoneVault
from proapp.studies.catalog import StudyCatalog


def instruments() -> Registry:
    return current_app.extensions["proapp.instruments"]


def studies() -> StudyCatalog:
    return current_app.extensions["proapp.studies"]


def phone_vault() -> PhoneVault:
    return current_app.extensions["proapp.phones"]


def now() -> datetime:
    """The current UTC time, or the aware datetime in the app's ``NOW`` setting (a fixed clock for tests)."""
    fixed = current_app.config.get("NOW")
    if fixed is not None:
        return fixed
    return utcnow()
