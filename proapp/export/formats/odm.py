"""CDISC ODM 1.3.2: the study's metadata (Study, MetaDataVersion, AdminData) and its clinical data, written as it
is produced (no document tree in memory), so a large pull streams."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from sqlalchemy.orm import Session

from proapp.export.data import Exported
from proapp.export.formats import common, ulcer_registry
from proapp.export.formats.common import Page, current_answers, derived_group_values, derived_values, iso, removed
from proapp.instruments import Registry
from proapp.instruments.schema import Instrument
from proapp.studies.schema import StudyDef

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
        """The MetaDataVersion's OID: given in the study file, or ``MDV.<study>.<hash>`` of what the metadata holds
        (visits and their forms, instruments with their versions and variants, the OID renames), so that it changes
        when the metadata does, not when a site, a phone or the push URL changes."""
        d = self.study_def
        return d.edc.odm.metadata_version_oid or self(f"MDV.{d.code}.{metadata_fingerprint(d)}")

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


def metadata_fingerprint(study: StudyDef) -> str:
    content = {"visits": [[v.code, v.label.en, v.label.fr, study.forms_of(v.instruments)] for v in study.all_visits()],
               "instruments": {c: [u.version, u.variant] for c, u in sorted(study.instruments.items())},
               "oids": dict(sorted(study.edc.odm.oids.items()))}
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:10]


def oid_problems(study: StudyDef, registry: Any) -> list[str]:
    """Why the study file's OIDs would make invalid ODM: a rename of an OID the study does not have (a typo),
    or two definitions of one kind given the same OID (the schema wants them unique). Checked at start-up."""
    oids = Oids(study)
    insts = [registry.get(code, use.version) for code, use in study.instruments.items()]
    kinds: dict[str, list[tuple[str, str]]] = {
        "StudyEventDef": [(f"SE.{v.code}", oids.event(v.code)) for v in study.all_visits()],
        "FormDef": [(f"F.{i.code}", oids.form(i.code)) for i in insts],
        "ItemGroupDef": [(f"IG.{i.code}", oids.group(i.code)) for i in insts]
        + [(f"IG.{i.code}.{g.code}", oids.group(i.code, g.code)) for i in insts for g in i.groups]
        + [(f"IG.{i.code}.SCORES", oids.group(i.code, "SCORES")) for i in insts if i.derived],
        "ItemDef": [(f"I.{i.code}.{it.code}", oids.item(i.code, it.code)) for i in insts for it in i.items]
        + [(f"I.{i.code}.{d.code}", oids.item(i.code, d.code)) for i in insts for d in i.derived],
        "CodeList": [(f"CL.{i.code}.{it.code}", oids.codelist(i.code, it.code)) for i in insts for it in i.items
                     if it.type in ("choice", "check")],
        "Location": [(f"LOC.{s.code}", oids.location(s.code)) for s in study.sites],
    }
    known = {default for pairs in kinds.values() for default, _oid in pairs} | {
        f"S.{study.code}", f"MDV.{study.code}.{metadata_fingerprint(study)}"}
    problems = [f"edc.odm.oids: {old} is not an OID of this study (they look like SE.W1, F.DLQI, I.DLQI.DLQI01)"
                for old in study.edc.odm.oids if old not in known]
    for kind, pairs in kinds.items():
        seen: dict[str, str] = {}
        for default, oid in pairs:
            if oid in seen:
                problems.append(f"edc.odm.oids: {seen[oid]} and {default} would both be the {kind} {oid} "
                                "(OIDs of one kind must differ)")
            seen.setdefault(oid, default)
    return problems


def _source(fix: tuple) -> str:
    """Who corrected, the prior value, their electronic signature (what it means, how they were identified), and
    where the correction comes from (the patient's request with its day and how, a transcription error, other)."""
    signed = f"; signed ({fix[8]}): {fix[7]}" if len(fix) > 8 and fix[7] else ""
    prior = "none" if fix[2] is None else fix[2]
    source = common.source_phrase(fix)
    return f"corrected by {fix[5]}; prior value: {prior}{signed}" + (f"; source: {source}" if source else "")


def file_oids(study: str, key_prefix: str, position: int, count: int) -> tuple[str, str | None]:
    """A page's FileOID and PriorFileOID. A page is named by the key and by where it ends among what the key was
    given (``upto-N``), so two keys (all sites, one site) never give two files one OID, a page pulled again is
    the same file, and each page names the one before it (the incremental series ODM chains with PriorFileOID).
    A page with nothing new is not in the series: ``.empty``, its prior the last page."""
    base = f"proapp.{study}.{key_prefix}"
    prior = f"{base}.upto-{position}" if position else None
    return (f"{base}.upto-{position + count}" if count else f"{base}.upto-{position}.empty"), prior


def odm_header(file_oid: str, prior: str | None, created: datetime, description: str,
               file_type: str = "Snapshot") -> str:
    prior_attr = f" PriorFileOID={quoteattr(prior)}" if prior else ""
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<ODM xmlns="{ODM_NS}" ODMVersion="1.3.2" FileType="{file_type}" '
            f'Granularity="All" FileOID={quoteattr(file_oid)}{prior_attr} CreationDateTime="{iso(created)}" '
            f'Description={quoteattr(description)} Originator="proapp">\n')


def _attr(value: Any) -> str:
    return quoteattr(str(value))


def odm_clinical(responses: Iterable[Exported], study: StudyDef, registry: Registry) -> Iterator[str]:
    """ClinicalData of a Transactional file: one SubjectData per run of responses of the same subject (the caller
    orders them by subject and visit), one StudyEventData per visit (both ``Upsert``), one FormData per response
    with its AuditRecord: ``Insert`` as completed, ``Update`` after a correction, where each corrected ItemData is an
    ``Update`` with the reason, who, when and the prior value in its AuditRecord (the others ``Upsert``)."""
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
            yield (f'<SubjectData SubjectKey={_attr(e.subject_id)} TransactionType="Upsert"><SiteRef '
                   f"LocationOID={_attr(oids.location(e.site))}/>\n")
        if e.visit != event:
            if event is not None:
                yield "</StudyEventData>\n"
            event = e.visit
            yield f'<StudyEventData StudyEventOID={_attr(oids.event(e.visit))} TransactionType="Upsert">\n'
        yield from _form(e, inst, oids)
    if event is not None:
        yield "</StudyEventData>\n"
    if subject is not None:
        yield "</SubjectData>\n"
    yield "</ClinicalData>\n"


def _form(e: Exported, inst: Instrument, oids: Oids) -> Iterator[str]:
    user = "USR.SITE" if e.on_site else "USR.PATIENT"
    form_tx, tx = ("Update", "Upsert") if e.corrections else ("Insert", "Insert")
    parts = [f'<FormData FormOID={_attr(oids.form(e.instrument))} TransactionType="{form_tx}">',
             f"<AuditRecord><UserRef UserOID={_attr(oids(user))}/><LocationRef "
             f"LocationOID={_attr(oids.location(e.site))}/><DateTimeStamp>{iso(e.completed_at)}</DateTimeStamp>"
             f"<SourceID>proapp response {e.id}, {e.instrument} {e.version}, {'+'.join(e.languages)}"
             f"{_modes(e)}{_wording(e)}"
             "</SourceID>"
             "</AuditRecord>"]
    plain, repeats = [], {}
    fixes = {(c[0], c[1]): c for c in e.corrections}
    for code, repeat, value, _at in current_answers(inst, e):
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
                     f"<ReasonForChange>{escape(fix[4])}</ReasonForChange><SourceID>{escape(_source(fix))}"
                     "</SourceID></AuditRecord>")
        target.append(_item_data(oids.item(e.instrument, code), value, "Update" if fix else tx, audit))
    # What a correction removed (an answer made meaningless, a score no longer computed) is said: a Remove.
    group_of = {d.code: d.group for d in inst.derived}
    gone_scores: dict[str, str] = {}
    for kind, code, repeat in removed(inst, e):
        try:
            group = inst.item(code).group if kind == "answer" else group_of[code]
        except KeyError:
            continue
        remove = _item_data(oids.item(e.instrument, code), None, "Remove")
        if kind == "score" and group is None:
            gone_scores[code] = remove
        else:
            (repeats.setdefault((group, repeat or 0), []) if group else plain).append(remove)
    if plain:
        parts.append(f'<ItemGroupData ItemGroupOID={_attr(oids.group(e.instrument))} TransactionType="{tx}">'
                     f"{''.join(plain)}</ItemGroupData>")
    # A group's derived values go with their repeat: a reported ulcer's number in the patient's registry and
    # whether it is new; a followed ulcer (its repeat key is the ulcer's number) its days to healing.
    per_repeat = derived_group_values(inst, e.current_scores)
    for (group, repeat), items in sorted(repeats.items()):
        items += [_item_data(oids.item(e.instrument, code), value, tx)
                  for code, value in per_repeat.get(group, {}).get(repeat, {}).items()]
        parts.append(f"<ItemGroupData ItemGroupOID={_attr(oids.group(e.instrument, group))}"
                     f' ItemGroupRepeatKey="{repeat}" TransactionType="{tx}">{"".join(items)}</ItemGroupData>')
    derived = [_item_data(oids.item(e.instrument, code), value, tx)
               for code, value in derived_values(inst, e.current_scores).items() if code not in gone_scores]
    derived += gone_scores.values()
    if derived:
        parts.append(f"<ItemGroupData ItemGroupOID={_attr(oids.group(e.instrument, 'SCORES'))}"
                     f' TransactionType="{tx}">{"".join(derived)}</ItemGroupData>')
    parts.append("</FormData>\n")
    yield "".join(parts)


def _modes(e: Exported) -> str:
    """How the answers were given, when not all on the web page (as FHIR says nothing for a web response):
    ", by sms+voice_dtmf"."""
    return "" if set(e.modes) <= {"web"} else f", by {'+'.join(e.modes)}"


def _wording(e: Exported) -> str:
    """The remote wording read aloud or sent ("remote wording 2.2-R1"), the wordings read, then each visual
    analogue scale's control ("PAIN entered with line")."""
    return ((f", remote wording {e.mode_wording}" if e.mode_wording else "") +
            "".join(f", {code} worded for {situation}" for code, situation in sorted(e.wording.items())) +
            "".join(f", {code}{f'[{rep}]' if rep else ''} entered with {control}"
                    for (code, rep), control in sorted(e.entered_with.items())))


def _item_data(oid: str, value: Any, transaction: str, audit: str | None = None) -> str:
    if transaction == "Remove":
        head = f'<ItemData ItemOID={_attr(oid)} TransactionType="Remove"'
    elif value is None or value == "":
        head = f'<ItemData ItemOID={_attr(oid)} TransactionType="{transaction}" IsNull="Yes"'
    else:
        if isinstance(value, bool):
            value = "Y" if value else "N"
        head = f'<ItemData ItemOID={_attr(oid)} TransactionType="{transaction}" Value={_attr(value)}'
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
    # The ulcer registry (ADUSE), a form of the first visit's event (the export's ulcers?format=odm)
    ulcers = ulcer_registry.odm_defs(oids, registry) if ulcer_registry.study_has_registry(study, registry) else {}
    out = [odm_header(f"proapp.metadata.{study.code}.{study.version}", None, created, f"{study.code} metadata"),
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
        # A form answered instead of one of the visit's by voice or SMS (PAIN_NRS for PAIN_VAS) is not mandatory.
        out += [f'<FormRef FormOID={_attr(oids.form(code))} OrderNumber="{n}" '
                f'Mandatory="{"Yes" if code in v.instruments else "No"}"/>'
                for n, code in enumerate(study.forms_of(v.instruments), 1)]
        out += ulcers.get("formref", []) if v is visits[0] else []
        out.append("</StudyEventDef>")
    for inst in insts:
        out.append(f"<FormDef OID={_attr(oids.form(inst.code))} Name={_attr(f'{inst.code} {inst.version}')} "
                   'Repeating="No">')
        refs = [oids.group(inst.code)] + [oids.group(inst.code, g.code) for g in inst.groups]
        if any(d.group is None for d in inst.derived):
            refs.append(oids.group(inst.code, "SCORES"))
        out += [f'<ItemGroupRef ItemGroupOID={_attr(r)} OrderNumber="{n}" Mandatory="No"/>'
                for n, r in enumerate(refs, 1)]
        out.append("</FormDef>")
    out += ulcers.get("formdef", [])
    for inst in insts:
        groups = [(None, inst.code, "No")] + [(g.code, f"{inst.code} {g.code}", "Yes") for g in inst.groups]
        for group, name, repeating in groups:
            out.append(f"<ItemGroupDef OID={_attr(oids.group(inst.code, group))} Name={_attr(name)} "
                       f'Repeating="{repeating}">')
            members = [i for i in inst.items if i.group == group]
            out += [f'<ItemRef ItemOID={_attr(oids.item(inst.code, i.code))} OrderNumber="{n}" Mandatory="No"/>'
                    for n, i in enumerate(members, 1)]
            if group is not None:
                out += [f'<ItemRef ItemOID={_attr(oids.item(inst.code, d.code))} OrderNumber="{n}" Mandatory="No" '
                        'Role="DERIVED"/>'
                        for n, d in enumerate([d for d in inst.derived if d.group == group], len(members) + 1)]
            out.append("</ItemGroupDef>")
        if any(d.group is None for d in inst.derived):
            out.append(f"<ItemGroupDef OID={_attr(oids.group(inst.code, 'SCORES'))} "
                       f'Name={_attr(f"{inst.code} derived scores")} Repeating="No">')
            out += [f'<ItemRef ItemOID={_attr(oids.item(inst.code, d.code))} OrderNumber="{n}" Mandatory="No" '
                    'Role="DERIVED"/>' for n, d in enumerate([d for d in inst.derived if d.group is None], 1)]
            out.append("</ItemGroupDef>")
    out += ulcers.get("groupdefs", [])
    for inst in insts:
        use = study.instruments[inst.code]
        variant = use.variant or inst.default_variant
        for i in inst.items:          # the Question is what the patient read (stem, the study's variant)
            # A wording that depends on the patient's situation (the diary's first entry: "since the injection")
            # is in the Description; each response's AuditRecord names the one its patient read.
            when = "".join(f'<TranslatedText xml:lang="{lang}">{escape(f"{name}: " + i.shown(variant, name)(lang))}'
                           "</TranslatedText>" for name in (i.text_when or {}) for lang in ("en", "fr"))
            out.append(f"<ItemDef OID={_attr(oids.item(inst.code, i.code))} Name={_attr(i.code)} "
                       f'DataType="{ODM_TYPES[i.type]}">' + (f"<Description>{when}</Description>" if when else "")
                       + f"<Question>{_translated(i.shown(variant))}</Question>")
            if i.type in ("choice", "check"):
                out.append(f"<CodeListRef CodeListOID={_attr(oids.codelist(inst.code, i.code))}/>")
            out.append("</ItemDef>")
        for d in inst.derived:
            out.append(f"<ItemDef OID={_attr(oids.item(inst.code, d.code))} Name={_attr(d.code)} "
                       f'DataType="{DERIVED_TYPES[d.type]}"><Question>{_translated(d.label)}</Question></ItemDef>')
    out += ulcers.get("itemdefs", [])
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
    out += ulcers.get("codelists", [])
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


MEDIA_TYPES = ("application/xml", "application/vnd.cdisc.odm+xml")     # the second to a client that asks for it
ATTACHMENT = None


def page_chunks(page: Page, db: Session) -> Iterator[str]:
    """A page of responses as a transactional ODM file, by subject."""
    code = page.study.code
    yield odm_header(*file_oids(code, page.key_prefix, page.position, page.count), page.now,
                     f"{code} responses {page.position + 1}-{page.position + page.count}" if page.count else
                     f"{code} responses: none after {page.position}", file_type="Transactional")
    yield from odm_clinical(page.by_subject(db), page.study, page.registry)
    yield "</ODM>\n"
