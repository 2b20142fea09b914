"""A trial simulated end to end, whose truth is known: seeded patients of both studies walk their schedules on the
app's clock through the real patient pages; the study team notes the treated ulcers on its page and corrects
answers with e-signatures. The simulation keeps its own ground truth (what the patients answered, what the
protocol's endpoints are from it), then pulls every export format to the end and computes the endpoints from
each: they must equal the truth.

The endpoints (the protocols): IMATINIB-SSC, the change in DLQI and HAQ-DI from M0 to M1, M3, M6 and M12; ADUSE,
the change in pain from before the injection (W0) to W16, the days to healing of each treated ulcer (None:
censored, not healed; which ulcers were treated is read from the exported ulcer registry), the number of new ulcers
over 16 weeks (calcinosis excluded), the complications over 16 weeks (the weeks with new signs of infection,
gangrene, an amputation, an unplanned hospital stay, an unplanned finger operation), and the registry's queries
(a patient says the treated ulcer is not where the team noted it; the team resolves it on its page). Used by
``tests/test_trial_simulation.py`` (a smoke size) and ``tests/benchmarks/bench_simulation.py``.

Issue 30's cases: an injection postponed after the baseline (W0) was answered (the team reschedules the anchor date,
signed, on the patient's page: the diaries and the days to healing follow the new date), and a patient who switches
from French to English in the middle of a diary (each answer keeps its language; the endpoints do not change), and
the fat-harvest question asked in the diaries of the 28 days after the liposuction only (its date recorded at
enrolment, not moved by the postponed injection), in every diary while the date is not recorded.
"""

from __future__ import annotations

import csv
import io
import random
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select

from proapp import db
from proapp.models import Answer, Occurrence, Response
from proapp.patients.enrolment import EnrolmentRequest, enroll_patient
from proapp.questionnaire.answering import issue_link
from proapp.questionnaire.corrections import Source, correct_answer
from tests.dashboard.conftest import PASSWORD
from tests.export.conftest import auth, make_key
from tests.helpers import agreed
from tests.questionnaire.helpers import TOLERANCE_YES_NO, Patient, csrf

PARIS = ZoneInfo("Europe/Paris")
START = date(2026, 3, 2)
NS = {"odm": "http://www.cdisc.org/ns/odm/v1.3"}
DLQI_ITEMS = ("DLQI01", "DLQI02", "DLQI03", "DLQI04", "DLQI05", "DLQI06", "DLQI08", "DLQI09", "DLQI10")


@dataclass
class Ulcer:
    number: int
    place: tuple[str, str, str]
    treated: bool = False
    healed_on: date | None = None          # truth: the day it closed (None: still open)


@dataclass
class AdusePlan:
    """One ADUSE patient's course, drawn from the seed."""

    subject: str
    injection: date
    pain: dict[str, int]                                   # visit -> pain answered
    new: dict[int, list[tuple[str, str, str]]]             # week -> new ulcer places reported
    heal: dict[int, int]                                   # ulcer number -> week it is reported closed
    infection: set[int]
    last_week: int                                         # withdrawal: no entry after this week
    wrongly_healed: tuple[int, int] | None = None          # (week, ulcer) reported closed, corrected to "not yet"
    complications: dict[str, set[int]] = field(default_factory=dict)   # diary item -> weeks answered yes
    disputes: bool = False                                  # says the treated ulcer is not right; the team confirms
    postponed: int = 0                                     # days the injection moved after W0 (from the planned day)
    switch_week: int | None = None                         # the diary answered half in French, half in English
    between: tuple[str, str, str] | None = None            # an ulcer that appeared after W0, before the injection
    liposuction: date | None = None                        # recorded at enrolment; None: never recorded


# The complications endpoint: diary items, each counted in the weeks the patient answered yes.
COMPLICATIONS = ("DU_INFECT", "DU_NECROSIS", "DU_AMPUTATION", "DU_HOSPITAL", "DU_SURGERY")


@dataclass
class ImatinibPlan:
    subject: str
    inclusion: date
    dlqi: dict[str, int]                                   # visit -> the value of every DLQI question
    haq: dict[str, int]                                    # visit -> the HAQ answer of every activity
    corrected: tuple[str, str] | None = None               # (visit, item) corrected one up


@dataclass
class Truth:
    """The protocols' endpoints, by subject."""

    endpoints: dict[str, dict[str, Any]] = field(default_factory=dict)
    walked: set[str] = field(default_factory=set)          # the cases the run went through ("postponed", ...)


def plans(seed: int, aduse: int, imatinib: int) -> tuple[list[AdusePlan], list[ImatinibPlan]]:
    rnd = random.Random(seed)
    out_a = []
    places = [(h, f, s) for h in "LR" for f in "12345" for s in ("TIP", "PERI", "DORSAL")
              if (h, f, s) != ("L", "2", "TIP")]                   # the treated ulcer's place
    for n in range(aduse):
        rnd.shuffle(places)
        new: dict[int, list[tuple[str, str, str]]] = {}
        free = list(places)
        for week in rnd.sample(range(2, 15), 2):
            reports = [free.pop()]
            if rnd.random() < 0.5:
                reports.append((reports[0][0], reports[0][1], "CALC"))
            new[week] = reports
        last = 16 if n % 2 == 0 else rnd.randint(6, 12)        # every second patient withdraws
        heal = {1: rnd.randint(3, 14)} if n % 2 == 0 else {}     # ulcer 1 heals for half of them
        out_a.append(AdusePlan(
            subject=f"ADU-TLS-{100 + n:03d}", injection=START + timedelta(days=7 * n),
            pain={"W0": rnd.randint(40, 90), **{f"W{w}": rnd.randint(0, 90) for w in range(1, 17)}},
            new=new, heal=heal, infection={rnd.randint(1, 16)}, last_week=last,
            wrongly_healed=(2, 1) if n % 2 == 0 and heal.get(1, 0) > 2 else None,
            # drawn apart, so that the draws above stay those of the seed
            complications={item: set(extra.sample(range(1, 17), extra.randint(0, 2)))
                           for extra in [random.Random(seed * 7919 + n)] for item in COMPLICATIONS[1:]},
            disputes=n % 2 == 1,
            # Not drawn from the seed (the other draws stay as they were): the injection of every second patient
            # (those whose treated ulcer heals) postponed a week after W0, the others switch to English in the
            # middle of their third diary.
            postponed=7 if n % 2 == 0 else 0, switch_week=3 if n % 2 == 1 else None,
            # An ulcer appears while the postponed injection waits: reported in W1, not a new ulcer.
            between=free.pop() if n % 2 == 0 else None,
            # The fat taken two weeks before the planned injection (its 28 days' follow-up then ends on W1's first
            # day once the injection is postponed a week), recorded at enrolment; never recorded for the others.
            liposuction=START + timedelta(days=7 * n - 7 - 14) if n % 2 == 0 else None))
    out_i = []
    for n in range(imatinib):
        visits = ["M0", "M1", "M3", "M6", "M12"]
        if n % 2 == 1:
            visits.remove("M3")                                   # a missed M3
            visits.remove("M12")                                  # and stopped before M12
        out_i.append(ImatinibPlan(
            subject=f"IMA-PSL-{100 + n:03d}", inclusion=START + timedelta(days=5 * n),
            dlqi={v: rnd.randint(0, 3) for v in visits}, haq={v: rnd.randint(0, 3) for v in visits},
            corrected=("M1", "DLQI01") if n % 2 == 0 else None))
    return out_a, out_i


# Driving the pages ---------------------------------------------------------------------------------------------

def _at(day: date, hour: int = 10) -> datetime:
    return datetime.combine(day, time(hour), PARIS).astimezone(UTC)


def _link(app, pid: int, visit: str) -> str:
    with app.app_context():
        s = db.session()
        occ = s.scalar(select(Occurrence).where(Occurrence.patient_id == pid, Occurrence.visit_code == visit))
        token = issue_link(s, occ, app.extensions["proapp.clock"].now())
        s.commit()
        return token


def _names(html: str) -> list[str]:
    return list(dict.fromkeys(n for n in re.findall(r'name="([A-Za-z0-9_]+)"', html) if n != "csrf_token"))


def walk(app, pid: int, visit: str, answer, switch_to: str | None = None) -> None:
    """Open the visit's link and answer screen after screen, ``answer(screen key, field names)`` giving the values;
    then submit the review. ``switch_to``: press that language (FR | EN) halfway through the first questionnaire."""
    p = Patient(app.test_client(), _link(app, pid, visit))
    p.open()
    p.start()
    for n in range(400):
        if switch_to and n == 3:
            resp = p.client.post("/q/language", data={"csrf_token": csrf(p.page.text), "lang": switch_to,
                                                      "next": p.path})
            assert resp.status_code == 303, resp.status_code
            p.get(resp.headers["Location"])
            assert f'<html lang="{switch_to}"' in p.page.text, p.page.text[:300]
        if p.path == "/q/review":
            p.submit()
            return
        if p.path.startswith("/q/call"):                     # a same-day alert: the patient is told whom to call
            p.get(re.search(r'class="button" href="([^"]+)"', p.page.text).group(1))
            continue
        values = answer(p.screen_key, _names(p.page.text))
        action = re.search(r'<form method="post" action="([^"]+)"', p.page.text).group(1)
        resp = p.client.post(action, data={"csrf_token": csrf(p.page.text), **values})
        assert resp.status_code == 303, (visit, p.screen_key, values, resp.status_code, resp.text[:500])
        p.get(resp.headers["Location"])
    raise AssertionError(f"{visit}: no end to the questionnaire")


def _enrol(app, study: str, site: str, subject: str, anchor: date, harvest: date | None = None) -> int:
    with app.app_context():
        s = db.session()
        now = app.extensions["proapp.clock"].now()
        p = enroll_patient(s, app.extensions["proapp.studies"], app.extensions["proapp.phones"],
                           EnrolmentRequest(study, site, subject, "+33612345678", "fr", anchor, "Europe/Paris",
                                            agreed_on=agreed(now), harvest_date=harvest),
                           now=now)
        s.commit()
        return p.id


def _correct(app, pid: int, visit: str, instrument: str, item: str, repeat: int, value: str) -> None:
    with app.app_context():
        s = db.session()
        r = s.scalar(select(Response).join(Occurrence).where(
            Occurrence.patient_id == pid, Occurrence.visit_code == visit, Response.instrument_code == instrument))
        correct_answer(s, app.extensions["proapp.instruments"], r, item_code=item, repeat=repeat, value=value,
                       reason="Checked with the patient at the visit", actor="coordinator@chu.test", patient_id=pid,
                       now=app.extensions["proapp.clock"].now(),
                       signature={"meaning": "I confirm this correction", "method": "password"},
                       source=Source("other"))
        s.commit()


def run_aduse(app, plan: AdusePlan, staff, walked: set[str]) -> dict[str, Any]:
    """Walk one ADUSE patient; returns the truth of their endpoints."""
    clock = app.extensions["proapp.clock"]
    planned = plan.injection - timedelta(days=plan.postponed)         # the date given at enrolment
    clock.set(_at(planned - timedelta(days=2)))
    pid = _enrol(app, "ADUSE", "TLS", plan.subject, planned, plan.liposuction)
    # The team notes the ulcer it will inject (treated), the day before the injection, on the patient's page.
    sign_in, staff = staff, staff()
    noted = staff.post(f"/staff/patients/{pid}/ulcers", {
        "hand": "L", "finger": "2", "site": "TIP", "noted_on": (planned - timedelta(days=2)).isoformat(),
        "treated": "Y"})
    assert noted.status_code == 303 and noted.headers["Location"].startswith(f"/staff/patients/{pid}"), noted.headers
    ulcers = {1: Ulcer(1, ("L", "2", "TIP"), treated=True)}
    by_place = {("L", "2", "TIP"): 1}

    def w0(key: str, names: list[str]) -> dict[str, str]:
        values = {"DU_CONFIRM_OK": "N" if plan.disputes else "Y", "DU_BL_ANY": "N", "PAIN_VAS": str(plan.pain["W0"]),
                  "DLQI07A": "N", "DLQI07B": "0", **dict.fromkeys(DLQI_ITEMS, "1")}
        if key.startswith("HAQ."):
            return {n: ("40" if n.startswith(("HAQ_PAIN", "HAQ_GLOBAL", "SHAQ_")) else "1") for n in names
                    if n.startswith(("HAQ", "SHAQ")) and "AID" not in n and "HELP" not in n}
        return {n: values[n] for n in names if n in values}

    clock.set(_at(planned - timedelta(days=1)))
    walk(app, pid, "W0", w0)
    if plan.postponed:
        # The cells are not ready on the day: the team moves the injection, signed; W0 (answered) stays.
        clock.set(_at(planned, 9))
        moved = sign_in().post(f"/staff/patients/{pid}/actions/reschedule", {
            "anchor_date": plan.injection.isoformat(), "reason": "Cultured cells not ready",
            "signature_password": PASSWORD})
        assert moved.status_code == 303, moved.get_data(as_text=True)[:500]
        walked.add("postponed")
    new_count = 0
    queries = []
    for week in range(1, plan.last_week + 1):
        day = plan.injection + timedelta(days=7 * week)
        clock.set(_at(day))
        if plan.disputes and week == 2:
            # The query the patient's "not right" opened, resolved on the team's page: the note is right.
            done = sign_in().post(f"/staff/patients/{pid}/ulcers/decision", {
                "number": "1", "action": "confirmed", "reason": "Checked with the patient at the visit"})
            assert done.status_code == 303, done.get_data(as_text=True)[:300]
            queries.append(("NOT-CONFIRMED-1", "resolved", "confirmed"))
        reports = plan.new.get(week, [])
        if week == 1 and plan.between:
            reports = [plan.between, *reports]
        open_now = sorted(n for n, u in ulcers.items() if u.healed_on is None)
        closing = {n for n in open_now if plan.heal.get(n) == week}
        wrong = plan.wrongly_healed and plan.wrongly_healed[0] == week and plan.wrongly_healed[1] in open_now
        closed_on = day - timedelta(days=2)

        def entry(key: str, names: list[str], reports=reports, closing=closing, wrong=wrong, week=week,
                  closed_on=closed_on, day=day) -> dict[str, str]:
            parts = key.split(".")
            if len(parts) == 4 and parts[1] == "DU_KNOWN":
                n = int(parts[2])
                shut = n in closing or (wrong and n == plan.wrongly_healed[1])
                return {k: v for k, v in (("DU_KNOWN_CLOSED", "Y" if shut else "N"),
                                          ("DU_KNOWN_CLOSED_ON", closed_on.isoformat())) if k in names}
            if len(parts) == 4 and parts[1] == "DU_ULCER":
                hand, finger, site = reports[int(parts[2]) - 1]
                onset = (planned + timedelta(days=2) if (hand, finger, site) == plan.between and week == 1
                         else day - timedelta(days=3))
                values = {"DU_HAND": hand, "DU_FINGER": finger, "DU_SITE": site, "DU_ONSET": onset.isoformat()}
                return {n: values[n] for n in names if n in values}
            if parts[1].endswith("-more"):
                return {"more": "Y" if int(parts[2]) < len(reports) else "N"}
            values = {"DU_NEW": "Y" if reports else "N", "DU_INFECT": "Y" if week in plan.infection else "N",
                      "DU_ANTIBIO": "N", "DU_ISCHAEMIA": "N", "DU_BONE": "N", "DU_INJECTED": "N",
                      "DU_INJ_ULCER": "N", "DU_HARVEST": "N", "PAIN_VAS": str(plan.pain[f"W{week}"]),
                      **{item: "Y" if week in weeks else "N" for item, weeks in plan.complications.items()}}
            return {n: values[n] for n in names if n in values}

        walk(app, pid, f"W{week}", entry, "en" if week == plan.switch_week else None)
        if week == plan.switch_week:
            walked.add("language_switch")
        if wrong:
            # The nurse sees the ulcer open at the visit: "closed" corrected to "not yet", signed.
            _correct(app, pid, f"W{week}", "DU_DIARY", "DU_KNOWN_CLOSED", plan.wrongly_healed[1], "N")
        for n in closing:
            ulcers[n].healed_on = closed_on
        for place in reports:
            if place in by_place and ulcers[by_place[place]].healed_on is None:
                continue
            number = max(ulcers) + 1
            ulcers[number] = Ulcer(number, place)
            by_place[place] = number
            if place == plan.between and week == 1:
                walked.add("ulcer_before_the_injection")      # there at the injection: not a new ulcer
                continue
            new_count += place[2] != "CALC"
    # The harvest site is asked about in the diaries whose window overlaps the 28 days after the liposuction (the
    # reschedule did not move it), in every diary while its date is not recorded.
    followed = [week for week in range(1, plan.last_week + 1) if plan.liposuction is None or
                plan.injection + timedelta(days=7 * week) <= plan.liposuction + timedelta(days=28)]
    with app.app_context():
        asked = list(db.session().scalars(
            select(Occurrence.visit_day).join(Response, Response.occurrence_id == Occurrence.id)
            .join(Answer, Answer.response_id == Response.id)
            .where(Occurrence.patient_id == pid, Answer.item_code == "DU_HARVEST").order_by(Occurrence.visit_day)))
    assert [day // 7 for day in asked] == followed, (plan.subject, asked, followed)
    walked.add("harvest_followed" if plan.liposuction else "harvest_date_not_recorded")
    pain = plan.pain["W16"] - plan.pain["W0"] if plan.last_week == 16 else None
    weeks = {"DU_INFECT": plan.infection, **plan.complications}
    return {"pain_change_w16": pain,
            "days_to_healing": {n: None if u.healed_on is None else (u.healed_on - plan.injection).days
                                for n, u in ulcers.items() if u.treated},
            "new_ulcers": new_count,
            "complications": {item: sum(1 for w in weeks[item] if w <= plan.last_week) for item in COMPLICATIONS},
            "queries": queries}


def run_imatinib(app, plan: ImatinibPlan) -> dict[str, Any]:
    clock = app.extensions["proapp.clock"]
    clock.set(_at(plan.inclusion - timedelta(days=1)))
    pid = _enrol(app, "IMATINIB-SSC", "PSL", plan.subject, plan.inclusion)
    days = {"M0": 0, "M1": 30, "M3": 90, "M6": 180, "M12": 365}
    dlqi, haq = {}, {}
    for visit, v in plan.dlqi.items():
        clock.set(_at(plan.inclusion + timedelta(days=days[visit])))
        a = plan.haq[visit]

        def answer(key: str, names: list[str], v=v, a=a) -> dict[str, str]:
            if key.startswith("HAQ."):
                return {n: ("30" if n.startswith(("HAQ_PAIN", "HAQ_GLOBAL", "SHAQ_")) else str(a)) for n in names
                        if n.startswith(("HAQ", "SHAQ")) and "AID" not in n and "HELP" not in n}
            if key.startswith("TOLERANCE."):
                return {n: ("N" if n in TOLERANCE_YES_NO else "0") for n in names if n.startswith("TOL_")}
            values = {"DLQI07A": "N", "DLQI07B": "0", **dict.fromkeys(DLQI_ITEMS, str(v))}
            return {n: values[n] for n in names if n in values}

        walk(app, pid, visit, answer)
        dlqi[visit], haq[visit] = 9 * v, float(a)
        if plan.corrected and plan.corrected[0] == visit and v < 3:
            _correct(app, pid, visit, "DLQI", plan.corrected[1], 0, str(v + 1))
            dlqi[visit] += 1
    return {f"{name}_change_{m.lower()}": (None if m not in values or "M0" not in values
                                           else round(values[m] - values["M0"], 3))
            for name, values in (("dlqi", dlqi), ("haq", haq)) for m in ("M1", "M3", "M6", "M12")}


# Pulling every format to the end and computing the endpoints from each ---------------------------------------

Scores = dict[tuple[str, str, str], dict[tuple[str, int | None], Any]]     # (subject, visit, instrument) -> ...


def _pages(client, key: str, study: str, fmt: str) -> list:
    out, cursor = [], None
    while True:
        resp = client.get(f"/api/v1/studies/{study}/responses?format={fmt}&limit=50"
                          + (f"&cursor={cursor}" if cursor else ""), headers=auth(key))
        assert resp.status_code == 200, resp.get_data(as_text=True)[:300]
        out.append(resp)
        cursor = resp.headers["X-Next-Cursor"]
        if resp.headers["X-Has-More"] == "false":
            return out


def _num(value: Any) -> Any:
    if isinstance(value, str):
        try:
            f = float(value)
        except ValueError:
            return value
        return int(f) if f.is_integer() else f
    return value


def from_json(pages) -> Scores:
    out: Scores = {}
    for page in pages:
        for r in page.get_json()["data"]:             # a later revision replaces the earlier
            held = {(c, None): _num(v) for c, v in r["scores"].items() if v is not None}
            held |= {(c, int(rep)): _num(v) for g in r["group_scores"].values() for rep, by in g.items()
                     for c, v in by.items() if v is not None}
            held |= {(c, None): v for c, v in r["answers"].items() if c in COMPLICATIONS}
            out[(r["subject_id"], r["visit"], r["instrument"]["code"])] = held
    return out


def from_csv(pages) -> Scores:
    out: Scores = {}
    for page in pages:
        rows = list(csv.DictReader(io.StringIO(page.get_data(as_text=True))))
        for rid in dict.fromkeys(r["response_id"] for r in rows):
            mine = [r for r in rows if r["response_id"] == rid]
            held = {}
            for r in mine:
                if r["row_kind"] == "score" and r["value"] != "":
                    held[(r["item_code"], int(r["repeat"]) or None)] = _num(r["value"])
                elif r["row_kind"] == "answer" and r["item_code"] in COMPLICATIONS:
                    held[(r["item_code"], None)] = r["value"]
            out[(mine[0]["subject_id"], mine[0]["visit"], mine[0]["instrument"])] = held
    return out


def from_odm(pages) -> Scores:
    """Apply each Transactional file in order as an EDC does: Insert/Update/Upsert set, Remove deletes. Each file
    is valid against the ODM 1.3.2 schema, with no empty Value."""
    from tests.export.odm import validate_odm

    out: Scores = {}
    for page in pages:
        assert b'Value=""' not in page.data
        doc = validate_odm(page.data)
        for subject in doc.iterfind(".//odm:SubjectData", NS):
            for event in subject.iterfind("odm:StudyEventData", NS):
                for form in event.iterfind("odm:FormData", NS):
                    inst = form.get("FormOID").removeprefix("F.")
                    held = out.setdefault((subject.get("SubjectKey"), event.get("StudyEventOID").removeprefix("SE."),
                                           inst), {})
                    for group in form.iterfind("odm:ItemGroupData", NS):
                        rep = group.get("ItemGroupRepeatKey")
                        for item in group.iterfind("odm:ItemData", NS):
                            code = item.get("ItemOID").removeprefix(f"I.{inst}.")
                            k = (code, int(rep) if rep else None)
                            if item.get("TransactionType") == "Remove" or item.get("IsNull") == "Yes":
                                held.pop(k, None)
                            else:
                                held[k] = _num(item.get("Value"))
    return out


def from_fhir(pages) -> Scores:
    """Observations by their stable id, in order; entered-in-error deletes. Every Bundle is valid FHIR R4B
    (fhir.resources) and R4 (fhirclient), with no empty string."""
    from fhir.resources.R4B.bundle import Bundle

    from tests.export.test_api import valid_r4

    where: dict[str, tuple[str, str]] = {}
    by_id: dict[str, tuple[tuple[str, str, str], tuple[str, int | None], Any]] = {}
    answered: dict[str, tuple[tuple[str, str, str], dict[tuple[str, None], str]]] = {}   # by response, latest
    for page in pages:
        bundle = page.get_json()
        assert '""' not in page.get_data(as_text=True)
        Bundle.model_validate(bundle)
        valid_r4(bundle)
        for entry in bundle["entry"]:
            res = entry["resource"]
            if res["resourceType"] == "QuestionnaireResponse":
                where[entry["fullUrl"]] = (res["subject"]["identifier"]["value"], res["extension"][0]["valueString"])
                inst = res["questionnaire"].rsplit("/", 1)[1].split("|")[0].split("-")[0]
                answered[res["id"]] = ((*where[entry["fullUrl"]], inst), {
                    (i["linkId"], None): i["answer"][0]["valueCoding"]["code"] for i in res["item"]
                    if i["linkId"] in COMPLICATIONS and i.get("answer")})
                continue
            inst, code = res["code"]["coding"][0]["code"].split(".", 1)
            if res["status"] == "entered-in-error":
                by_id.pop(res["id"], None)
                continue
            subject, visit = where[res["derivedFrom"][0]["reference"]]
            rep = res["component"][0]["valueInteger"] if "component" in res else None
            value = res.get("valueInteger", res.get("valueQuantity", {}).get("value", res.get("valueString")))
            by_id[res["id"]] = ((subject, visit, inst), (code, rep), _num(value))
    out: Scores = {}
    for where_, k, v in by_id.values():
        out.setdefault(where_, {})[k] = v
    for where_, values in answered.values():
        out.setdefault(where_, {}).update(values)
    return out


def from_redcap(pages, project, registry) -> Scores:
    """Import every page into a REDCap-shaped table (``overwrite``, as the docs' nightly loop does), then read it
    back with the dictionary's names."""
    from proapp.export.formats.redcap import unique_event

    table: dict[tuple[str, str, str, str], dict[str, str]] = {}
    for page in pages:
        records = page.get_json()
        keys = [(r["record_id"], r["redcap_event_name"], r["redcap_repeat_instrument"], r["redcap_repeat_instance"])
                for r in records]
        assert len(keys) == len(set(keys)), "a key twice in one import"
        for k, r in zip(keys, records, strict=True):
            assert all(isinstance(v, str) for v in r.values())
            table.setdefault(k, {}).update(r)
    out: Scores = {}
    events = {unique_event(v.code): v.code for v in project.study.all_visits()}
    derived = {code: {d.code for v in registry.all() if v.code == code for d in v.derived}
               for code in project.by_instrument}
    for (record, event, repeat_form, instance), row in table.items():
        for code, forms in project.by_instrument.items():
            for form in forms:
                if (form.name != repeat_form) if repeat_form else (
                        form.group is not None or f"{forms[0].name}_resp_id" not in row):
                    continue
                for f in form.fields:
                    if f.code in derived[code] and row.get(f.name, "") != "":
                        out.setdefault((record, events[event], code), {})[
                            (f.code, int(instance) if instance else None)] = _num(row[f.name])
                    elif f.code in COMPLICATIONS and row.get(f.name, "") != "":      # yes/no as 1/0
                        out.setdefault((record, events[event], code), {})[(f.code, None)] = (
                            {"1": "Y", "0": "N"}[row[f.name]])
    return out


# The ulcer registry, from each format: which ulcers were treated, and the queries (id, status, resolution).
Registry = dict[str, dict[str, Any]]


def _registry(subject: str, out: Registry) -> dict[str, Any]:
    return out.setdefault(subject, {"treated": [], "queries": []})


def registry_from_json(resp) -> Registry:
    out: Registry = {}
    for s in resp.get_json()["subjects"]:
        r = _registry(s["subject_id"], out)
        r["treated"] = [u["number"] for u in s["ulcers"] if u["treated"]]
        r["queries"] = [(q["id"], q["status"], q["resolution"])
                        for q in (s["treated_query"], *(u["query"] for u in s["ulcers"])) if q]
    return out


def registry_from_csv(resp) -> Registry:
    out: Registry = {}
    for row in csv.DictReader(io.StringIO(resp.get_data(as_text=True))):
        r = _registry(row["subject_id"], out)
        if row["row_kind"] == "ulcer" and row["treated"] == "yes":
            r["treated"].append(int(row["number"]))
        if row["query_id"]:
            r["queries"].append((row["query_id"], row["query_status"], row["query_resolution"] or None))
    return out


def registry_from_odm(resp) -> Registry:
    from tests.export.odm import validate_odm

    out: Registry = {}
    for subject in validate_odm(resp.data).iterfind(".//odm:SubjectData", NS):
        r = _registry(subject.get("SubjectKey"), out)
        for group in subject.iterfind(".//odm:ItemGroupData", NS):
            items = {i.get("ItemOID").removeprefix("I.ULCER_REGISTRY."): i.get("Value")
                     for i in group.iterfind("odm:ItemData", NS)}
            prefix = "QUERY_" if group.get("ItemGroupOID").endswith(".ULCER") else "TREATED_QUERY_"
            if items.get("TREATED") == "1":
                r["treated"].append(int(items["NUMBER"]))
            if f"{prefix}ID" in items:
                r["queries"].append((items[f"{prefix}ID"], items[f"{prefix}STATUS"],
                                     items.get(f"{prefix}RESOLUTION")))
    return out


def registry_from_fhir(resp) -> Registry:
    from fhir.resources.R4B.bundle import Bundle

    from tests.export.test_api import valid_r4

    bundle = resp.get_json()
    Bundle.model_validate(bundle)
    valid_r4(bundle)
    out: Registry = {}
    for entry in bundle["entry"]:
        res = entry["resource"]
        subject, _, rid = res["identifier"][0]["value"].rpartition(".")
        r = _registry(subject, out)
        if res["resourceType"] == "Condition" and res["extension"][0]["valueBoolean"]:
            r["treated"].append(int(rid))
        elif res["resourceType"] == "Task":
            r["queries"].append((rid, "open" if res["status"] == "requested" else "resolved",
                                 res["businessStatus"]["coding"][0]["code"] if "businessStatus" in res else None))
    for r in out.values():
        r["queries"].sort(key=lambda q: q[0] != "TREATED-MISSING")       # the other formats' order
    return out


def registry_from_redcap(resp) -> Registry:
    out: Registry = {}
    for row in resp.get_json():
        r = _registry(row["record_id"], out)
        if row["redcap_repeat_instrument"] == "ulcer_registry":
            if row["ureg_treated"] == "1":
                r["treated"].append(int(row["redcap_repeat_instance"]))
            if row["ureg_q_id"]:
                r["queries"].append((row["ureg_q_id"], row["ureg_q_status"], row["ureg_q_resolution"] or None))
        elif row.get("ureg_tq_id"):
            r["queries"].insert(0, (row["ureg_tq_id"], row["ureg_tq_status"], row["ureg_tq_resolution"] or None))
    return out


def endpoints(scores: Scores, study: str, subjects: list[str],
              registry: Registry | None = None) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for subject in subjects:
        mine = {(v, i): s for (sub, v, i), s in scores.items() if sub == subject}
        if study == "IMATINIB-SSC":
            e = {}
            for name, inst, code in (("dlqi", "DLQI", "DLQI_TOTAL"), ("haq", "HAQ", "HAQ_DI")):
                base = mine.get(("M0", inst), {}).get((code, None))
                for m in ("M1", "M3", "M6", "M12"):
                    then = mine.get((m, inst), {}).get((code, None))
                    e[f"{name}_change_{m.lower()}"] = None if base is None or then is None else round(then - base, 3)
            out[subject] = e
            continue
        pain0 = mine.get(("W0", "PAIN_VAS"), {}).get(("PAIN", None))
        pain16 = mine.get(("W16", "PAIN_VAS"), {}).get(("PAIN", None))
        diaries = [s for (v, i), s in mine.items() if i == "DU_DIARY"]
        reg = (registry or {}).get(subject, {"treated": [], "queries": []})
        healing = {}
        for s in diaries:
            for (code, rep), value in s.items():
                if code == "DAYS_TO_HEALING" and rep in reg["treated"]:     # the treated ulcers, by the registry
                    healing[rep] = value
        out[subject] = {"pain_change_w16": None if pain0 is None or pain16 is None else pain16 - pain0,
                        "days_to_healing": {n: healing.get(n) for n in reg["treated"]},
                        "new_ulcers": sum(s.get(("NEW_ULCER_COUNT", None), 0) for s in diaries),
                        "complications": {item: sum(1 for s in diaries if s.get((item, None)) == "Y")
                                          for item in COMPLICATIONS},
                        "queries": reg["queries"]}
    return out


def simulate(app, staff, seed: int, aduse: int, imatinib: int) -> tuple[Truth, dict[str, dict]]:
    """Run the trial; return the truth and, per format, the endpoints computed from what the format carried."""
    from proapp.export.formats.redcap import Project

    plan_a, plan_i = plans(seed, aduse, imatinib)
    truth = Truth()
    for p in plan_a:
        truth.endpoints[p.subject] = run_aduse(app, p, staff, truth.walked)
    for p in plan_i:
        truth.endpoints[p.subject] = run_imatinib(app, p)
    client = app.test_client()
    registry = app.extensions["proapp.instruments"]
    found: dict[str, dict] = {}
    for study, subjects in (("ADUSE", [p.subject for p in plan_a]), ("IMATINIB-SSC", [p.subject for p in plan_i])):
        key = make_key(app, study)
        project = Project(app.extensions["proapp.studies"].get(study), registry)
        for fmt, read, read_registry in (
                ("json", from_json, registry_from_json), ("csv", from_csv, registry_from_csv),
                ("odm", from_odm, registry_from_odm), ("fhir", from_fhir, registry_from_fhir),
                ("redcap", lambda pages, project=project: from_redcap(pages, project, registry),
                 registry_from_redcap)):
            scores = read(_pages(client, key, study, fmt))
            ulcers = None
            if study == "ADUSE":
                resp = client.get(f"/api/v1/studies/{study}/ulcers?format={fmt}", headers=auth(key))
                assert resp.status_code == 200, resp.get_data(as_text=True)[:300]
                ulcers = read_registry(resp)
            found.setdefault(fmt, {}).update(endpoints(scores, study, subjects, ulcers))
    return truth, found
