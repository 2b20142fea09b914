"""The ulcer registry's rules, as pure functions: which ulcer a report names, and each ulcer's course.

Every ulcer a patient reports (or their study team notes) gets a number, its identity for the rest of the study.
The weekly diary then asks about each ulcer still open, by its hand, finger and place, until the patient says the
skin is fully closed. A new report at the place of a known ulcer does not make a new ulcer:

- at the place of an ulcer still open: the same ulcer, reported again (not counted as new);
- at the place of a healed ulcer (healed before, or reported closed in the same entry): that ulcer open again, a
  recurrence (counted apart from the new ones);
- anywhere else: a new ulcer, numbered after the patient's last one; two new reports at one place in the same
  entry are two ulcers (the patient reported both: never merged into one, never lost).

Source: the ADUSE protocol (NCT04356755): new digital ulcers are those appearing where no ulcer was known;
time to healing counts days from the injection (day 0) to the day the skin is fully closed; the project's clinical
review (2026) for the recurrence and reported-again rules. The app never judges healing: investigators assess the
ulcers at the visits.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date

Place = tuple[str, str, str]                     # (hand L/R, finger 1-5, place on the finger)
NEW, RECURRENCE, AGAIN = "new", "recurrence", "reported_again"
CALCINOSIS = "CALC"                              # the place "over a calcinosis": not a new digital ulcer


@dataclass(frozen=True)
class KnownUlcer:
    """An ulcer of the registry as an entry opens: where it is, whether it was treated, and whether it is healed."""

    number: int
    hand: str
    finger: str
    site: str
    treated: bool = False
    healed: bool = False
    last_open_on: date | None = None      # the last day it was reported (or noted) open: a healing is not before
    staff_noted: bool = False
    onset: date | None = None             # the day it appeared (the patient's onset, or the day it was noted)

    @property
    def place(self) -> Place:
        return (self.hand, self.finger, self.site)


@dataclass(frozen=True)
class UlcerContext:
    """What an entry needs to know of the patient's ulcers: the registry before it, the injection day, and the
    reports' classification when it was made already (a correction keeps the identities given at completion)."""

    known: tuple[KnownUlcer, ...] = ()
    unconfirmed: tuple[int, ...] = ()       # staff-noted ulcers the patient has not confirmed yet
    anchor: date | None = None
    fixed: Mapping[int, tuple[str, int]] = field(default_factory=dict)   # report repeat -> (kind, ulcer number)
    last_number: int = 0                    # the highest number ever given (an ulcer left out keeps its number)

    @property
    def followed(self) -> tuple[KnownUlcer, ...]:
        """The ulcers still open, in number order: the diary asks about each of them."""
        return tuple(sorted((u for u in self.known if not u.healed and u.number not in self.unconfirmed),
                            key=lambda u: u.number))

    @property
    def next_number(self) -> int:
        return max(self.last_number, *(u.number for u in self.known), 0) + 1

    def ulcer(self, number: int) -> KnownUlcer | None:
        return next((u for u in self.known if u.number == number), None)


def classify(context: UlcerContext, reports: Mapping[int, Place], closed_now: Iterable[int] = ()) -> dict[
        int, tuple[str, int]]:
    """Each report (repeat index -> place) as (kind, ulcer number), in repeat order."""
    closed = set(closed_now)
    open_at: dict[Place, int] = {}
    healed_at: dict[Place, int] = {}
    for u in sorted(context.known, key=lambda u: u.number):
        target = healed_at if u.healed or u.number in closed else open_at
        target.setdefault(u.place, u.number)
    number = context.next_number
    out: dict[int, tuple[str, int]] = {}
    fresh: set[int] = set()             # numbers given in this entry: two reports at one place are two ulcers
    for k in sorted(reports):
        if k in context.fixed:
            kind, n = context.fixed[k]
            out[k] = (kind, n)
            number = max(number, n + 1)
            open_at.setdefault(reports[k], n)
            healed_at.pop(reports[k], None)
            continue
        place = reports[k]
        if place in open_at and open_at[place] not in fresh:
            out[k] = (AGAIN, open_at[place])
        elif place in healed_at:
            n = healed_at.pop(place)
            out[k] = (RECURRENCE, n)
            open_at[place] = n
        else:
            out[k] = (NEW, number)
            open_at[place] = number
            fresh.add(number)
            number += 1
    return out


def places(groups: Mapping[int, Mapping[str, str]]) -> dict[int, Place]:
    """The complete reports of an ulcer group (hand, finger and place all answered)."""
    return {k: (u["DU_HAND"], u["DU_FINGER"], u["DU_SITE"]) for k, u in groups.items()
            if {"DU_HAND", "DU_FINGER", "DU_SITE"} <= set(u)}


def days_from(anchor: date | None, day: str | None) -> int | None:
    if anchor is None or day is None:
        return None
    return (date.fromisoformat(day) - anchor).days


def healing_start(anchor: date | None, onset: date | None) -> date | None:
    """Where days to healing count from: the injection for an ulcer there before it (the treated ones), the ulcer's
    onset for one that appeared after the injection."""
    if anchor is None:
        return None
    return onset if onset is not None and onset > anchor else anchor


def days_to_healing(context: UlcerContext, number: int, closed_on: str | None) -> int | None:
    u = context.ulcer(number)
    return days_from(healing_start(context.anchor, u.onset if u else None), closed_on)


# The course of each ulcer over the entries -----------------------------------------------------------------------

@dataclass(frozen=True)
class Noted:
    """An ulcer's identity as stored: its number, place, whether it was treated, who first noted it and when."""

    number: int
    hand: str
    finger: str
    site: str
    treated: bool
    staff_noted: bool
    noted_on: date
    visit: str | None = None               # the entry that first reported it (None: noted by the study team)
    onset: date | None = None              # the day the patient says it appeared (a diary's report)

    @property
    def place(self) -> Place:
        return (self.hand, self.finger, self.site)

    @property
    def appeared(self) -> date | None:
        """The day it appeared, as far as known: the team's note, or the onset the patient gave in a diary (None
        for one of the baseline inventory, there before the injection)."""
        return self.noted_on if self.staff_noted else self.onset


@dataclass(frozen=True)
class Entry:
    """A completed entry (baseline or diary) as the registry reads it: the answers by group and repeat, and the
    classification of its reports (as stored with its scores)."""

    visit: str
    on: date                                  # the local day the patient completed it
    groups: Mapping[str, Mapping[int, Mapping[str, str]]]
    reports: Mapping[int, tuple[str, int]]


@dataclass(frozen=True)
class Course:
    """Where an ulcer stands after the entries so far."""

    ulcer: Noted
    healed: bool = False
    healed_on: date | None = None
    first_healed_on: date | None = None
    reopened: int = 0
    last_open_on: date | None = None
    confirmed: bool | None = None            # a staff-noted ulcer: the patient's answer (None: not asked yet)
    reported_again: int = 0
    history: tuple[tuple[str, str], ...] = ()     # (visit, what happened) in order
    disputed: tuple[str, date] | None = None     # the patient's "not right": (visit, the day they answered)
    resolution: str | None = None            # how the team resolved the dispute: confirmed, relocated or closed
    closed_on: date | None = None            # closed by the team: no longer followed (not a healing)

    def days_to_healing(self, anchor: date | None) -> int | None:
        start = healing_start(anchor, self.ulcer.appeared)
        return None if start is None or self.healed_on is None else (self.healed_on - start).days

    def known(self) -> KnownUlcer:
        u = self.ulcer
        return KnownUlcer(u.number, u.hand, u.finger, u.site, u.treated, self.healed, self.last_open_on,
                          u.staff_noted, u.appeared)


def courses(noted: Iterable[Noted], entries: Iterable[Entry]) -> list[Course]:
    """Fold the entries, in the order they were completed, over the registry's ulcers."""
    by_number = {u.number: Course(u, last_open_on=u.noted_on) for u in noted}
    for e in entries:
        for n, a in (e.groups.get("DU_CONFIRM") or {}).items():
            if n in by_number and a.get("DU_CONFIRM_OK") in ("Y", "N"):
                c = by_number[n]
                by_number[n] = replace(c, confirmed=a["DU_CONFIRM_OK"] == "Y",
                                       history=(*c.history, (e.visit, "confirmed" if a["DU_CONFIRM_OK"] == "Y"
                                                             else "not_confirmed")),
                                       disputed=None if a["DU_CONFIRM_OK"] == "Y" else (e.visit, e.on))
        for n, a in (e.groups.get("DU_KNOWN") or {}).items():
            c = by_number.get(n)
            if c is None:
                continue
            if a.get("DU_KNOWN_CLOSED") == "Y" and a.get("DU_KNOWN_CLOSED_ON"):
                day = date.fromisoformat(a["DU_KNOWN_CLOSED_ON"])
                by_number[n] = replace(c, healed=True, healed_on=day, first_healed_on=c.first_healed_on or day,
                                       history=(*c.history, (e.visit, "healed")))
            elif a.get("DU_KNOWN_CLOSED") == "N":
                by_number[n] = replace(c, last_open_on=e.on, history=(*c.history, (e.visit, "open")))
        for _k, (kind, n) in sorted(e.reports.items()):
            c = by_number.get(n)
            if c is None:
                continue
            if kind == RECURRENCE:
                by_number[n] = replace(c, healed=False, healed_on=None, reopened=c.reopened + 1, last_open_on=e.on,
                                       history=(*c.history, (e.visit, RECURRENCE)))
            elif kind == AGAIN:
                by_number[n] = replace(c, reported_again=c.reported_again + 1, last_open_on=e.on,
                                       history=(*c.history, (e.visit, AGAIN)))
            elif c.ulcer.visit == e.visit:
                by_number[n] = replace(c, last_open_on=e.on, history=(*c.history, (e.visit, NEW)))
    return [by_number[n] for n in sorted(by_number)]


@dataclass(frozen=True)
class Decision:
    """The study team's decision on an ulcer: the patient's dispute resolved (``confirmed``: the team's note is
    right; ``relocated``: the place corrected; ``closed``), or the ulcer closed (``closed``, on ``closed_on``)."""

    number: int
    action: str                            # confirmed, relocated, closed
    place: Place | None = None             # relocated: the corrected place
    closed_on: date | None = None          # closed: the day


CONFIRMED, RELOCATED, CLOSED = "confirmed", "relocated", "closed"


def decided(course_list: Iterable[Course], decisions: Iterable[Decision]) -> list[Course]:
    """The courses after the team's decisions, in the order they were taken. A patient's "not right" keeps the
    ulcer followed (``disputed``) until the team resolves it; a closed ulcer is followed no more, and its closing
    is not a healing (the days to healing stay the patient's)."""
    by_number = {c.ulcer.number: c for c in course_list}
    for d in decisions:
        c = by_number.get(d.number)
        if c is None:
            continue
        resolution = c.resolution if c.disputed is None or c.resolution else d.action
        if d.action == RELOCATED and d.place is not None:
            c = replace(c, ulcer=replace(c.ulcer, hand=d.place[0], finger=d.place[1], site=d.place[2]))
        if d.action == CLOSED:
            c = replace(c, closed_on=d.closed_on)
        by_number[d.number] = replace(c, resolution=resolution)
    return [by_number[n] for n in sorted(by_number)]


def context_of(course_list: Iterable[Course], anchor: date | None) -> UlcerContext:
    """The context the next entry opens with: every ulcer but those the team closed (one the patient said is not
    right stays followed: the team resolves the dispute)."""
    cs = list(course_list)
    return UlcerContext(known=tuple(c.known() for c in cs if c.closed_on is None),
                        unconfirmed=tuple(c.ulcer.number for c in cs if c.ulcer.staff_noted and c.confirmed is None
                                          and c.closed_on is None),
                        anchor=anchor, last_number=max((c.ulcer.number for c in cs), default=0))


# The context a response was given, kept with it (a correction scores the answers again with it) ---------------

def context_to_json(context: UlcerContext) -> dict[str, object]:
    return {"anchor": context.anchor.isoformat() if context.anchor else None,
            "unconfirmed": list(context.unconfirmed), "last_number": context.last_number,
            "known": [{"number": u.number, "hand": u.hand, "finger": u.finger, "site": u.site, "treated": u.treated,
                       "healed": u.healed, "staff_noted": u.staff_noted,
                       "last_open_on": u.last_open_on.isoformat() if u.last_open_on else None,
                       "onset": u.onset.isoformat() if u.onset else None}
                      for u in context.known]}


def context_from_json(data: Mapping[str, object] | None, fixed: Mapping[int, tuple[str, int]] | None = None
                      ) -> UlcerContext:
    data = data or {}
    known = tuple(KnownUlcer(int(u["number"]), u["hand"], u["finger"], u["site"], bool(u["treated"]),
                             bool(u["healed"]), date.fromisoformat(u["last_open_on"]) if u.get("last_open_on")
                             else None, bool(u.get("staff_noted")),
                             date.fromisoformat(u["onset"]) if u.get("onset") else None)
                  for u in data.get("known") or [])  # type: ignore[union-attr]
    anchor = data.get("anchor")
    return UlcerContext(known=known, unconfirmed=tuple(int(n) for n in data.get("unconfirmed") or []),  # type: ignore[union-attr]
                        anchor=date.fromisoformat(anchor) if isinstance(anchor, str) else None, fixed=dict(fixed or {}),
                        last_number=int(data.get("last_number") or 0))  # type: ignore[call-overload]


def reports_of(scores: Mapping[str, object] | None) -> dict[int, tuple[str, int]]:
    """The classification a response's scores hold: report repeat -> (kind, ulcer number)."""
    stored = ((scores or {}).get("groups") or {}).get("DU_ULCER") or {}  # type: ignore[union-attr]
    return {int(k): (v["report_kind"], int(v["ulcer_number"])) for k, v in stored.items()}
