"""Scoring rules, one pure function per instrument, exactly as the published rules set out.

Each receives the instrument definition and answers already checked against its data dictionary.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from proapp.instruments import ulcers
from proapp.instruments.answers import ParsedAnswers
from proapp.instruments.schema import Instrument
from proapp.instruments.ulcers import UlcerContext

# --- DLQI ----------------------------------------------------------------------------------------

DLQI_QUESTIONS = ("Q1", "Q2", "Q3", "Q4", "Q5", "Q6", "Q7", "Q8", "Q9", "Q10")
DLQI_SIMPLE_ITEMS = {"Q1": "DLQI01", "Q2": "DLQI02", "Q3": "DLQI03", "Q4": "DLQI04", "Q5": "DLQI05",
                     "Q6": "DLQI06", "Q8": "DLQI08", "Q9": "DLQI09", "Q10": "DLQI10"}
DLQI_SUBSCALES = {
    "symptoms_feelings": ("Q1", "Q2"),
    "daily_activities": ("Q3", "Q4"),
    "leisure": ("Q5", "Q6"),
    "work_school": ("Q7",),
    "personal_relationships": ("Q8", "Q9"),
    "treatment": ("Q10",),
}
DLQI_BANDS = ((1, "no_effect"), (5, "small"), (10, "moderate"), (20, "very_large"), (30, "extremely_large"))


def dlqi_question_scores(answers: ParsedAnswers) -> dict[str, int | None]:
    """Score of each of the ten questions; None when the question is unanswered."""
    scores: dict[str, int | None] = {}
    for q, item in DLQI_SIMPLE_ITEMS.items():
        v = answers.get(item)
        scores[q] = None if v is None else (0 if v == "NR" else int(v))
    a, b = answers.get("DLQI07A"), answers.get("DLQI07B")
    if a is None:
        scores["Q7"] = None
    elif a == "Y":
        scores["Q7"] = 3                      # 'prevented from working': 3, the second part is ignored
    elif a == "N":
        scores["Q7"] = int(b) if b is not None else 0
    else:                                     # NR
        scores["Q7"] = 0
    return {q: scores[q] for q in DLQI_QUESTIONS}


def dlqi_band(total: int) -> str:
    for upper, name in DLQI_BANDS:
        if total <= upper:
            return name
    raise ValueError(f"DLQI total {total} is outside 0-30")


def score_dlqi(_inst: Instrument, answers: ParsedAnswers, _context: Any = None) -> dict[str, Any]:
    """Total and band (Finlay & Khan 1994: one unanswered question scores 0; two or more: not scored). Each
    subscale is the sum of its own questions, reported when all of them are answered, whatever the others (the
    DLQI's instructions for use score the subscales from their questions; a subscale missing a question is not
    reported: clinical review of the project, 2026)."""
    q = dlqi_question_scores(answers)
    missing = [name for name, s in q.items() if s is None]
    by_subscale = {name: None if any(q[x] is None for x in qs) else sum(q[x] or 0 for x in qs)
                   for name, qs in DLQI_SUBSCALES.items()}
    subscales = by_subscale if any(v is not None for v in by_subscale.values()) else None
    if len(missing) >= 2:
        return {"status": "not_scored", "total": None, "band": None, "subscales": subscales,
                "questions_missing": len(missing)}
    total = sum(s or 0 for s in q.values())   # a single unanswered question scores 0
    return {"status": "scored", "total": total, "band": dlqi_band(total), "subscales": subscales,
            "questions_missing": len(missing)}


# --- HAQ-DI and the scleroderma HAQ VAS ----------------------------------------------------------

HAQ_CATEGORIES = ("dressing", "arising", "eating", "walking", "hygiene", "reach", "grip", "activities")
HAQ_VAS_ITEMS = ("HAQ_PAIN", "HAQ_GLOBAL", "SHAQ_RAYNAUD", "SHAQ_DU", "SHAQ_GI", "SHAQ_BREATH", "SHAQ_OVERALL")
HAQ_MIN_CATEGORIES = 6


def _round3(value: Decimal) -> float:
    return float(value.quantize(Decimal("0.001"), rounding=ROUND_HALF_UP))


def score_haq(inst: Instrument, answers: ParsedAnswers, _context: Any = None) -> dict[str, Any]:
    raw: dict[str, int | None] = {}
    adjusted: dict[str, int | None] = {}
    for category in HAQ_CATEGORIES:
        items = [i for i in inst.items if i.section == category]
        values = [int(v) for i in items if i.role == "activity" and (v := answers.get(i.code)) is not None]
        assisted = any(answers.get(i.code) == "Y" for i in items if i.role in ("aid", "help"))
        if not values:
            raw[category] = adjusted[category] = None     # aids ticked alone do not answer a category
            continue
        raw[category] = max(values)
        adjusted[category] = max(raw[category], 2) if assisted else raw[category]
    answered = [c for c in HAQ_CATEGORIES if raw[c] is not None]
    vas = {}
    for code in HAQ_VAS_ITEMS:
        v = answers.get(code)
        if v is not None:
            mm = int(v)
            vas[code] = {"mm": mm, "scale_0_3": float(Decimal(mm) * Decimal("0.03"))}
    result: dict[str, Any] = {
        "categories_answered": len(answered),
        "category_scores": adjusted,
        "category_scores_without_aids": raw,
        "vas": vas,
    }
    if len(answered) < HAQ_MIN_CATEGORIES:
        result.update(status="not_computed", haq_di=None, haq_di_without_aids=None)
        return result
    n = Decimal(len(answered))
    result.update(
        status="computed",
        haq_di=_round3(Decimal(sum(adjusted[c] or 0 for c in answered)) / n),
        haq_di_without_aids=_round3(Decimal(sum(raw[c] or 0 for c in answered)) / n),
    )
    return result


# --- Pain VAS ------------------------------------------------------------------------------------

def score_pain_vas(_inst: Instrument, answers: ParsedAnswers, _context: Any = None) -> dict[str, Any]:
    v = answers.get("PAIN_VAS")
    if v is None:
        return {"status": "not_scored", "pain": None}
    return {"status": "scored", "pain": int(v)}


def score_pain_nrs(_inst: Instrument, answers: ParsedAnswers, _context: Any = None) -> dict[str, Any]:
    """The 0-10 rating as given: never rescaled to the VAS's 0-100 (another measure)."""
    v = answers.get("PAIN_NRS")
    if v is None:
        return {"status": "not_scored", "score": None}
    return {"status": "scored", "score": int(v)}


# --- Digital-ulcer diary and the baseline inventory ---------------------------------------------------------------

def score_du_diary(inst: Instrument, answers: ParsedAnswers, context: UlcerContext | None = None) -> dict[str, Any]:
    if inst.version == "1.0":
        return _score_du_diary_1(answers)
    ctx = context or UlcerContext()
    new = answers.get("DU_NEW")
    known = answers.groups.get("DU_KNOWN", {})
    closed_now = {n for n, a in known.items() if a.get("DU_KNOWN_CLOSED") == "Y"}
    ctx = _without_rejected(ctx, answers)
    reports = ulcers.places(answers.groups.get("DU_ULCER", {}) if new == "Y" else {})
    kinds = ulcers.classify(ctx, reports, closed_now)
    still_open = {u.number for u in ctx.followed if u.number not in closed_now}
    opened = {n for kind, n in kinds.values() if kind in (ulcers.NEW, ulcers.RECURRENCE)}
    active = still_open | opened | {n for kind, n in kinds.values() if kind == ulcers.AGAIN}
    treated = {u.number for u in ctx.known if u.treated}
    # The protocol's new digital ulcers: at a place with no known ulcer, not over a calcinosis (its definition
    # excludes calcinosis ulcers; they stay in the registry and are followed, but are not counted as new).
    new_ulcers = [k for k, (kind, _n) in kinds.items() if kind == ulcers.NEW and reports[k][2] != ulcers.CALCINOSIS]
    # From version 2.2 (the first entry asks since the questionnaire before the injection): a report whose first
    # day is before the injection was there at the injection, not a new ulcer of the follow-up.
    before = ([k for k in new_ulcers if _appeared_before(answers.groups["DU_ULCER"][k].get("DU_ONSET"), ctx.anchor)]
              if inst.version != "2.0" and inst.version != "2.1" else [])
    new_ulcers = [k for k in new_ulcers if k not in before]
    fingers = sorted({f"{reports[k][0]}{reports[k][1]}" for k in new_ulcers})
    infect = answers.get("DU_INFECT")
    return {
        "status": "not_scored" if new is None else "scored",
        "new_ulcer_count": len(new_ulcers),
        **({"before_injection_count": len(before)} if inst.version not in ("2.0", "2.1") else {}),
        "recurrent_ulcer_count": sum(1 for kind, _n in kinds.values() if kind == ulcers.RECURRENCE),
        "healed_ulcer_count": len(closed_now - opened),
        "active_ulcer_count": len(active),
        "treated_active_count": len(active & treated),
        "fingers_affected": fingers,
        "infection_signs": None if infect is None else infect == "Y",
        "groups": {
            # Healed in this entry and not open again in it (a report at its place reopens it: not healed).
            "DU_KNOWN": {str(n): {"days_to_healing": ulcers.days_to_healing(ctx, n, a.get("DU_KNOWN_CLOSED_ON"))}
                         for n, a in sorted(known.items()) if n in closed_now - opened},
            "DU_ULCER": {str(k): {"ulcer_number": n, "report_kind": kind} for k, (kind, n) in kinds.items()},
        },
    }


def _appeared_before(onset: str | None, anchor: date | None) -> bool:
    """Whether an ulcer's first day (DU_ONSET, as answered) is before the injection day."""
    if not onset or anchor is None:
        return False
    try:
        return date.fromisoformat(onset) < anchor
    except ValueError:
        return False


def _without_rejected(ctx: UlcerContext, answers: ParsedAnswers) -> UlcerContext:
    """The registry without the ulcers the study team noted and the patient said are not right (in this entry)."""
    rejected = {n for n, a in answers.groups.get("DU_CONFIRM", {}).items() if a.get("DU_CONFIRM_OK") == "N"}
    if not rejected:
        return ctx
    return replace(ctx, known=tuple(u for u in ctx.known if u.number not in rejected),
                   last_number=ctx.next_number - 1)


def _score_du_diary_1(answers: ParsedAnswers) -> dict[str, Any]:
    """Version 1.0 (kept for the responses given with it): new ulcers are every ulcer reported."""
    new = answers.get("DU_NEW")
    ulcer_groups = answers.groups.get("DU_ULCER", {}) if new == "Y" else {}
    fingers = sorted({f"{u['DU_HAND']}{u['DU_FINGER']}" for u in ulcer_groups.values()
                      if "DU_HAND" in u and "DU_FINGER" in u})
    infect = answers.get("DU_INFECT")
    pain = answers.get("DU_PAIN")
    return {
        "status": "not_scored" if new is None else "scored",
        "new_ulcer_count": len(ulcer_groups),
        "fingers_affected": fingers,
        "infection_signs": None if infect is None else infect == "Y",
        "pain": None if pain is None else int(pain),
    }


def score_du_baseline(_inst: Instrument, answers: ParsedAnswers, context: UlcerContext | None = None) -> dict[
        str, Any]:
    """The ulcers present before the injection: those the study team noted and the patient confirmed, and the
    others the patient reports (one at the place of a noted ulcer is that ulcer, reported again)."""
    ctx = context or UlcerContext()
    confirm = answers.groups.get("DU_CONFIRM", {})
    rejected = {n for n, a in confirm.items() if a.get("DU_CONFIRM_OK") == "N"}
    ctx = _without_rejected(ctx, answers)
    any_now = answers.get("DU_BL_ANY")
    reports = ulcers.places(answers.groups.get("DU_ULCER", {}) if any_now == "Y" else {})
    kinds = ulcers.classify(ctx, reports)
    present = {u.number for u in ctx.known} | {n for _kind, n in kinds.values()}
    return {
        "status": "not_scored" if any_now is None else "scored",
        "baseline_ulcer_count": len(present),
        "not_confirmed_count": len(rejected),
        "groups": {"DU_ULCER": {str(k): {"ulcer_number": n, "report_kind": kind} for k, (kind, n) in kinds.items()}},
    }


# --- Tolerance checklist (PRO-CTCAE items and study-specific ones) ------------------------------------------------

def score_tolerance(inst: Instrument, answers: ParsedAnswers, _context: Any = None) -> dict[str, Any]:
    """No summary score is published for PRO-CTCAE (each item is reported on its own: Basch et al., JNCI 2014);
    for the team's review: the worst grade answered (0-4) and how many items are graded 3 or 4."""
    graded = [int(v) for i in inst.items if i.type == "choice" and (v := answers.get(i.code)) is not None
              and str(v).isdigit()]                      # yes/no items (a rash, bruising, fever) are not grades
    if not graded:
        return {"status": "not_scored", "worst": None, "severe_count": None}
    return {"status": "scored", "worst": max(graded), "severe_count": sum(1 for g in graded if g >= 3)}


# (instrument, checked answers, what the questionnaire knew of the patient: the ulcer registry, or None)
Scorer = Callable[[Instrument, ParsedAnswers, Any], dict[str, Any]]

SCORERS: dict[str, Scorer] = {
    "DLQI": score_dlqi,
    "HAQ": score_haq,
    "PAIN_VAS": score_pain_vas,
    "PAIN_NRS": score_pain_nrs,
    "DU_DIARY": score_du_diary,
    "DU_BASELINE": score_du_baseline,
    "TOLERANCE": score_tolerance,
}
"""The scoring function of each instrument's code: an instrument file without one is refused at start-up."""
