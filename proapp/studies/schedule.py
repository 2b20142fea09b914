"""A patient's schedule: each visit's window on local calendar days, as exact UTC instants.

A window opens at local midnight of its first day and closes at local midnight after its last day,
in the patient's time zone, so daylight-saving changes and overseas zones fall out of ``zoneinfo``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from proapp.studies.schema import StudyDef


@dataclass(frozen=True)
class PlannedOccurrence:
    visit_code: str
    day: int
    instruments: tuple[str, ...]
    due_on: date            # the visit's target day (anchor + day)
    opens_on: date
    closes_on: date
    opens_at: datetime
    closes_at: datetime


def local_midnight_utc(day: date, tz: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)


def compute_schedule(study: StudyDef, anchor: date, timezone: str) -> list[PlannedOccurrence]:
    tz = ZoneInfo(timezone)
    planned = []
    for visit in study.all_visits():
        due = anchor + timedelta(days=visit.day)
        opens_on = due - timedelta(days=visit.window.before)
        closes_on = due + timedelta(days=visit.window.after)
        planned.append(PlannedOccurrence(
            visit_code=visit.code,
            day=visit.day,
            instruments=tuple(visit.instruments),
            due_on=due,
            opens_on=opens_on,
            closes_on=closes_on,
            opens_at=local_midnight_utc(opens_on, tz),
            closes_at=local_midnight_utc(closes_on + timedelta(days=1), tz),
        ))
    return planned
