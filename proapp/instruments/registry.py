"""Loading instrument files, finding an instrument by code and version, and checking answers against it."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import yaml
from pydantic import ValidationError

from proapp.instruments.schema import Instrument
from proapp.instruments.scoring import SCORERS

DATA_DIR = Path(__file__).parent / "data"


class InstrumentFileError(ValueError):
    """An instrument file is malformed; the message names the file and the field."""


class Registry:
    """Every instrument version known to this process, keyed by (code, version)."""

    def __init__(self, instruments: Iterable[Instrument]):
        self._by_key: dict[tuple[str, str], Instrument] = {}
        for inst in instruments:
            if inst.key in self._by_key:
                raise InstrumentFileError(f"{inst.code} {inst.version} is defined twice")
            self._by_key[inst.key] = inst

    def get(self, code: str, version: str | None = None) -> Instrument:
        if version is not None:
            try:
                return self._by_key[(code, version)]
            except KeyError:
                raise KeyError(f"no instrument {code} version {version}") from None
        versions = [i for (c, _), i in self._by_key.items() if c == code]
        if not versions:
            raise KeyError(f"no instrument {code}")
        return max(versions, key=lambda i: tuple(int(p) for p in i.version.split(".")))

    def codes(self) -> list[str]:
        return sorted({c for c, _ in self._by_key})

    def all(self) -> list[Instrument]:
        return [self._by_key[k] for k in sorted(self._by_key)]

    def unvalidated(self) -> list[tuple[Instrument, str]]:
        """(instrument, language) pairs whose wording is not the licensed, validated text."""
        return [(i, lang) for i in self.all() for lang, st in sorted(i.languages.items()) if not st.validated]


def load_file(path: Path) -> Instrument:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise InstrumentFileError(f"instrument file {path.name}: cannot be read: {exc}") from exc
    if not isinstance(raw, dict):
        raise InstrumentFileError(f"instrument file {path.name}: expected a mapping at the top level")
    try:
        inst = Instrument.model_validate(raw)
    except ValidationError as exc:
        raise InstrumentFileError(f"instrument file {path.name}: {describe_validation_error(exc)}") from None
    expected = f"{inst.code}-{inst.version}.yaml"
    if path.name != expected:
        raise InstrumentFileError(f"instrument file {path.name}: code and version say it should be named {expected}")
    if inst.code not in SCORERS:
        raise InstrumentFileError(f"instrument file {path.name}: code: no scoring function for {inst.code}")
    return inst


def load_directory(directory: Path = DATA_DIR) -> Registry:
    files = sorted(directory.glob("*.yaml"))
    if not files:
        raise InstrumentFileError(f"no instrument files (*.yaml) in {directory.name}")
    return Registry(load_file(p) for p in files)


def describe_validation_error(exc: ValidationError) -> str:
    """First error as 'field.path: message' — the field a study team must fix."""
    parts = []
    for err in exc.errors()[:3]:
        loc = ".".join(str(p) for p in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}" if loc else msg)
    return "; ".join(parts)
