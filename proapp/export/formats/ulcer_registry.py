"""The ulcer registry (ADUSE) in every export format: each ulcer the team noted or the patient reported (its number,
place, treated or not, when and by whom it was noted, its status, the day it healed or the team closed it) with the
query the patient's "no, that is not right" opened on it, and each patient's query "treated ulcer not noted".

One definition of the fields (``ULCER_FIELDS``, ``QUERY_FIELDS``) gives the JSON keys, the CSV columns, the ODM
ItemDefs and ItemData (form ``F.ULCER_REGISTRY`` in the first visit's event: the repeating item group
``IG.ULCER_REGISTRY.ULCER`` keyed by the ulcer's number, the item group ``IG.ULCER_REGISTRY.TREATED_QUERY``) and the
REDCap fields (the repeating instrument ``ulcer_registry``, its instance the ulcer's number, and the form
``ulcer_registry_check``); FHIR has a Condition per ulcer and a Task per query, with stable ids. A patient can have
at most one dispute per ulcer (a noted ulcer is asked once), so the ulcer's query shares its repeat key.

Who noted an ulcer or resolved a query is a pseudonymous staff id (``staff-<account id>``), never an e-mail.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from proapp.export.formats.common import iso
from proapp.instruments.schema import Text
from proapp.questionnaire.ulcers import UlcerQuery, UlcerRow, uses_registry

FORM = "ULCER_REGISTRY"
ULCER_GROUP, TREATED_GROUP = "ULCER", "TREATED_QUERY"
REDCAP_FORM, REDCAP_CHECK_FORM = "ulcer_registry", "ulcer_registry_check"


@dataclass(frozen=True)
class RegistryField:
    code: str                                   # the ODM item's name, the JSON key and CSV column in lower case
    kind: str                                   # integer, text, date, datetime, boolean
    label: Text
    choices: tuple[tuple[str, Text], ...] = ()  # coded values (the place's come from the baseline inventory)


def _t(en: str, fr: str) -> Text:
    return Text(en=en, fr=fr)


STATES = (("open", _t("Open", "Ouvert")), ("healed", _t("Healed (the patient's report)", "Guéri (selon le patient)")),
          ("awaiting_confirmation", _t("Noted by the team, not yet confirmed by the patient",
                                       "Noté par l'équipe, pas encore confirmé par le patient")),
          ("closed", _t("Closed by the team", "Fermé par l'équipe")))
SOURCES = (("team", _t("Noted by the study team", "Noté par l'équipe")),
           ("patient", _t("Reported by the patient", "Signalé par le patient")))
QUERY_STATES = (("open", _t("Open", "Ouverte")), ("resolved", _t("Resolved", "Résolue")))
RESOLUTIONS = (("confirmed", _t("The team's note is right", "La note de l'équipe est juste")),
               ("relocated", _t("Place corrected", "Endroit corrigé")),
               ("closed", _t("Ulcer closed", "Ulcère fermé")),
               ("noted", _t("Treated ulcer noted", "Ulcère traité noté")))
KINDS = (("not_confirmed", _t("The patient said the team's note is not right",
                              "Le patient a dit que la note de l'équipe n'est pas juste")),
         ("treated_missing", _t("No treated ulcer noted when the W0 questionnaire opened",
                                "Aucun ulcère traité noté à l'ouverture du questionnaire W0")))

ULCER_FIELDS = (
    RegistryField("NUMBER", "integer", _t("The ulcer's number for this patient", "Numéro de l'ulcère pour ce patient")),
    RegistryField("HAND", "text", _t("Hand", "Main")),
    RegistryField("FINGER", "text", _t("Finger", "Doigt")),
    RegistryField("SITE", "text", _t("Place on the finger", "Endroit du doigt")),
    RegistryField("TREATED", "boolean", _t("Treated (injected)", "Traité (injecté)")),
    RegistryField("SOURCE", "text", _t("Noted by", "Noté par"), SOURCES),
    RegistryField("NOTED_ON", "date", _t("Noted on (the team), or first reported on (the patient)",
                                         "Noté le (équipe), ou signalé pour la première fois le (patient)")),
    RegistryField("NOTED_BY", "text", _t("Staff member who noted it (pseudonymous id)",
                                         "Membre de l'équipe qui l'a noté (identifiant pseudonyme)")),
    RegistryField("FIRST_VISIT", "text", _t("Visit of the patient's first report", "Visite du premier signalement")),
    RegistryField("STATUS", "text", _t("Status", "Statut"), STATES),
    RegistryField("HEALED_ON", "date", _t("Healed on (the patient's report)", "Guéri le (selon le patient)")),
    RegistryField("DAYS_TO_HEALING", "integer", _t("Days to healing", "Jours jusqu'à la cicatrisation")),
    RegistryField("CLOSED_ON", "date", _t("Closed by the team on", "Fermé par l'équipe le")),
)
QUERY_FIELDS = (
    RegistryField("ID", "text", _t("Query id", "Identifiant de la requête")),
    RegistryField("KIND", "text", _t("Query", "Requête"), KINDS),
    RegistryField("STATUS", "text", _t("Query status", "Statut de la requête"), QUERY_STATES),
    RegistryField("OPENED_ON", "date", _t("Query opened on", "Requête ouverte le")),
    RegistryField("VISIT", "text", _t("Visit of the patient's answer", "Visite de la réponse du patient")),
    RegistryField("PATIENT_ANSWER", "text", _t("The patient's answer", "Réponse du patient"),
                  (("N", _t("No, that is not right", "Non, ce n'est pas juste")),)),
    RegistryField("RESOLUTION", "text", _t("How the team resolved it", "Résolution par l'équipe"), RESOLUTIONS),
    RegistryField("RESOLVED_BY", "text", _t("Resolved by (pseudonymous id)", "Résolue par (identifiant pseudonyme)")),
    RegistryField("RESOLVED_AT", "datetime", _t("Resolved at (UTC)", "Résolue le (UTC)")),
)


def fields(registry: Any) -> tuple[list[RegistryField], list[RegistryField], list[RegistryField]]:
    """(the ulcer's fields with its query's, ``QUERY_`` prefixed; the patient's treated-ulcer query, ``TREATED_
    QUERY_`` prefixed; the query fields), the place's values from the baseline inventory's items."""
    inst = registry.get("DU_BASELINE")
    places = {"HAND": "DU_HAND", "FINGER": "DU_FINGER", "SITE": "DU_SITE"}
    ulcer = [RegistryField(f.code, f.kind, f.label, tuple((o.value, o.label) for o in inst.item(places[f.code])
                                                          .option_list)) if f.code in places else f
             for f in ULCER_FIELDS]
    query = [RegistryField(f"QUERY_{f.code}", f.kind, f.label, f.choices) for f in QUERY_FIELDS]
    treated = [RegistryField(f"TREATED_QUERY_{f.code}", f.kind, f.label, f.choices) for f in QUERY_FIELDS]
    return ulcer + query, treated, list(QUERY_FIELDS)


def study_has_registry(study: Any, registry: Any) -> bool:
    """Whether the study's patients have an ulcer registry (an instrument repeated by their ulcers: ADUSE)."""
    return any(uses_registry(registry.get(code, use.version)) for code, use in study.instruments.items())


@dataclass(frozen=True)
class SubjectRegistry:
    subject_id: str
    site: str
    anchor: date
    ulcers: list[UlcerRow]
    treated_query: UlcerQuery | None
    harvest: date | None = None                 # the liposuction date (autologous cells), when recorded


Staff = Callable[[str | None], str | None]     # an actor ("user:<e-mail>") -> its pseudonymous staff id


def query_values(q: UlcerQuery | None, staff: Staff) -> dict[str, Any]:
    if q is None:
        return dict.fromkeys(f.code for f in QUERY_FIELDS)
    return {"ID": q.id, "KIND": q.kind, "STATUS": "open" if q.is_open else "resolved", "OPENED_ON": q.opened_on,
            "VISIT": q.visit, "PATIENT_ANSWER": q.patient_answer, "RESOLUTION": q.resolution,
            "RESOLVED_BY": staff(q.resolved_by), "RESOLVED_AT": q.resolved_at}


def ulcer_values(u: UlcerRow, staff: Staff) -> dict[str, Any]:
    """The ulcer's values by field code (None: no value), with its query's (``QUERY_``)."""
    out = {"NUMBER": u.number, "HAND": u.hand, "FINGER": u.finger, "SITE": u.site, "TREATED": u.treated,
           "SOURCE": "team" if u.noted_by_team else "patient", "NOTED_ON": u.noted_on, "NOTED_BY": staff(u.noted_by),
           "FIRST_VISIT": u.first_reported, "STATUS": u.state, "HEALED_ON": u.healed_on,
           "DAYS_TO_HEALING": u.days_to_healing, "CLOSED_ON": u.closed_on}
    out |= {f"QUERY_{k}": v for k, v in query_values(u.query, staff).items()}
    return out


def _json(value: Any) -> Any:
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, date):
        return value.isoformat()
    return value


# JSON ---------------------------------------------------------------------------------------------------------

def json_registry(study: str, subjects: list[SubjectRegistry], staff: Staff, created: datetime) -> dict[str, Any]:
    """``{"study", "generated_at", "subjects": [{"subject_id", "site", "anchor_date", "harvest_date", "ulcers": [...],
    "treated_query": {...} | null, "open_queries": [ids]}]}``; an ulcer's keys are the fields' codes in lower
    case, its query an object (or null)."""
    out = []
    for s in subjects:
        ulcers = []
        for u in s.ulcers:
            values = {k.lower(): _json(v) for k, v in ulcer_values(u, staff).items() if not k.startswith("QUERY_")}
            values["query"] = None if u.query is None else {k.lower(): _json(v)
                                                             for k, v in query_values(u.query, staff).items()}
            ulcers.append(values)
        queries = [q for q in (s.treated_query, *(u.query for u in s.ulcers)) if q is not None]
        out.append({"subject_id": s.subject_id, "site": s.site, "anchor_date": s.anchor.isoformat(),
                    "harvest_date": s.harvest.isoformat() if s.harvest else None, "ulcers": ulcers,
                    "treated_query": None if s.treated_query is None else {
                        k.lower(): _json(v) for k, v in query_values(s.treated_query, staff).items()},
                    "open_queries": [q.id for q in queries if q.is_open]})
    return {"study": study, "generated_at": iso(created), "subjects": out}


# CSV ----------------------------------------------------------------------------------------------------------

CSV_COLUMNS = ("subject_id", "site", "row_kind", *(f.code.lower() for f in ULCER_FIELDS),
               *(f"query_{f.code.lower()}" for f in QUERY_FIELDS))


def _csv(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(_json(value))


def csv_rows(subjects: list[SubjectRegistry], staff: Staff) -> Iterator[tuple[str, ...]]:
    """One row per ulcer (``row_kind`` ulcer, with its query's columns), and one per patient's treated-ulcer query
    (``treated_query``: the ulcer's columns empty)."""
    for s in subjects:
        if s.treated_query is not None:
            q = query_values(s.treated_query, staff)
            yield (s.subject_id, s.site, "treated_query", *("" for _ in ULCER_FIELDS),
                   *(_csv(q[f.code]) for f in QUERY_FIELDS))
        for u in s.ulcers:
            v = ulcer_values(u, staff)
            yield (s.subject_id, s.site, "ulcer", *(_csv(v[f.code]) for f in ULCER_FIELDS),
                   *(_csv(v[f"QUERY_{f.code}"]) for f in QUERY_FIELDS))


# ODM ----------------------------------------------------------------------------------------------------------

ODM_TYPES = {"integer": "integer", "text": "text", "date": "date", "datetime": "datetime", "boolean": "boolean"}


def _odm(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, datetime):
        return iso(value)
    return str(_json(value))


def odm_defs(oids: Any, registry: Any) -> dict[str, list[str]]:
    """The registry's metadata for the ODM MetaDataVersion, by where it goes: ``formref`` (in the first visit's
    StudyEventDef), ``formdef``, ``groupdefs``, ``itemdefs``, ``codelists``."""
    ulcer, treated, _query = fields(registry)

    def tt(text: Text) -> str:
        return "".join(f'<TranslatedText xml:lang="{lang}">{escape(text(lang))}</TranslatedText>'
                       for lang in ("en", "fr"))

    groups = ((ULCER_GROUP, "Yes", ulcer), (TREATED_GROUP, "No", treated))
    out: dict[str, list[str]] = {"formref": [], "formdef": [], "groupdefs": [], "itemdefs": [], "codelists": []}
    out["formdef"].append(f"<FormDef OID={quoteattr(oids.form(FORM))} Name=\"Ulcer registry\" Repeating=\"No\">"
                          + "".join(f"<ItemGroupRef ItemGroupOID={quoteattr(oids.group(FORM, g))} OrderNumber=\"{n}\" "
                                    'Mandatory="No"/>' for n, (g, _r, _f) in enumerate(groups, 1)) + "</FormDef>")
    for g, repeating, group_fields in groups:
        out["groupdefs"].append(
            f"<ItemGroupDef OID={quoteattr(oids.group(FORM, g))} Name={quoteattr(f'{FORM} {g}')} "
            f'Repeating="{repeating}">' + "".join(
                f"<ItemRef ItemOID={quoteattr(oids.item(FORM, f.code))} OrderNumber=\"{n}\" Mandatory=\"No\"/>"
                for n, f in enumerate(group_fields, 1)) + "</ItemGroupDef>")
        for f in group_fields:
            out["itemdefs"].append(
                f"<ItemDef OID={quoteattr(oids.item(FORM, f.code))} Name={quoteattr(f.code)} "
                f'DataType="{ODM_TYPES[f.kind]}"><Question>{tt(f.label)}</Question>'
                + (f"<CodeListRef CodeListOID={quoteattr(oids.codelist(FORM, f.code))}/>" if f.choices else "")
                + "</ItemDef>")
            if f.choices:
                out["codelists"].append(
                    f"<CodeList OID={quoteattr(oids.codelist(FORM, f.code))} Name={quoteattr(f.code)} "
                    'DataType="text">' + "".join(f"<CodeListItem CodedValue={quoteattr(v)}><Decode>{tt(label)}"
                                                 "</Decode></CodeListItem>" for v, label in f.choices)
                    + "</CodeList>")
    out["formref"].append(f"<FormRef FormOID={quoteattr(oids.form(FORM))} OrderNumber=\"99\" Mandatory=\"No\"/>")
    return out


def odm_clinical(subjects: list[SubjectRegistry], staff: Staff, oids: Any, first_visit: str) -> Iterator[str]:
    """ClinicalData of a Snapshot: per patient, the form ``F.ULCER_REGISTRY`` in the first visit's event, an
    ItemGroupData per ulcer (its repeat key the ulcer's number) and the treated-ulcer query's; no empty value."""
    yield f"<ClinicalData StudyOID={quoteattr(oids.study)} MetaDataVersionOID={quoteattr(oids.mdv)}>\n"
    for s in subjects:
        yield (f"<SubjectData SubjectKey={quoteattr(s.subject_id)}><SiteRef LocationOID="
               f"{quoteattr(oids.location(s.site))}/>"
               f"<StudyEventData StudyEventOID={quoteattr(oids.event(first_visit))}>"
               f"<FormData FormOID={quoteattr(oids.form(FORM))}>")
        groups = [(ULCER_GROUP, str(u.number), ulcer_values(u, staff)) for u in s.ulcers]
        if s.treated_query is not None:
            groups.append((TREATED_GROUP, None, {f"TREATED_QUERY_{k}": v
                                                 for k, v in query_values(s.treated_query, staff).items()}))
        for g, repeat, values in groups:
            key = f" ItemGroupRepeatKey={quoteattr(repeat)}" if repeat else ""
            yield (f"<ItemGroupData ItemGroupOID={quoteattr(oids.group(FORM, g))}{key}>"
                   + "".join(f"<ItemData ItemOID={quoteattr(oids.item(FORM, code))} Value={quoteattr(_odm(v))}/>"
                             for code, v in values.items() if v is not None and v != "")
                   + "</ItemGroupData>")
        yield "</FormData></StudyEventData></SubjectData>\n"
    yield "</ClinicalData>\n"


# FHIR ---------------------------------------------------------------------------------------------------------

ULCER_SYSTEM = "urn:proapp:ulcer-registry"


def _id(*parts: str) -> str:
    """A FHIR id ([A-Za-z0-9-.], at most 64): stable for the same study, subject and ulcer or query."""
    return re.sub(r"[^a-z0-9.-]+", "-", "-".join(parts).lower())[:64]


def _url(study: str, kind: str, rid: str) -> str:
    return f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, f'proapp:{study}:{kind}:{rid}')}"


def fhir_entries(study: str, subjects: list[SubjectRegistry], staff: Staff, place: Callable[[UlcerRow], str],
                 created: datetime) -> list[dict[str, Any]]:
    """A Condition per ulcer (clinicalStatus active, resolved when the patient reported it healed, inactive when
    the team closed it; verificationStatus unconfirmed while a dispute is open, provisional until the patient
    confirms a team's note), its number, treated flag and source in the identifier and extensions; a Task per query
    (``requested`` while open, ``completed`` when resolved), ``focus`` the ulcer's Condition."""
    out = []
    for s in subjects:
        subject = {"identifier": {"system": f"urn:proapp:{study}:subject", "value": s.subject_id},
                   "display": s.subject_id}
        for u in s.ulcers:
            cid = _id("proapp", study, s.subject_id, "ulcer", str(u.number))
            clinical = {"closed": "inactive", "healed": "resolved"}.get(u.state, "active")
            verification = ("unconfirmed" if u.query is not None and u.query.is_open
                            else "provisional" if u.state == "awaiting_confirmation" else "confirmed")
            cond: dict[str, Any] = {
                "resourceType": "Condition", "id": cid,
                "identifier": [{"system": f"urn:proapp:{study}:ulcer", "value": f"{s.subject_id}.{u.number}"}],
                "extension": [{"url": f"{ULCER_SYSTEM}#treated", "valueBoolean": u.treated},
                              {"url": f"{ULCER_SYSTEM}#source", "valueCode": "team" if u.noted_by_team
                               else "patient"}],
                "clinicalStatus": {"coding": [{
                    "system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": clinical}]},
                "verificationStatus": {"coding": [{
                    "system": "http://terminology.hl7.org/CodeSystem/condition-ver-status", "code": verification}]},
                "code": {"coding": [{"system": ULCER_SYSTEM, "code": "digital-ulcer",
                                     "display": "Digital ulcer"}], "text": "Digital ulcer"},
                "bodySite": [{"coding": [{"system": f"{ULCER_SYSTEM}#place",
                                          "code": f"{u.hand}{u.finger}-{u.site}"}], "text": place(u)}],
                "subject": subject, "recordedDate": u.noted_on.isoformat(),
            }
            if u.state == "healed" and u.healed_on:
                cond["abatementDateTime"] = u.healed_on.isoformat()
            elif u.state == "closed" and u.closed_on:
                cond["abatementDateTime"] = u.closed_on.isoformat()
            who = staff(u.noted_by)
            if who:
                cond["recorder"] = {"identifier": {"system": f"urn:proapp:{study}:staff", "value": who},
                                    "display": who}
            else:
                cond["asserter"] = subject
            out.append({"fullUrl": _url(study, "ulcer", cid), "resource": cond})
        for q, focus in [(s.treated_query, None)] + [(u.query, u) for u in s.ulcers]:
            if q is None:
                continue
            tid = _id("proapp", study, s.subject_id, "query", q.id)
            task: dict[str, Any] = {
                "resourceType": "Task", "id": tid,
                "identifier": [{"system": f"urn:proapp:{study}:query", "value": f"{s.subject_id}.{q.id}"}],
                "status": "requested" if q.is_open else "completed", "intent": "order",
                "code": {"coding": [{"system": f"{ULCER_SYSTEM}#query", "code": q.kind}]},
                "description": dict(KINDS)[q.kind].en, "for": subject,
                "authoredOn": q.opened_on.isoformat(),
            }
            if focus is not None:
                task["focus"] = {"reference": _url(study, "ulcer", _id("proapp", study, s.subject_id, "ulcer",
                                                                       str(focus.number)))}
            if q.patient_answer:
                task["input"] = [{"type": {"text": "The patient's answer"}, "valueString": q.patient_answer}]
            if q.resolution:
                task["businessStatus"] = {"coding": [{"system": f"{ULCER_SYSTEM}#resolution",
                                                      "code": q.resolution}]}
                if q.resolved_at:
                    task["lastModified"] = iso(q.resolved_at)
                who = staff(q.resolved_by)
                if who:
                    task["owner"] = {"identifier": {"system": f"urn:proapp:{study}:staff", "value": who},
                                     "display": who}
            out.append({"fullUrl": _url(study, "query", tid), "resource": task})
    return out


def fhir_bundle(study: str, subjects: list[SubjectRegistry], staff: Staff, place: Callable[[UlcerRow], str],
                created: datetime) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "collection", "timestamp": iso(created),
            "entry": fhir_entries(study, subjects, staff, place, created)}


# REDCap -------------------------------------------------------------------------------------------------------

def redcap_name(code: str) -> str:
    """A field's REDCap variable: ``ureg_`` and its code in lower case (``QUERY_`` as ``q_``, ``TREATED_QUERY_`` as
    ``tq_``)."""
    lower = code.lower()
    if lower.startswith("treated_query_"):
        return "ureg_tq_" + lower.removeprefix("treated_query_")
    if lower.startswith("query_"):
        return "ureg_q_" + lower.removeprefix("query_")
    return "ureg_" + lower


def redcap_value(f: RegistryField, value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, datetime):
        return iso(value).replace("T", " ").removesuffix("Z")
    return str(_json(value))


def redcap_records(subjects: list[SubjectRegistry], staff: Staff, registry: Any,
                   event: str) -> list[dict[str, str]]:
    """REDCap's flat import records: a row per ulcer (the repeating instrument ``ulcer_registry``, its instance
    the ulcer's number) and the patient's ``ulcer_registry_check`` row (the treated-ulcer query) in the first
    visit's event. Import with ``overwriteBehavior=overwrite``: a value gone (a query resolved) is blank."""
    ulcer, treated, _query = fields(registry)
    out = []
    for s in subjects:
        q = {f"TREATED_QUERY_{k}": v for k, v in query_values(s.treated_query, staff).items()}
        out.append({"record_id": s.subject_id, "redcap_event_name": event, "redcap_repeat_instrument": "",
                    "redcap_repeat_instance": "", **{redcap_name(f.code): redcap_value(f, q[f.code])
                                                     for f in treated},
                    f"{REDCAP_CHECK_FORM}_complete": "2"})
        for u in s.ulcers:
            v = ulcer_values(u, staff)
            out.append({"record_id": s.subject_id, "redcap_event_name": event,
                        "redcap_repeat_instrument": REDCAP_FORM, "redcap_repeat_instance": str(u.number),
                        **{redcap_name(f.code): redcap_value(f, v[f.code]) for f in ulcer},
                        f"{REDCAP_FORM}_complete": "2"})
    return out
