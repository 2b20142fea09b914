"""Loading and checking study files against the instruments they use."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import ValidationError

from proapp.instruments import Registry
from proapp.instruments.registry import _describe
from proapp.studies.schema import StudyDef

DATA_DIR = Path(__file__).parent / "data"


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


def load_study_file(path: Path, instruments: Registry) -> LoadedStudy:
    try:
        data = path.read_bytes()
        raw = yaml.safe_load(data.decode("utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise StudyFileError(f"study file {path.name}: cannot be read: {exc}") from exc
    if not isinstance(raw, dict):
        raise StudyFileError(f"study file {path.name}: expected a mapping at the top level")
    try:
        study = StudyDef.model_validate(raw)
    except ValidationError as exc:
        raise StudyFileError(f"study file {path.name}: {_describe(exc)}") from None
    for code, use in study.instruments.items():
        try:
            inst = instruments.get(code, use.version)
        except KeyError:
            raise StudyFileError(
                f"study file {path.name}: instruments.{code}: no instrument {code} version {use.version}") from None
        if use.variant is not None and use.variant not in inst.variants:
            raise StudyFileError(f"study file {path.name}: instruments.{code}.variant: "
                                 f"{code} {use.version} has no variant {use.variant!r}")
    return LoadedStudy(definition=study, sha256=hashlib.sha256(data).hexdigest(), filename=path.name)


def load_studies(directory: Path, instruments: Registry) -> StudyCatalog:
    files = sorted(directory.glob("*.yaml"))
    if not files:
        raise StudyFileError(f"no study files (*.yaml) in the folder {directory.name}")
    loaded = [load_study_file(p, instruments) for p in files]
    codes = [s.definition.code for s in loaded]
    for code in codes:
        if codes.count(code) > 1:
            raise StudyFileError(f"study {code} is defined in more than one file")
    return StudyCatalog(loaded)
