"""The study file's alert rules applied to one occurrence's answers: pure functions, no database.

The values a rule sees, per instrument: ``item:<code>`` for each answer outside a repeating group and
``score:<code>`` for each derived score (DLQI_TOTAL, HAQ_DI, PAIN, NEW_ULCER_COUNT...). A change rule compares with
the same value in the patient's baseline (the response at the study's visit before treatment when the study file
names one, else the first earlier completed response) or last (previous) earlier completed response.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from proapp.instruments import Instrument, derived_values, score_with
from proapp.questionnaire.flow import as_scoring_answers
from proapp.studies.schema import AlertRule, Condition

Values = dict[str, Any]                  # {"item:DU_INFECT": "Y", "score:PAIN": 85, ...} of one instrument


@dataclass(frozen=True)
class Earlier:
    """An earlier completed response of the same patient and instrument."""

    visit: str
    values: Values


# The answers being evaluated are the reference themselves (the visit before treatment): no change to compare.
ITSELF = Earlier("", {})
# (instrument code, "baseline" | "previous") -> the earlier response, ITSELF, or None (none to compare with)
History = Callable[[str, str], Earlier | None]


@dataclass
class Hit:
    rule: AlertRule
    evidence: list[dict[str, Any]] = field(default_factory=list)


def values_of(inst: Instrument, answers: Mapping[tuple[str, int], str | None],
              scores: Mapping[str, Any] | None = None) -> Values:
    """What the rules may look at in one response. ``scores``: the stored ones (a completed response); without
    them the answers so far are scored (a response left in progress)."""
    values: Values = {f"item:{code}": v for (code, repeat), v in answers.items() if repeat == 0 and v is not None}
    if scores is None:
        scores = score_with(inst, as_scoring_answers(dict(answers)))
    values.update({f"score:{code}": v for code, v in derived_values(inst, scores).items() if v is not None})
    return values


def _number(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _leaf(cond: Condition, current: Mapping[str, Values], history: History) -> list[dict[str, Any]] | None:
    kind, inst, code = cond.ref
    ref = f"{inst}.{code}"
    value = current.get(inst, {}).get(f"{kind}:{code}")
    if value is None:
        return None
    if cond.equals is not None:
        return [{"ref": ref, "kind": kind, "value": value}] if str(value) == cond.equals else None
    if cond.one_of is not None:
        return [{"ref": ref, "kind": kind, "value": value}] if str(value) in cond.one_of else None
    number = _number(value)
    if number is None:
        return None
    found: dict[str, Any] = {"ref": ref, "kind": kind, "value": value}
    if cond.change_from:
        earlier = history(inst, cond.change_from)
        if earlier is ITSELF:
            return None
        before = _number(earlier.values.get(f"{kind}:{code}")) if earlier else None
        if earlier is None or before is None:
            if cond.without_reference == "met":
                found.update(compared_with=cond.change_from, reference_visit=None)
                return [found]
            return None
        found.update(compared_with=cond.change_from, reference_visit=earlier.visit,
                     reference_value=earlier.values[f"{kind}:{code}"], change=round(number - before, 3))
        number = number - before
    if cond.at_least is not None and number < cond.at_least:
        return None
    if cond.at_most is not None and number > cond.at_most:
        return None
    return [found]


def met(cond: Condition, current: Mapping[str, Values], history: History) -> list[dict[str, Any]] | None:
    """The evidence (values that met it) when ``cond`` holds, else None."""
    if cond.any is not None:
        evidence = [e for child in cond.any if (found := met(child, current, history)) for e in found]
        return evidence or None
    if cond.all is not None:
        evidence = []
        for child in cond.all:
            found = met(child, current, history)
            if not found:
                return None
            evidence.extend(found)
        return evidence
    return _leaf(cond, current, history)


def evaluate(rules: list[AlertRule], current: Mapping[str, Values], history: History) -> list[Hit]:
    """The rules met by an occurrence's values (only rules whose instruments are all in ``current``)."""
    hits = []
    for rule in rules:
        if not rule.instruments() <= set(current):
            continue
        evidence = met(rule.when, current, history)
        if evidence:
            hits.append(Hit(rule, evidence))
    return one_alert_per_answer(hits)


RANK = {"urgent": 0, "same_day": 1, "review": 2}


def one_alert_per_answer(hits: list[Hit]) -> list[Hit]:
    """Drop a hit whose answers all met a more severe rule too: a very severe side effect raises the same-day
    alert, not also the review one (two alerts to acknowledge for one answer)."""
    def refs(hit: Hit) -> set[str]:
        return {e["ref"] for e in hit.evidence}

    return [hit for hit in hits
            if not any(RANK[other.rule.severity] < RANK[hit.rule.severity] and refs(hit) <= refs(other)
                       for other in hits)]


def tells_patient(rule: AlertRule) -> bool:
    """Urgent and same-day rules: the patient is told at once to call the site."""
    return rule.severity in ("urgent", "same_day")
