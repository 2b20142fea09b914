"""When an SMS may go: the patient's preferred local hour, never in quiet hours, in the patient's own zone.

All instants are aware UTC datetimes; local days and hours are computed in the patient's IANA zone, so the
DST changes, Guadeloupe and Réunion need no special case.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo


@dataclass(frozen=True)
class QuietHours:
    start: int = 21     # no SMS from this local hour...
    end: int = 8        # ...until this one

    def contains(self, hour: int) -> bool:
        if self.start > self.end:
            return hour >= self.start or hour < self.end
        return self.start <= hour < self.end


def local_instant(day: date, hour: int, tz: str) -> datetime:
    """The UTC instant of ``hour``:00 local time on ``day``."""
    return datetime.combine(day, time(hour), tzinfo=ZoneInfo(tz)).astimezone(UTC)


def local_day(instant: datetime, tz: str) -> date:
    return instant.astimezone(ZoneInfo(tz)).date()


def allowed_at(candidate: datetime, tz: str, preferred_hour: int, quiet: QuietHours) -> datetime:
    """``candidate`` if it falls outside the quiet hours, else the next preferred local hour after it."""
    local = candidate.astimezone(ZoneInfo(tz))
    if not quiet.contains(local.hour):
        return candidate
    hour = quiet.end if quiet.contains(preferred_hour) else preferred_hour
    result = local_instant(local.date(), hour, tz)
    if result <= candidate:
        result = local_instant(local.date() + timedelta(days=1), hour, tz)
    return result


def invitation_due(opens_on: date, tz: str, preferred_hour: int, now: datetime, quiet: QuietHours) -> datetime:
    """The preferred hour on the window's first day, or at once if that has passed (late enrolment), never in
    quiet hours."""
    return allowed_at(max(local_instant(opens_on, preferred_hour, tz), now), tz, preferred_hour, quiet)


def reminder_days(invited_on: date, closes_on: date, rules: list[tuple[int | None, bool]]) -> list[tuple[int, date]]:
    """(rule number from 1, local day) of each reminder after an invitation sent on ``invited_on``.

    ``rules`` are (days after the invitation, on the last day); a reminder on or before the invitation's day,
    after the window's last day, or on a day already taken by an earlier rule is dropped.
    """
    out: list[tuple[int, date]] = []
    taken = {invited_on}
    for number, (after_days, last_day) in enumerate(rules, start=1):
        day = closes_on if last_day else invited_on + timedelta(days=after_days or 0)
        if day <= invited_on or day > closes_on or day in taken:
            continue
        taken.add(day)
        out.append((number, day))
    return out
