"""What the current app knows, for routes, commands and jobs: the loaded definitions and the clock."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from flask import current_app

if TYPE_CHECKING:           # the features import this module: it imports none of them
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
    """The current UTC time by the app's clock (proapp/clock.py)."""
    return current_app.extensions["proapp.clock"].now()
