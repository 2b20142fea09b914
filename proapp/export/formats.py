"""Serializers of exported responses: JSON, CSV, CDISC ODM 1.3.2 (clinical data and metadata) and FHIR R4.

ODM and FHIR text is written as it is produced (no document tree in memory), so a large pull streams."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from proapp.export.data import Exported
from proapp.instruments import Registry
from proapp.instruments.schema import Instrument, Item
from proapp.studies.schema import StudyDef


def iso(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def derived_values(inst: Instrument, scores: dict[str, Any] | None) -> dict[str, Any]:
    """The instrument's derived scores by their codes (DLQI_TOTAL, HAQ_DI ...), from the stored score keys."""
    out: dict[str, Any] = {}
    scores = scores or {}
    for d in inst.derived:
        key = d.code.lower()
        short = key.removeprefix(inst.code.lower() + "_")
        value = scores.get(key, scores.get(short))
        if isinstance(value, list):
            value = " ".join(str(v) for v in value)
        out[d.code] = value
    return out


def _grouped_answers(inst: Instrument, e: Exported) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for code, repeat, value, _at in e.effective():
        try:
            item = inst.item(code)
        except KeyError:
            continue
        if item.group:
            values = out.setdefault(code, [])
            while len(values) < repeat:
                values.append(None)
            values[repeat - 1] = value
        else:
            out[code] = value
    return out


# JSON -------------------------------------------------------------------------------------------------------

def json_item(e: Exported, inst: Instrument) -> dict[str, Any]:
    return {
        "id": e.id,
        "sequence": e.seq,
        "subject_id": e.subject_id,
        "site": e.site,
        "visit": e.visit,
        "window": {"target_day": e.due_on.isoformat(), "opens_on": e.opens_on.isoformat(),
                   "closes_on": e.closes_on.isoformat()},
        "instrument": {"code": e.instrument, "version": e.version},
        "language": e.language,
        "completed_at": iso(e.completed_at),
        "completed_on_site": e.on_site,
        "answers": _grouped_answers(inst, e),
        "scores": derived_values(inst, e.current_scores),
        "revision": len(e.corrections),
        "corrections": [{"item": c[0], "repeat": c[1], "old_value": c[2], "new_value": c[3], "reason": c[4],
                         "by": c[5], "at": iso(c[6])} for c in e.corrections],
    }


# CSV --------------------------------------------------------------------------------------------------------

CSV_COLUMNS = ("response_id", "sequence", "subject_id", "site", "visit", "instrument", "instrument_version",
               "language", "completed_at", "completed_on_site", "item_code", "repeat", "value", "item_label",
               "value_label", "answered_at", "original_value", "corrected_at", "corrected_by", "correction_reason")


def value_label(item: Item, value: str | None, lang: str) -> str:
    if value is None:
        return ""
    if item.type == "choice":
        for opt in item.option_list:
            if opt.value == value:
                return opt.label(lang)
    if item.type == "check":
        return "ticked" if lang == "en" else "coché"
    return value


def csv_rows(e: Exported, inst: Instrument, lang: str) -> Iterator[tuple[Any, ...]]:
    head = (e.id, e.seq, e.subject_id, e.site, e.visit, e.instrument, e.version, e.language, iso(e.completed_at),
            "yes" if e.on_site else "no")
    originals = {(c[0], c[1]): c for c in reversed(e.corrections)}      # the first correction holds the original
    latest = {(c[0], c[1]): c for c in e.corrections}
    for code, repeat, value, at in e.effective():
        try:
            item = inst.item(code)
        except KeyError:
            continue
        fix = latest.get((code, repeat))
        yield (*head, code, repeat, "" if value is None else value, item.text_for(lang),
               value_label(item, value, lang), iso(at),
               *(("" if originals[(code, repeat)][2] is None else originals[(code, repeat)][2], iso(fix[6]), fix[5],
                  fix[4]) if fix else ("", "", "", "")))


# CDISC ODM 1.3.2 --------------------------------------------------------------------------------------------

ODM_NS = "http://www.cdisc.org/ns/odm/v1.3"


class Oids:
    """Default OIDs, renamed by the study file's ``edc.odm.oids`` to match the EDC's study build."""

    def __init__(self, study: StudyDef):
        self.study_def = study
        self.renames = study.edc.odm.oids

    def __call__(self, default: str) -> str:
        return self.renames.get(default, default)

    @property
    def study(self) -> str:
        return self.study_def.edc.odm.study_oid or self(f"S.{self.study_def.code}")

    @property
    def mdv(self) -> str:
        d = self.study_def
        return d.edc.odm.metadata_version_oid or self(f"MDV.{d.code}.{d.version}")

    def event(self, visit: str) -> str:
        return self(f"SE.{visit}")

    def form(self, inst: str) -> str:
        return self(f"F.{inst}")

    def group(self, inst: str, group: str | None = None) -> str:
        return self(f"IG.{inst}.{group}" if group else f"IG.{inst}")

    def item(self, inst: str, item: str) -> str:
        return self(f"I.{inst}.{item}")

    def codelist(self, inst: str, item: str) -> str:
        return self(f"CL.{inst}.{item}")

    def location(self, site: str) -> str:
        return self(f"LOC.{site}")


def odm_header(file_oid: str, created: datetime, description: str) -> str:
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<ODM xmlns="{ODM_NS}" ODMVersion="1.3.2" FileType="Snapshot" '
            f'Granularity="All" FileOID={quoteattr(file_oid)} CreationDateTime="{iso(created)}" '
            f'Description={quoteattr(description)} Originator="proapp">\n')


def _attr(value: Any) -> str:
    return quoteattr(str(value))


def odm_clinical(responses: Iterable[Exported], study: StudyDef, registry: Registry) -> Iterator[str]:
    """ClinicalData: one SubjectData per run of responses of the same subject (the caller orders them by
    subject and visit), one StudyEventData per visit, one FormData per instrument with its AuditRecord."""
    oids = Oids(study)
    yield f"<ClinicalData StudyOID={_attr(oids.study)} MetaDataVersionOID={_attr(oids.mdv)}>\n"
    subject = event = None
    for e in responses:
        inst = registry.get(e.instrument, e.version)
        if (e.subject_id, e.site) != subject:
            if event is not None:
                yield "</StudyEventData>\n"
            if subject is not None:
                yield "</SubjectData>\n"
            subject, event = (e.subject_id, e.site), None
            yield (f"<SubjectData SubjectKey={_attr(e.subject_id)}><SiteRef "
                   f"LocationOID={_attr(oids.location(e.site))}/>\n")
        if e.visit != event:
            if event is not None:
                yield "</StudyEventData>\n"
            event = e.visit
            yield f"<StudyEventData StudyEventOID={_attr(oids.event(e.visit))}>\n"
        yield from _form(e, inst, oids)
    if event is not None:
        yield "</StudyEventData>\n"
    if subject is not None:
        yield "</SubjectData>\n"
    yield "</ClinicalData>\n"


def _form(e: Exported, inst: Instrument, oids: Oids) -> Iterator[str]:
    user = "USR.SITE" if e.on_site else "USR.PATIENT"
    parts = [f"<FormData FormOID={_attr(oids.form(e.instrument))}>",
             f"<AuditRecord><UserRef UserOID={_attr(oids(user))}/><LocationRef "
             f"LocationOID={_attr(oids.location(e.site))}/><DateTimeStamp>{iso(e.completed_at)}</DateTimeStamp>"
             f"<SourceID>proapp response {e.id}, {e.instrument} {e.version}, {e.language}</SourceID></AuditRecord>"]
    plain, repeats = [], {}
    fixes = {(c[0], c[1]): c for c in e.corrections}
    for code, repeat, value, _at in e.effective():
        try:
            item = inst.item(code)
        except KeyError:
            continue
        target = repeats.setdefault((item.group, repeat), []) if item.group else plain
        fix = fixes.get((code, repeat))
        audit = None
        if fix:
            audit = (f"<AuditRecord><UserRef UserOID={_attr(oids('USR.STAFF'))}/><LocationRef "
                     f"LocationOID={_attr(oids.location(e.site))}/><DateTimeStamp>{iso(fix[6])}</DateTimeStamp>"
                     f"<ReasonForChange>{escape(fix[4])}</ReasonForChange><SourceID>{escape(f'corrected by {fix[5]}')}"
                     "</SourceID></AuditRecord>")
        target.append(_item_data(oids.item(e.instrument, code), value, audit))
    if plain:
        parts.append(f"<ItemGroupData ItemGroupOID={_attr(oids.group(e.instrument))}>{''.join(plain)}</ItemGroupData>")
    for (group, repeat), items in sorted(repeats.items()):
        parts.append(f"<ItemGroupData ItemGroupOID={_attr(oids.group(e.instrument, group))}"
                     f' ItemGroupRepeatKey="{repeat}">{"".join(items)}</ItemGroupData>')
    derived = [_item_data(oids.item(e.instrument, code), value)
               for code, value in derived_values(inst, e.current_scores).items()]
    if derived:
        parts.append(f"<ItemGroupData ItemGroupOID={_attr(oids.group(e.instrument, 'SCORES'))}>{''.join(derived)}"
                     "</ItemGroupData>")
    parts.append("</FormData>\n")
    yield "".join(parts)


def _item_data(oid: str, value: Any, audit: str | None = None) -> str:
    if value is None:
        head = f'<ItemData ItemOID={_attr(oid)} IsNull="Yes"'
    else:
        if isinstance(value, bool):
            value = "Y" if value else "N"
        head = f"<ItemData ItemOID={_attr(oid)} Value={_attr(value)}"
    return f"{head}>{audit}</ItemData>" if audit else f"{head}/>"


ODM_TYPES = {"choice": "text", "check": "text", "vas": "integer", "date": "date"}
DERIVED_TYPES = {"integer": "integer", "decimal": "float", "text": "text"}


def _translated(text) -> str:
    return "".join(f'<TranslatedText xml:lang="{lang}">{escape(text(lang))}</TranslatedText>' for lang in ("en", "fr"))


def odm_metadata(study: StudyDef, registry: Registry, sites: list[tuple[str, str]], created: datetime) -> str:
    """Study, MetaDataVersion (visits, forms, item groups, items with FR/EN questions, code lists) and AdminData
    (the sites as Locations, the patient and site staff as Users): an EDC can be built from it."""
    oids = Oids(study)
    visits = study.all_visits()
    insts = [registry.get(code, use.version) for code, use in study.instruments.items()]
    out = [odm_header(f"proapp.metadata.{study.code}.{study.version}", created, f"{study.code} metadata"),
           f"<Study OID={_attr(oids.study)}><GlobalVariables><StudyName>{escape(study.code)}</StudyName>"
           f"<StudyDescription>{escape(study.title)}</StudyDescription>"
           f"<ProtocolName>{escape(study.registry_id or study.code)}</ProtocolName></GlobalVariables>",
           f"<MetaDataVersion OID={_attr(oids.mdv)} Name={_attr(f'{study.code} version {study.version}')}>",
           "<Protocol>"]
    out += [f'<StudyEventRef StudyEventOID={_attr(oids.event(v.code))} OrderNumber="{n}" Mandatory="Yes"/>'
            for n, v in enumerate(visits, 1)]
    out.append("</Protocol>")
    for v in visits:
        out.append(f"<StudyEventDef OID={_attr(oids.event(v.code))} Name={_attr(f'{v.code} {v.label.en}')} "
                   'Repeating="No" Type="Scheduled">')
        out += [f'<FormRef FormOID={_attr(oids.form(code))} OrderNumber="{n}" Mandatory="Yes"/>'
                for n, code in enumerate(v.instruments, 1)]
        out.append("</StudyEventDef>")
    for inst in insts:
        out.append(f"<FormDef OID={_attr(oids.form(inst.code))} Name={_attr(f'{inst.code} {inst.version}')} "
                   'Repeating="No">')
        refs = [oids.group(inst.code)] + [oids.group(inst.code, g.code) for g in inst.groups]
        if inst.derived:
            refs.append(oids.group(inst.code, "SCORES"))
        out += [f'<ItemGroupRef ItemGroupOID={_attr(r)} OrderNumber="{n}" Mandatory="No"/>'
                for n, r in enumerate(refs, 1)]
        out.append("</FormDef>")
    for inst in insts:
        groups = [(None, inst.code, "No")] + [(g.code, f"{inst.code} {g.code}", "Yes") for g in inst.groups]
        for group, name, repeating in groups:
            out.append(f"<ItemGroupDef OID={_attr(oids.group(inst.code, group))} Name={_attr(name)} "
                       f'Repeating="{repeating}">')
            out += [f'<ItemRef ItemOID={_attr(oids.item(inst.code, i.code))} OrderNumber="{n}" Mandatory="No"/>'
                    for n, i in enumerate([i for i in inst.items if i.group == group], 1)]
            out.append("</ItemGroupDef>")
        if inst.derived:
            out.append(f"<ItemGroupDef OID={_attr(oids.group(inst.code, 'SCORES'))} "
                       f'Name={_attr(f"{inst.code} derived scores")} Repeating="No">')
            out += [f'<ItemRef ItemOID={_attr(oids.item(inst.code, d.code))} OrderNumber="{n}" Mandatory="No" '
                    'Role="DERIVED"/>' for n, d in enumerate(inst.derived, 1)]
            out.append("</ItemGroupDef>")
    for inst in insts:
        for i in inst.items:
            out.append(f"<ItemDef OID={_attr(oids.item(inst.code, i.code))} Name={_attr(i.code)} "
                       f'DataType="{ODM_TYPES[i.type]}"><Question>{_translated(i.text)}</Question>')
            if i.type in ("choice", "check"):
                out.append(f"<CodeListRef CodeListOID={_attr(oids.codelist(inst.code, i.code))}/>")
            out.append("</ItemDef>")
        for d in inst.derived:
            out.append(f"<ItemDef OID={_attr(oids.item(inst.code, d.code))} Name={_attr(d.code)} "
                       f'DataType="{DERIVED_TYPES[d.type]}"><Question>{_translated(d.label)}</Question></ItemDef>')
    for inst in insts:
        for i in inst.items:
            if i.type not in ("choice", "check"):
                continue
            out.append(f"<CodeList OID={_attr(oids.codelist(inst.code, i.code))} Name={_attr(i.code)} "
                       'DataType="text">')
            if i.type == "check":
                out.append('<CodeListItem CodedValue="Y"><Decode><TranslatedText xml:lang="en">Ticked</TranslatedText>'
                           '<TranslatedText xml:lang="fr">Coché</TranslatedText></Decode></CodeListItem>')
            for opt in i.option_list:
                out.append(f"<CodeListItem CodedValue={_attr(opt.value)}><Decode>{_translated(opt.label)}</Decode>"
                           "</CodeListItem>")
            out.append("</CodeList>")
    out.append("</MetaDataVersion></Study>")
    out.append("<AdminData>")
    for user, name in (("USR.PATIENT", "The patient, on their own device"),
                       ("USR.SITE", "The patient, on a site device with the study team"),
                       ("USR.STAFF", "Study team staff correcting an answer (named in each AuditRecord)")):
        out.append(f"<User OID={_attr(oids(user))}><FullName>{escape(name)}</FullName></User>")
    for code, name in sites:
        out.append(f"<Location OID={_attr(oids.location(code))} Name={_attr(name)} LocationType=\"Site\">"
                   f"<MetaDataVersionRef StudyOID={_attr(oids.study)} MetaDataVersionOID={_attr(oids.mdv)} "
                   f'EffectiveDate="{created.date().isoformat()}"/></Location>')
    out.append("</AdminData>\n</ODM>\n")
    return "".join(out)


# FHIR R4 ----------------------------------------------------------------------------------------------------

def _coding_system(inst: Instrument, item: Item) -> str:
    return f"urn:proapp:instrument:{inst.code}:{inst.version}:{item.code}"


def canonical(public_url: str, inst: Instrument) -> str:
    return f"{public_url}/fhir/Questionnaire/{inst.code}"


def _fhir_answer(inst: Instrument, item: Item, value: str, lang: str) -> dict[str, Any]:
    if item.type == "choice":
        return {"valueCoding": {"system": _coding_system(inst, item), "code": value,
                                "display": value_label(item, value, lang)}}
    if item.type == "check":
        return {"valueBoolean": value == "Y"}
    if item.type == "vas":
        return {"valueInteger": int(value)}
    return {"valueDate": value}


def fhir_response(e: Exported, inst: Instrument, study: StudyDef, public_url: str) -> dict[str, Any]:
    """A QuestionnaireResponse; the repeating group (new ulcers) is a group item repeated per ulcer."""
    items: list[dict[str, Any]] = []
    groups: dict[str, dict[int, list[dict[str, Any]]]] = {}
    for code, repeat, value, _at in e.effective():
        try:
            item = inst.item(code)
        except KeyError:
            continue
        entry: dict[str, Any] = {"linkId": code, "text": item.text_for(e.language)}
        if value is not None:
            entry["answer"] = [_fhir_answer(inst, item, value, e.language)]
        if item.group:
            groups.setdefault(item.group, {}).setdefault(repeat, []).append(entry)
        else:
            items.append(entry)
    for group, repeats in groups.items():
        for repeat in sorted(repeats):
            items.append({"linkId": group, "item": repeats[repeat]})
    return {
        "resourceType": "QuestionnaireResponse",
        "id": f"proapp-{e.id}",
        "identifier": {"system": f"urn:proapp:{study.code}:response", "value": str(e.id)},
        "questionnaire": f"{canonical(public_url, inst)}|{inst.version}",
        "status": "amended" if e.corrections else "completed",
        "meta": {"versionId": str(len(e.corrections) + 1)},
        "subject": {"identifier": {"system": f"urn:proapp:{study.code}:subject", "value": e.subject_id},
                    "display": e.subject_id},
        "authored": iso(e.completed_at),
        "source": {"display": "site device" if e.on_site else "patient's own device"},
        "extension": [{"url": f"{public_url}/fhir/StructureDefinition/visit",
                       "valueString": e.visit}],
        "language": e.language,
        "item": items,
    }


FHIR_TYPES = {"choice": "choice", "check": "boolean", "vas": "integer", "date": "date"}


def fhir_questionnaire(inst: Instrument, public_url: str) -> dict[str, Any]:
    def item_def(i: Item) -> dict[str, Any]:
        d: dict[str, Any] = {"linkId": i.code, "text": i.text("en"), "type": FHIR_TYPES[i.type], "required": False,
                             "_text": {"extension": [{"url": "http://hl7.org/fhir/StructureDefinition/translation",
                                                      "extension": [{"url": "lang", "valueCode": "fr"},
                                                                    {"url": "content", "valueString": i.text("fr")}]}]}}
        if i.type == "choice":
            d["answerOption"] = [{"valueCoding": {"system": _coding_system(inst, i), "code": o.value,
                                                  "display": o.label("en")}} for o in i.option_list]
        conditions = dict(i.show_if or {})
        if i.group:
            conditions = {}
        if conditions:
            d["enableWhen"] = [_enable_when(inst, ref, value) for ref, value in conditions.items()]
            d["enableBehavior"] = "all"
        return d

    items = [item_def(i) for i in inst.items if not i.group]
    for g in inst.groups:
        group: dict[str, Any] = {"linkId": g.code, "text": g.label("en"), "type": "group", "repeats": True,
                                 "item": [item_def(i) for i in inst.items if i.group == g.code]}
        if g.show_if:
            group["enableWhen"] = [_enable_when(inst, ref, value) for ref, value in g.show_if.items()]
        items.append(group)
    return {"resourceType": "Questionnaire", "id": f"{inst.code}-{inst.version}".replace("_", "-"),
            "url": canonical(public_url, inst), "version": inst.version, "name": inst.code.replace("_", ""),
            "title": inst.title("en"), "status": "active", "copyright": inst.copyright, "item": items}


def _enable_when(inst: Instrument, ref: str, value: str) -> dict[str, Any]:
    item = inst.item(ref)
    if item.type == "check":
        return {"question": ref, "operator": "=", "answerBoolean": value == "Y"}
    return {"question": ref, "operator": "=", "answerCoding": {"system": _coding_system(inst, item), "code": value}}
