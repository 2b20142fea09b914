"""REDCap: a study as a longitudinal REDCap project, and its responses as REDCap's flat import records.

The project: a data dictionary (REDCap's CSV, its 18 columns in REDCap's order), one arm, an event per visit, the
instrument-event mapping and the repeating instruments (the ulcer groups), in the JSON REDCap's API imports. A form
per instrument (``dlqi``, ``haq``...) with the response's facts (``<form>_resp_id``, ``_revision``, ``_version``,
``_lang``, ``_done_at``, ``_on_site``, ``_corr_src``, ``_vas_ctrl``, ``_mode``, ``_mode_wording``), the answers
and the derived scores; a repeating form per group of repeated questions, its instance the repeat (for an ulcer
followed until it heals, the ulcer's number). Every field is
``@READONLY``: the answers are the patient's and the scores proapp's (no ``calc``: REDCap cannot apply the
instruments' rules for missing answers), and a correction is made in proapp, with its signature, and imported again.

Names: an item's or score's variable is its code in lower case, a form the instrument's or group's code in lower
case; the study file renames any of them (``edc: redcap: {variables: {INSTRUMENT.CODE: name}, forms:
{INSTRUMENT: name, INSTRUMENT.GROUP: name}}``). ``problems`` says, at start-up, where a name breaks REDCap's rules
or two things would share one.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from proapp import csvfiles
from proapp.csvfiles import Verbatim
from proapp.export.data import Exported
from proapp.export.formats import ulcer_registry
from proapp.export.formats.common import Page, all_scores, current_answers, iso, removed, source_phrase
from proapp.instruments.schema import Instrument, Item, Text
from proapp.studies.schema import StudyDef

DICTIONARY_COLUMNS = (
    "Variable / Field Name", "Form Name", "Section Header", "Field Type", "Field Label",
    "Choices, Calculations, OR Slider Labels", "Field Note", "Text Validation Type OR Show Slider Number",
    "Text Validation Min", "Text Validation Max", "Identifier?", "Branching Logic (Show field only if...)",
    "Required Field?", "Custom Alignment", "Question Number (surveys only)", "Matrix Group Name", "Matrix Ranking?",
    "Field Annotation")
NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")
MAX_VARIABLE = 26            # REDCap's recommended longest variable name
MAX_FORM = 50
MAX_EVENT = 18               # REDCap keeps this much of an event's name in its unique name
RECORD_ID, SITE, PARTICIPANT = "record_id", "site", "participant"
SPECIAL = ("redcap_event_name", "redcap_repeat_instrument", "redcap_repeat_instance", "redcap_data_access_group")
READONLY = "@READONLY"
# The facts of a response on its instrument's form: variable suffix, label, REDCap type and validation
META = (("resp_id", Text(en="proapp response id", fr="Identifiant de la réponse dans proapp"), "text", "integer"),
        ("revision", Text(en="Revision (0 as completed, n after n corrections)",
                          fr="Révision (0 telle que remplie, n après n corrections)"), "text", "integer"),
        ("version", Text(en="Instrument version", fr="Version de l'instrument"), "text", ""),
        ("lang", Text(en="Language the patient answered in", fr="Langue des réponses du patient"), "text", ""),
        ("done_at", Text(en="Completed at (UTC)", fr="Rempli le (UTC)"), "text", "datetime_seconds_ymd"),
        ("on_site", Text(en="Completed on site", fr="Rempli sur place"), "yesno", ""),
        ("corr_src", Text(en="Where each correction comes from (item[repeat]: source)",
                          fr="Origine de chaque correction (item[répétition] : origine)"), "notes", ""),
        ("vas_ctrl", Text(en="How each visual analogue scale was marked (item[repeat]: line, or number without "
                             "JavaScript)",
                          fr="Comment chaque échelle visuelle analogique a été remplie (item[répétition] : ligne, "
                             "ou nombre sans JavaScript)"), "notes", ""),
        ("mode", Text(en="How the patient answered: web, voice_dtmf (call, keypad), voice_speech (call, speech), sms "
                         "(SMS replies); several joined by +",
                      fr="Comment le patient a répondu : web, voice_dtmf (appel, clavier), voice_speech (appel, "
                         "voix), sms (réponses par SMS) ; plusieurs joints par +"), "text", ""),
        ("mode_wording", Text(en="Wording version read aloud or sent by SMS (empty: the web page's)",
                              fr="Version du texte lu au téléphone ou envoyé par SMS (vide : celui de la page web)"),
         "text", ""))
TICKED = Text(en="Ticked", fr="Coché")
OLDER = Text(en="Asked in version {v} only.", fr="Posée dans la version {v} seulement.")


@dataclass
class Field:
    name: str
    form: str
    kind: str                               # REDCap field type
    label: Text
    choices: list[tuple[str, Text]] = field(default_factory=list)
    slider: tuple[Text, Text] | None = None
    validation: str = ""
    low: str = ""
    high: str = ""
    branching: str = ""
    note: Text | None = None
    section: Text | None = None
    annotation: str = READONLY
    code: str | None = None                 # the item or derived code it carries
    yes_no: bool = False                    # a Y/N choice, 1/0 in REDCap

    def export_names(self) -> list[str]:
        """The columns this field has in REDCap's records: a checkbox's ``name___1``."""
        return [f"{self.name}___1"] if self.kind == "checkbox" else [self.name]


@dataclass
class Form:
    name: str
    instrument: str
    group: str | None = None
    fields: list[Field] = field(default_factory=list)


def _lower(code: str) -> str:
    return code.lower()


def event_name(visit: str) -> str:
    """The event's name, and the unique name REDCap makes of it (lower case, at most 18 characters, ``_arm_1``)."""
    return re.sub(r"[^a-z0-9]+", "_", visit.lower()).strip("_")


def unique_event(visit: str) -> str:
    return f"{event_name(visit)[:MAX_EVENT].rstrip('_')}_arm_1"


def _versions(study: StudyDef, registry: Any, code: str) -> list[Instrument]:
    """The versions of an instrument the study's responses can be in, the study's own first (its wording and order
    rule), then the older ones, newest first."""
    current = registry.get(code, study.instruments[code].version)

    def key(inst: Instrument) -> tuple[int, ...]:
        return tuple(int(p) for p in inst.version.split("."))

    older = sorted((i for i in registry.all() if i.code == code and key(i) < key(current)), key=key, reverse=True)
    return [current, *older]


class Project:
    """The REDCap project of one study (names after the study file's renames)."""

    def __init__(self, study: StudyDef, registry: Any):
        self.study = study
        self.settings = study.edc.redcap
        self.forms: list[Form] = [Form(PARTICIPANT, "", None, [
            Field(RECORD_ID, PARTICIPANT, "text", Text(en="Subject ID", fr="Identifiant du sujet"), annotation=""),
            Field(SITE, PARTICIPANT, "text", Text(en="Site", fr="Centre"))])]
        self.by_instrument: dict[str, list[Form]] = {}
        self.renamed: set[str] = set()
        for code, use in study.instruments.items():
            self._instrument(code, _versions(study, registry, code), use.variant, set(use.features))
        self.registry_forms: list[Form] = []
        if ulcer_registry.study_has_registry(study, registry):
            self._ulcer_registry(registry)

    # Names ------------------------------------------------------------------------------------------------
    def form_name(self, inst: str, group: str | None = None) -> str:
        key = f"{inst}.{group}" if group else inst
        if key in self.settings.forms:
            self.renamed.add(f"forms.{key}")
        return self.settings.forms.get(key, _lower(group or inst))

    def variable(self, inst: str, code: str) -> str:
        key = f"{inst}.{code}"
        if key in self.settings.variables:
            self.renamed.add(f"variables.{key}")
        return self.settings.variables.get(key, _lower(code))

    # Building ---------------------------------------------------------------------------------------------
    def _instrument(self, code: str, versions: list[Instrument], variant: str | None, features: set[str]) -> None:
        current = versions[0]
        main = Form(self.form_name(code), code)
        groups = {g.code: Form(self.form_name(code, g.code), code, g.code) for v in versions for g in v.groups}
        main.fields.append(Field(f"{main.name}_intro", main.name, "descriptive", current.instructions,
                                 annotation=""))
        main.fields += [Field(f"{main.name}_{suffix}", main.name, kind, label, validation=validation)
                        for suffix, label, kind, validation in META]
        seen: set[str] = set()
        for inst in versions:
            asked = [i for i in inst.items if i.requires is None or i.requires in features]
            section = None
            for item in asked:
                if item.code in seen:
                    continue
                seen.add(item.code)
                form = groups[item.group] if item.group else main
                f = self._item_field(inst, item, form.name, variant or inst.default_variant)
                if item.section and item.section != section and item.section in inst.sections:
                    f.section = inst.sections[item.section].label
                section = item.section
                if inst is not current:
                    f.note = Text(en=OLDER.en.format(v=inst.version), fr=OLDER.fr.format(v=inst.version))
                form.fields.append(f)
        for inst in versions:
            for d in inst.derived:
                if d.code in seen:
                    continue
                seen.add(d.code)
                form = groups[d.group] if d.group else main
                kind = {"integer": "integer", "decimal": "number"}.get(d.type, "")
                form.fields.append(Field(
                    self.variable(code, d.code), form.name, "text", d.label, validation=kind,
                    low="" if d.min is None or not kind else f"{d.min:g}",
                    high="" if d.max is None or not kind else f"{d.max:g}", code=d.code))
        self.by_instrument[code] = [main, *groups.values()]
        self.forms += self.by_instrument[code]
        self._branching(code, versions)

    def _ulcer_registry(self, registry: Any) -> None:
        """The ulcer registry (the export's ``ulcers?format=redcap``): the repeating instrument ``ulcer_registry``
        (an instance per ulcer, its number) and ``ulcer_registry_check`` (the treated-ulcer query), in the first
        visit's event."""
        ulcer, treated, _query = ulcer_registry.fields(registry)
        for name, group_fields in ((ulcer_registry.REDCAP_FORM, ulcer), (ulcer_registry.REDCAP_CHECK_FORM, treated)):
            form = Form(name, "ULCER_REGISTRY", ulcer_registry.ULCER_GROUP if name == ulcer_registry.REDCAP_FORM
                        else None)
            for rf in group_fields:
                f = Field(ulcer_registry.redcap_name(rf.code), name, "text", rf.label)
                if rf.choices:
                    f.kind, f.choices = "radio", list(rf.choices)
                elif rf.kind == "boolean":
                    f.kind, f.yes_no = "yesno", True
                else:
                    f.validation = {"integer": "integer", "date": "date_ymd",
                                    "datetime": "datetime_seconds_ymd"}.get(rf.kind, "")
                form.fields.append(f)
            self.registry_forms.append(form)
        self.forms += self.registry_forms

    def _item_field(self, inst: Instrument, item: Item, form: str, variant: str | None) -> Field:
        f = Field(self.variable(inst.code, item.code), form, "text", item.shown(variant), code=item.code)
        if item.type == "choice":
            values = [o.value for o in item.option_list]
            if sorted(values) == ["N", "Y"]:
                f.kind, f.yes_no = "yesno", True
            else:
                f.kind, f.choices = "radio", [(o.value, o.label) for o in item.option_list]
        elif item.type == "check":
            f.kind, f.choices = "checkbox", [("1", TICKED)]
        elif item.type == "vas":
            assert item.anchors is not None
            f.kind, f.slider, f.validation = "slider", (item.anchors.low, item.anchors.high), "number"
        elif item.type == "date":
            f.validation = "date_ymd"
        return f

    def _branching(self, code: str, versions: list[Instrument]) -> None:
        """REDCap's branching logic from each item's ``show_if`` (and its group's)."""
        fields = {f.code: f for form in self.by_instrument[code] for f in form.fields if f.code}
        for inst in reversed(versions):          # the study's version has the last word
            groups = {g.code: g for g in inst.groups}
            for item in inst.items:
                if item.code not in fields:
                    continue
                conditions = dict(groups[item.group].show_if or {}) if item.group else {}
                conditions.update(item.show_if or {})
                fields[item.code].branching = " and ".join(
                    self._condition(fields[ref], value) for ref, value in conditions.items() if ref in fields)

    @staticmethod
    def _condition(ref: Field, value: str) -> str:
        if ref.kind == "checkbox":
            return f"[{ref.name}(1)] = '1'"
        return f"[{ref.name}] = '{encode(ref, value)}'"

    # What REDCap takes ------------------------------------------------------------------------------------
    def fields(self) -> Iterator[Field]:
        for form in self.forms:
            yield from form.fields

    def dictionary(self, language: str) -> str:
        """REDCap's data dictionary CSV (Project Setup, "Upload Data Dictionary", or the API's metadata import)."""
        out = io.StringIO()
        writer = csvfiles.writer(out)          # the wording's cells made safe; what REDCap reads as code, verbatim
        writer.writerow(DICTIONARY_COLUMNS)
        for f in self.fields():
            if f.slider:
                choices = f"{f.slider[0](language)} | | {f.slider[1](language)}"
            else:
                choices = " | ".join(f"{value}, {label(language)}" for value, label in f.choices)
            writer.writerow((f.name, f.form, f.section(language) if f.section else "", f.kind, f.label(language),
                             choices, f.note(language) if f.note else "", f.validation, Verbatim(f.low),
                             Verbatim(f.high), "", Verbatim(f.branching), "", "", "", "", "", Verbatim(f.annotation)))
        return out.getvalue()

    def events(self, language: str) -> list[dict[str, Any]]:
        return [{"event_name": event_name(v.code), "arm_num": 1, "day_offset": v.day,
                 "offset_min": v.window.before, "offset_max": v.window.after,
                 "unique_event_name": unique_event(v.code), "custom_event_label": v.label(language)}
                for v in self.study.all_visits()]

    def arms(self) -> list[dict[str, Any]]:
        return [{"arm_num": 1, "name": "Arm 1"}]

    def mapping(self) -> list[dict[str, Any]]:
        visits = self.study.all_visits()
        out = [{"arm_num": 1, "unique_event_name": unique_event(visits[0].code), "form": PARTICIPANT}]
        for v in visits:
            out += [{"arm_num": 1, "unique_event_name": unique_event(v.code), "form": form.name}
                    for code in self.study.forms_of(v.instruments) for form in self.by_instrument[code]]
        out += [{"arm_num": 1, "unique_event_name": unique_event(visits[0].code), "form": form.name}
                for form in self.registry_forms]
        return out

    def repeating(self) -> list[dict[str, Any]]:
        """The repeating instruments of each event (REDCap's ``repeatingFormsEvents``)."""
        first = unique_event(self.study.all_visits()[0].code)
        return [{"event_name": unique_event(v.code), "form_name": form.name, "custom_form_label": ""}
                for v in self.study.all_visits() for code in self.study.forms_of(v.instruments)
                for form in self.by_instrument[code] if form.group] + [
            {"event_name": first, "form_name": form.name, "custom_form_label": ""}
            for form in self.registry_forms if form.group]

    # Records ----------------------------------------------------------------------------------------------
    def participant(self, subject_id: str, site: str) -> dict[str, str]:
        first = unique_event(self.study.all_visits()[0].code)
        return {RECORD_ID: subject_id, "redcap_event_name": first, "redcap_repeat_instrument": "",
                "redcap_repeat_instance": "", SITE: site, f"{PARTICIPANT}_complete": "2"}

    def records(self, e: Exported, inst: Instrument) -> list[dict[str, str]]:
        """The rows of one response: its form's row, then a row per repeat of each group; every value a string,
        as REDCap's JSON has them. What a correction removed is a blank value, which REDCap applies with
        ``overwriteBehavior=overwrite`` (``normal`` keeps the old value: import corrections with ``overwrite``)."""
        main = self.by_instrument[e.instrument][0]
        by_code = {f.code: f for form in self.by_instrument[e.instrument] for f in form.fields if f.code}
        event = unique_event(e.visit)
        row: dict[str, str] = {RECORD_ID: e.subject_id, "redcap_event_name": event, "redcap_repeat_instrument": "",
                               "redcap_repeat_instance": ""}
        facts = (str(e.id), str(len(e.corrections)), e.version, "+".join(e.languages),
                 iso(e.completed_at).replace("T", " ").removesuffix("Z"), "1" if e.on_site else "0",
                 "; ".join(f"{c[0]}[{c[1]}]: {source_phrase(c) or 'not recorded'}" for c in e.corrections),
                 "; ".join(f"{code}[{rep}]: {how}" for (code, rep), how in sorted(e.entered_with.items())),
                 "+".join(e.modes), e.mode_wording or "")
        row.update({f"{main.name}_{suffix}": value for (suffix, *_), value in zip(META, facts, strict=True)})
        for f in main.fields:
            if f.kind == "checkbox" and inst_has(inst, f.code):
                row[f"{f.name}___1"] = "0"          # shown and left unticked: a REDCap checkbox says 0
        repeats: dict[tuple[str, int], dict[str, str]] = {}

        def target(f: Field, repeat: int | None) -> dict[str, str]:
            return row if f.form == main.name or not repeat else repeats.setdefault((f.form, repeat), {})

        for code, repeat, value, _at in current_answers(inst, e):
            f = by_code.get(code)
            if f is None or value is None:
                continue
            if f.kind == "checkbox":
                target(f, repeat)[f"{f.name}___1"] = "1" if value == "Y" else "0"
            else:
                target(f, repeat)[f.name] = encode(f, value)
        for code, repeat, value in all_scores(inst, e.current_scores):
            f = by_code.get(code)
            if f is not None and value is not None:
                target(f, repeat)[f.name] = _number(value)
        for _kind, code, repeat in removed(inst, e):
            f = by_code.get(code)
            if f is not None:
                target(f, repeat).update(dict.fromkeys(f.export_names(), "0" if f.kind == "checkbox" else ""))
        row[f"{main.name}_complete"] = "2"
        out = [row]
        for (form_name, rep), values in sorted(repeats.items()):
            out.append({RECORD_ID: e.subject_id, "redcap_event_name": event, "redcap_repeat_instrument": form_name,
                        "redcap_repeat_instance": str(rep), **values, f"{form_name}_complete": "2"})
        return out

    # Checks -----------------------------------------------------------------------------------------------
    def problems(self) -> list[str]:
        """Why REDCap would refuse this project, or a rename that names nothing: one line each."""
        out = []
        for key in sorted(self.settings.forms):
            if f"forms.{key}" not in self.renamed:
                out.append(f"edc.redcap.forms: {key} is not an instrument or group of this study")
        for key in sorted(self.settings.variables):
            if f"variables.{key}" not in self.renamed:
                out.append(f"edc.redcap.variables: {key} is not an item or score of this study")
        owners: dict[str, str] = {}          # variable -> what it carries
        form_owners: dict[str, str] = {}
        for form in self.forms:
            what = ".".join(p for p in (form.instrument, form.group) if p) or form.name
            if not NAME_RE.match(form.name) or len(form.name) > MAX_FORM:
                out.append(f"edc.redcap: the form name {form.name!r} ({what}) must be lower-case letters, digits "
                           f"and _, start with a letter, at most {MAX_FORM} characters")
            other = form_owners.setdefault(form.name, what)
            if other != what:
                out.append(f"edc.redcap: {other} and {what} would both be the form {form.name!r}")
            owners.setdefault(f"{form.name}_complete", f"{what} (its completion status)")
        for f in self.fields():
            what = f"{f.form}.{f.code or f.name}"
            if not NAME_RE.match(f.name) or len(f.name) > MAX_VARIABLE or f.name.endswith("_") or "__" in f.name:
                out.append(f"edc.redcap: the variable {f.name!r} ({what}) must be lower-case letters, digits and "
                           f"single _, start with a letter, at most {MAX_VARIABLE} characters")
            if f.name in SPECIAL or f.name.startswith("redcap_"):
                out.append(f"edc.redcap: the variable {f.name!r} ({what}) is a name REDCap keeps for itself")
            other = owners.setdefault(f.name, what)
            if other != what:
                out.append(f"edc.redcap: {other} and {what} would both be the variable {f.name!r}")
        events: dict[str, str] = {}
        for v in self.study.all_visits():
            other = events.setdefault(unique_event(v.code), v.code)
            if other != v.code:
                out.append(f"edc.redcap: the visits {other} and {v.code} would both be the event "
                           f"{unique_event(v.code)!r}")
        return out


def inst_has(inst: Instrument, code: str | None) -> bool:
    return any(i.code == code for i in inst.items)


def encode(f: Field, value: str) -> str:
    """An answer as REDCap stores it: Y/N as 1/0 for a yesno field; codes, numbers and dates as they are."""
    if f.yes_no:
        return {"Y": "1", "N": "0"}.get(value, value)
    return value


def _number(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, list):
        return " ".join(str(v) for v in value)
    return str(value)


def records(project: Project, items: Iterable[tuple[Exported, Instrument]]) -> Iterator[dict[str, str]]:
    """REDCap's flat import records for a page of responses: one row per (record, event, repeating form,
    instance), as REDCap imports them (a key twice in one import is refused or loses a row): the forms of one
    visit share their event's row, and each subject's participant form (``site``) is in the row of its first
    event."""
    rows: dict[tuple[str, str, str, str], dict[str, str]] = {}
    seen: set[str] = set()
    for e, inst in items:
        if e.subject_id not in seen:
            seen.add(e.subject_id)
            participant = project.participant(e.subject_id, e.site)
            rows.setdefault(_key(participant), {}).update(participant)
        for record in project.records(e, inst):
            rows.setdefault(_key(record), {}).update(record)
    yield from rows.values()


def _key(record: dict[str, str]) -> tuple[str, str, str, str]:
    return (record[RECORD_ID], record["redcap_event_name"], record["redcap_repeat_instrument"],
            record["redcap_repeat_instance"])


MEDIA_TYPES = ("application/json",)
ATTACHMENT = None


def page_chunks(page: Page, db: Session) -> Iterator[str]:
    """A page of responses as REDCap's JSON import records."""
    project = Project(page.study, page.registry)
    yield "["
    pairs = ((e, page.instrument(e)) for e in page.responses(db))
    for n, record in enumerate(records(project, pairs)):
        yield ("," if n else "") + json.dumps(record, ensure_ascii=False, separators=(",", ":"))
    yield "]"
