"""The app's clock. Every service takes ``now`` from its caller; routes, commands and jobs ask the clock of the
current app (``proapp.runtime.now``). It reads the system's UTC time, unless it was set: tests set it to
travel in time, and ``proapp tick --now`` sets it outside production."""

from __future__ import annotations

from datetime import UTC, datetime


class Clock:
    def __init__(self, fixed: datetime | None = None) -> None:
        self._fixed: datetime | None = None
        if fixed is not None:
            self.set(fixed)

    def now(self) -> datetime:
        return self._fixed if self._fixed is not None else datetime.now(UTC)

    def set(self, when: datetime | None) -> None:
        """Stop the clock at ``when`` (an aware datetime), or let it run again (None)."""
        if when is not None and (when.tzinfo is None or when.utcoffset() is None):
            raise ValueError(f"naive datetime {when!r}: the clock keeps aware UTC times")
        self._fixed = None if when is None else when.astimezone(UTC)
