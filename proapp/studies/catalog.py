"""Loading and checking study files against the instruments they use."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from proapp.instruments import Registry
from proapp.instruments.registry import describe_validation_error
from proapp.studies.schema import Condition, StudyDef

DATA_DIR = Path(__file__).parent / "data"
# Numbers and addresses reserved for fiction (ARCEP's 01 99 00 and 06 39 98 ranges, the .example domain): the
# development and test default, so the shipped studies load without inventing a real hospital's number.
DEMO_CONTACTS = Path(__file__).parent / "demo-contacts.yaml"
CONTACT_FIELDS = ("phone", "on_call_email", "on_call_mobile")


class StudyFileError(ValueError):
    """A study file is malformed; the message names the file and the field."""


@dataclass(frozen=True)
class LoadedStudy:
    definition: StudyDef
    sha256: str
    filename: str


class StudyCatalog:
    def __init__(self, studies: list[LoadedStudy]):
        self._by_code = {s.definition.code: s for s in studies}

    def get(self, code: str) -> StudyDef:
        return self._by_code[code].definition

    def loaded(self, code: str) -> LoadedStudy:
        return self._by_code[code]

    def codes(self) -> list[str]:
        return sorted(self._by_code)

    def all(self) -> list[LoadedStudy]:
        return [self._by_code[c] for c in self.codes()]


def _read_yaml(path: Path, what: str) -> tuple[bytes, Any]:
    try:
        data = path.read_bytes()
        return data, yaml.safe_load(data.decode("utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise StudyFileError(f"{what} {path.name}: cannot be read: {exc}") from exc


def load_contacts(path: Path) -> dict[str, dict[str, dict[str, str]]]:
    """The site contacts file: ``{study code: {site code: {phone, on_call_email, on_call_mobile}}}``."""
    _data, raw = _read_yaml(path, "site contacts file")
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise StudyFileError(f"site contacts file {path.name}: expected study codes at the top level")
    for study, sites in raw.items():
        if not isinstance(sites, dict):
            raise StudyFileError(f"site contacts file {path.name}: {study}: expected site codes")
        for site, fields in sites.items():
            if not isinstance(fields, dict) or set(fields) - set(CONTACT_FIELDS) or \
                    not all(isinstance(v, str) for v in fields.values()):
                raise StudyFileError(f"site contacts file {path.name}: {study}.{site}: give only "
                                     f"{', '.join(CONTACT_FIELDS)}, as text")
    return raw


def _with_contacts(raw: dict[str, Any], contacts: dict[str, dict[str, str]]) -> dict[str, Any]:
    sites = raw.get("sites")
    if not isinstance(sites, list):
        return raw
    merged = [{**s, **contacts.get(s.get("code"), {})} if isinstance(s, dict) else s for s in sites]
    return {**raw, "sites": merged}


def load_study_file(path: Path, instruments: Registry,
                    contacts: dict[str, dict[str, dict[str, str]]] | None = None,
                    contacts_source: str = "site contacts file", strict_contacts: bool = True) -> LoadedStudy:
    data, raw = _read_yaml(path, "study file")
    if not isinstance(raw, dict):
        raise StudyFileError(f"study file {path.name}: expected a mapping at the top level")
    site_contacts = (contacts or {}).get(raw.get("code"), {})
    if site_contacts:
        raw = _with_contacts(raw, site_contacts)
        data += json.dumps(site_contacts, sort_keys=True).encode()     # a new number is a change to sync
    try:
        study = StudyDef.model_validate(raw)
    except ValidationError as exc:
        raise StudyFileError(f"study file {path.name}: {describe_validation_error(exc)}") from None
    unknown = sorted(set(site_contacts) - {s.code for s in study.sites})
    if unknown and strict_contacts:
        raise StudyFileError(f"{contacts_source}: {study.code}.{unknown[0]}: no such site in {path.name}")
    for code, use in study.instruments.items():
        try:
            inst = instruments.get(code, use.version)
        except KeyError:
            raise StudyFileError(
                f"study file {path.name}: instruments.{code}: no instrument {code} version {use.version}") from None
        if use.variant is not None and use.variant not in inst.variants:
            raise StudyFileError(f"study file {path.name}: instruments.{code}.variant: "
                                 f"{code} {use.version} has no variant {use.variant!r}")
        for feature in use.features:
            if feature not in inst.features:
                raise StudyFileError(f"study file {path.name}: instruments.{code}.features: "
                                     f"{code} {use.version} has no optional part {feature!r}")
        offered = set(inst.remote.modes) if inst.remote else set()
        if set(use.remote) - offered:
            raise StudyFileError(f"study file {path.name}: instruments.{code}.remote: {code} {use.version} has no "
                                 f"wording for {', '.join(sorted(set(use.remote) - offered))}")
        if use.remote_as is not None:
            other = study.instruments.get(use.remote_as)
            if other is None or use.remote_as == code or other.remote_as is not None:
                raise StudyFileError(f"study file {path.name}: instruments.{code}.remote_as: {use.remote_as!r} "
                                     "is not another instrument of the study answered in its own right")
    for rule in study.alerts.rules:
        for leaf in rule.when.leaves():
            problem = _condition_problem(study, instruments, leaf)
            if problem:
                raise StudyFileError(f"study file {path.name}: alerts.rules ({rule.code}): {problem}")
    return LoadedStudy(definition=study, sha256=hashlib.sha256(data).hexdigest(), filename=path.name)


def _condition_problem(study: StudyDef, instruments: Registry, leaf: Condition) -> str | None:
    """Why a comparison can never be checked or never be met against the instrument the study uses, or None."""
    kind, code, name = leaf.ref
    inst = instruments.get(code, study.instruments[code].version)
    low: float | None
    high: float | None
    if kind == "item":
        try:
            item = inst.item(name)
        except KeyError:
            return f"{code} {inst.version} has no item {name}"
        if item.group:
            return f"{code}.{name} is asked once per repeat: use a derived score instead"
        values = item.allowed_values()
        numeric = item.type == "vas"
        low, high = (0, 100) if numeric else (None, None)
        ordinal = bool(values) and all(v.isdigit() for v in values)     # a graded choice (PRO-CTCAE 0-4)
        if ordinal:
            low, high = min(map(int, values)), max(map(int, values))
    else:
        ordinal = False
        derived = next((d for d in inst.derived if d.code == name), None)
        if derived is None:
            return f"{code} {inst.version} has no derived score {name}"
        values, numeric = [], derived.type != "text"
        low, high = derived.min, derived.max
    for value in ([leaf.equals] if leaf.equals is not None else []) + list(leaf.one_of or []):
        if numeric or (values and value not in values):
            return f"{value!r} is not a value of {code}.{name}" + (f" ({', '.join(values)})" if values else "")
    limits = [v for v in (leaf.at_least, leaf.at_most) if v is not None]
    if limits and not numeric and not (kind == "item" and ordinal):
        return f"{code}.{name} is not a number: compare it with equals or in"
    if leaf.change_from and low is not None and high is not None:
        low, high = -(high - low), high - low
    for v in limits:
        if low is not None and high is not None and not low <= v <= high:
            return f"{v:g} is outside the possible range of {code}.{name} ({low:g} to {high:g})"
    return None


def load_studies(directory: Path, instruments: Registry, contacts: Path | None = None, *,
                 demo_contacts: bool = False) -> StudyCatalog:
    """Every study file of ``directory``, with the site contacts file merged in. ``demo_contacts``: the contacts
    are the shipped fictional ones, applied to whichever shipped study is there."""
    files = sorted(directory.glob("*.yaml"))
    if not files:
        raise StudyFileError(f"no study files (*.yaml) in the folder {directory.name}")
    site_contacts = load_contacts(contacts) if contacts else {}
    source = f"site contacts file {contacts.name}" if contacts else ""
    loaded = [load_study_file(p, instruments, site_contacts, source, strict_contacts=not demo_contacts)
              for p in files]
    for study in [] if demo_contacts else site_contacts:
        if study not in {s.definition.code for s in loaded}:
            raise StudyFileError(f"{source}: {study}: no such study")
    codes = [s.definition.code for s in loaded]
    for code in codes:
        if codes.count(code) > 1:
            raise StudyFileError(f"study {code} is defined in more than one file")
    return StudyCatalog(loaded)


@dataclass(frozen=True)
class UnvalidatedWording:
    """An instrument a study uses in a language whose wording is not the licensed, validated text."""

    study: str
    instrument: str
    version: str
    language: str
    accepted: bool              # the study file names it under instruments.<code>.accept_unvalidated

    def sentence(self) -> str:
        if self.accepted:
            return (f"study {self.study} uses {self.instrument} {self.version} in {self.language} with wording that "
                    "is not validated, accepted by the study file (accept_unvalidated)")
        return (f"study {self.study}: {self.instrument} {self.version} in {self.language} is not the validated, "
                f"licensed wording: replace it, or accept it by name in the study file "
                f"(instruments.{self.instrument}.accept_unvalidated: [{self.language}])")


def unvalidated_wording(study: StudyDef, instruments: Registry) -> list[UnvalidatedWording]:
    """Every (instrument, language) the study uses whose wording is not validated, accepted or not."""
    out = []
    for code, use in sorted(study.instruments.items()):
        inst = instruments.get(code, use.version)
        for lang, status in sorted(inst.languages.items()):
            if not status.validated:
                out.append(UnvalidatedWording(study.code, code, use.version, lang, lang in use.accept_unvalidated))
    return out


def missing_information(catalog: StudyCatalog) -> list[str]:
    """Studies production refuses because their file gives no information for the patients' information page."""
    return [f"study file {s.filename}: information: missing (the sponsor, purpose, legal basis, reference "
            "methodology, what is collected, retention, the data protection officer and the SMS provider, shown on "
            "the patients' information page)" for s in catalog.all() if s.definition.information is None]


def refused_wording(catalog: StudyCatalog, instruments: Registry) -> list[str]:
    """Why production refuses these studies: unvalidated wording that no study file accepts by name."""
    return [w.sentence() for s in catalog.all() for w in unvalidated_wording(s.definition, instruments)
            if not w.accepted]
