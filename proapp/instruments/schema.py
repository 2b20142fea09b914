"""The shape of an instrument data file, checked at start-up (pydantic), plus the cross-checks a schema can't say."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

CODE_RE = r"^[A-Z][A-Z0-9_]{0,39}$"
VERSION_RE = r"^\d+(\.\d+){0,2}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Text(_Strict):
    """A wording in both languages, side by side."""

    en: str = Field(min_length=1)
    fr: str = Field(min_length=1)

    def __call__(self, language: str) -> str:
        return self.fr if language == "fr" else self.en


class LanguageStatus(_Strict):
    validated: bool
    note: str | None = None


class Option(_Strict):
    value: str = Field(pattern=r"^[A-Za-z0-9_]{1,16}$")
    label: Text


class Anchors(_Strict):
    low: Text
    high: Text


class Section(_Strict):
    label: Text


class Item(_Strict):
    code: str = Field(pattern=CODE_RE)
    type: Literal["choice", "check", "vas", "date"]
    text: Text
    stem: Text | None = None
    options: list[Option] | str | None = None
    anchors: Anchors | None = None
    show_if: dict[str, str] | None = None
    screen: str | None = None
    group: str | None = None
    section: str | None = None
    role: str | None = None
    text_variants: dict[str, Text] | None = None

    @model_validator(mode="after")
    def _type_fields(self) -> Item:
        if self.type == "choice" and not self.options:
            raise ValueError("a choice item needs options")
        if self.type != "choice" and self.options:
            raise ValueError(f"a {self.type} item takes no options")
        if self.type == "vas" and self.anchors is None:
            raise ValueError("a vas item needs anchors (low and high)")
        if self.type != "vas" and self.anchors is not None:
            raise ValueError(f"a {self.type} item takes no anchors")
        return self

    def shown(self, variant: str | None = None) -> Text:
        """What the patient reads for this item, in both languages: the stem ("Are you able to:") and the text
        of the study's variant (the ADUSE pain scale asks about the finger ulcers). Exports say exactly this."""
        text = self.text_variants[variant] if variant and self.text_variants and variant in self.text_variants \
            else self.text
        if self.stem is None:
            return text
        return Text(en=f"{self.stem.en} {text.en}", fr=f"{self.stem.fr} {text.fr}")

    def text_for(self, language: str, variant: str | None = None) -> str:
        if variant and self.text_variants and variant in self.text_variants:
            return self.text_variants[variant](language)
        return self.text(language)

    @property
    def option_list(self) -> list[Option]:
        assert not isinstance(self.options, str), "option set references are resolved at load time"
        return list(self.options or [])

    def allowed_values(self) -> list[str]:
        if self.type == "choice":
            return [o.value for o in self.option_list]
        if self.type == "check":
            return ["Y"]
        if self.type == "vas":
            return [str(v) for v in range(101)]
        return []

    def check_value(self, value: str) -> None:
        """Raise ValueError (naming the item) unless ``value`` is in this item's dictionary."""
        if not isinstance(value, str):
            raise ValueError(f"{self.code}: value must be a string, not {type(value).__name__}")
        if self.type == "choice":
            if value not in self.allowed_values():
                raise ValueError(f"{self.code}: {value!r} is not one of {', '.join(self.allowed_values())}")
        elif self.type == "check":
            if value != "Y":
                raise ValueError(f"{self.code}: a ticked box is stored as 'Y', not {value!r}")
        elif self.type == "vas":
            if not re.fullmatch(r"0|[1-9][0-9]{0,2}", value) or int(value) > 100:
                raise ValueError(f"{self.code}: {value!r} is not a whole number from 0 to 100")
        elif self.type == "date":
            from datetime import date

            try:
                if not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", value):
                    raise ValueError
                date.fromisoformat(value)
            except ValueError as exc:
                raise ValueError(f"{self.code}: {value!r} is not a date (YYYY-MM-DD)") from exc


class Group(_Strict):
    code: str = Field(pattern=CODE_RE)
    max_repeats: int = Field(ge=1, le=50)
    show_if: dict[str, str] | None = None
    label: Text


class Derived(_Strict):
    code: str = Field(pattern=CODE_RE)
    type: Literal["integer", "decimal", "text"]
    label: Text
    min: float | None = None          # the published range of a number (checks alert rules against it)
    max: float | None = None


class Instrument(_Strict):
    code: str = Field(pattern=CODE_RE)
    version: str = Field(pattern=VERSION_RE)
    title: Text
    source: str = Field(min_length=1)
    copyright: str = Field(min_length=1)
    show_copyright_on_every_screen: bool = False
    languages: dict[Literal["en", "fr"], LanguageStatus]
    estimated_minutes: int = Field(ge=1, le=120)
    instructions: Text
    option_sets: dict[str, list[Option]] = Field(default_factory=dict)
    sections: dict[str, Section] = Field(default_factory=dict)
    variants: dict[str, Text] = Field(default_factory=dict)
    default_variant: str | None = None
    items: list[Item] = Field(min_length=1)
    groups: list[Group] = Field(default_factory=list)
    derived: list[Derived] = Field(default_factory=list)

    @field_validator("languages")
    @classmethod
    def _both_languages(cls, v: dict[str, LanguageStatus]) -> dict[str, LanguageStatus]:
        missing = {"en", "fr"} - set(v)
        if missing:
            raise ValueError(f"missing language status for {', '.join(sorted(missing))}")
        return v

    @model_validator(mode="before")
    @classmethod
    def _resolve_option_sets(cls, data: object) -> object:
        """Replace ``options: <set name>`` by the set's options, so every item carries its own list."""
        if not isinstance(data, dict):
            return data
        sets = data.get("option_sets") or {}
        items = data.get("items")
        if not isinstance(items, list) or not isinstance(sets, dict):
            return data
        resolved = []
        for i, item in enumerate(items):
            if isinstance(item, dict) and isinstance(item.get("options"), str):
                name = item["options"]
                if name not in sets:
                    raise ValueError(f"items.{i}.options: no option set named {name!r}")
                item = {**item, "options": sets[name]}
            resolved.append(item)
        return {**data, "items": resolved}

    @model_validator(mode="after")
    def _cross_checks(self) -> Instrument:
        codes = [i.code for i in self.items]
        seen: set[str] = set()
        for idx, code in enumerate(codes):
            if code in seen:
                raise ValueError(f"items.{idx}.code: {code} appears twice")
            seen.add(code)
        by_code = {i.code: i for i in self.items}
        group_codes = {g.code for g in self.groups}
        for idx, item in enumerate(self.items):
            where = f"items.{idx} ({item.code})"
            if item.type == "choice":
                values = [o.value for o in item.option_list]
                if len(set(values)) != len(values):
                    raise ValueError(f"{where}.options: a value appears twice")
            if item.group and item.group not in group_codes:
                raise ValueError(f"{where}.group: no group named {item.group!r}")
            if item.section and item.section not in self.sections:
                raise ValueError(f"{where}.section: no section named {item.section!r}")
            for ref, value in (item.show_if or {}).items():
                _check_condition(by_code, where, ref, value)
            for name in item.text_variants or {}:
                if name not in self.variants:
                    raise ValueError(f"{where}.text_variants: no variant named {name!r}")
        for gidx, group in enumerate(self.groups):
            if not any(i.group == group.code for i in self.items):
                raise ValueError(f"groups.{gidx} ({group.code}): no item belongs to it")
            for ref, value in (group.show_if or {}).items():
                _check_condition(by_code, f"groups.{gidx} ({group.code})", ref, value)
        if self.default_variant is not None and self.default_variant not in self.variants:
            raise ValueError(f"default_variant: no variant named {self.default_variant!r}")
        return self

    # Convenience for callers -------------------------------------------------------------------
    def item(self, code: str) -> Item:
        for item in self.items:
            if item.code == code:
                return item
        raise KeyError(code)

    def group(self, code: str) -> Group:
        for group in self.groups:
            if group.code == code:
                return group
        raise KeyError(code)

    @property
    def key(self) -> tuple[str, str]:
        return (self.code, self.version)


def _check_condition(by_code: dict[str, Item], where: str, ref: str, value: str) -> None:
    if ref not in by_code:
        raise ValueError(f"{where}.show_if: no item named {ref!r}")
    allowed = by_code[ref].allowed_values()
    if value not in allowed:
        raise ValueError(f"{where}.show_if: {value!r} is not a value of {ref}")
