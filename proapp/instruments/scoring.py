"""Scoring rules, one pure function per instrument, exactly as the published rules set out.

Each receives the instrument definition and answers already checked against its data dictionary.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from proapp.instruments.registry import ParsedAnswers, scorer
from proapp.instruments.schema import Instrument

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


@scorer("DLQI")
def score_dlqi(_inst: Instrument, answers: ParsedAnswers) -> dict[str, Any]:
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


@scorer("HAQ")
def score_haq(inst: Instrument, answers: ParsedAnswers) -> dict[str, Any]:
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

@scorer("PAIN_VAS")
def score_pain_vas(_inst: Instrument, answers: ParsedAnswers) -> dict[str, Any]:
    v = answers.get("PAIN_VAS")
    if v is None:
        return {"status": "not_scored", "pain": None}
    return {"status": "scored", "pain": int(v)}


# --- New digital-ulcer diary ---------------------------------------------------------------------

@scorer("DU_DIARY")
def score_du_diary(_inst: Instrument, answers: ParsedAnswers) -> dict[str, Any]:
    new = answers.get("DU_NEW")
    ulcers = answers.groups.get("DU_ULCER", {}) if new == "Y" else {}
    fingers = sorted({f"{u['DU_HAND']}{u['DU_FINGER']}" for u in ulcers.values()
                      if "DU_HAND" in u and "DU_FINGER" in u})
    infect = answers.get("DU_INFECT")
    pain = answers.get("DU_PAIN")
    return {
        "status": "not_scored" if new is None else "scored",
        "new_ulcer_count": len(ulcers),
        "fingers_affected": fingers,
        "infection_signs": None if infect is None else infect == "Y",
        "pain": None if pain is None else int(pain),
    }
