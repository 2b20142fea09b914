"""Small helpers shared by the tests' fixtures."""

from __future__ import annotations

from datetime import date, datetime, timedelta


def agreed(now: datetime) -> date:
    """A day on which the patient agreed to SMS and to answering online: the day before ``now`` (UTC), never after
    the patient's today, whatever their time zone."""
    return (now - timedelta(days=1)).date()
