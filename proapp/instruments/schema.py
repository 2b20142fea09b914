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
    """Whether a language's wording is the licensed, validated text. ``flagged`` lists wording a clinical review
    found to differ from the licensed text: it keeps the language not validated until replaced and unflagged."""

    validated: bool
    note: str | None = None
    flagged: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _flagged_is_not_validated(self) -> LanguageStatus:
        if self.validated and self.flagged:
            raise ValueError("validated is true while the review flagged wording in this language: replace it "
                             "with the licensed text and remove the flags first")
        return self


class Option(_Strict):
    value: str = Field(pattern=r"^[A-Za-z0-9_]{1,16}$")
    label: Text


class Anchors(_Strict):
    low: Text
    high: Text


class Section(_Strict):
    label: Text


# What the questionnaire knows of the patient when it opens, that can change an item's wording: this is their first
# entry of the instrument (the diary's first week asks "since the injection"), ulcers they reported before (or
# their study team noted) are listed first, or the visit is the one before treatment (the study file's
# ``before_treatment`` visit: the tolerance checklist then asks about symptoms, not the treatment's effects), or the
# entry is the first that asks about the place where the fat was taken (``first_harvest_entry``: no completed entry
# of the patient answered an item of the instrument's ``fat_harvest_site`` part: "since the fat was taken").
Situation = Literal["first_entry", "known_ulcers", "before_treatment", "first_harvest_entry"]
# Where the repeats of a group come from: the patient's ulcers still open (followed until they heal) or those their
# study team noted and the patient has not confirmed yet. The repeat index is then the ulcer's number.
RepeatSource = Literal["followed_ulcers", "unconfirmed_ulcers"]


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
    # The wording in a situation (see Situation), instead of ``text``; the response records which one was read.
    text_when: dict[Situation, Text] | None = None
    # Where the item comes from when it differs from the instrument's source (a PRO-CTCAE item), and whether it is
    # a study-specific item (written for the study, not validated).
    source: str | None = None
    study_specific: bool = False
    # Shown only when the study enables this feature of the instrument (instruments.<code>.features).
    requires: str | None = None
    # A date item's earliest day: within the last month, or not before the day the ulcer was last reported open.
    earliest: Literal["month", "ulcer_last_open"] = "month"

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

    def shown(self, variant: str | None = None, situation: str | None = None) -> Text:
        """What the patient reads for this item, in both languages: the stem ("Are you able to:") and the text
        of the study's variant (the ADUSE pain scale asks about the finger ulcers) or of the situation the response
        recorded (the diary's first entry: "since the injection"). Exports say exactly this."""
        if situation and self.text_when and situation in self.text_when:
            text = self.text_when[situation]  # type: ignore[index]
        elif variant and self.text_variants and variant in self.text_variants:
            text = self.text_variants[variant]
        else:
            text = self.text
        if self.stem is None:
            return text
        return Text(en=f"{self.stem.en} {text.en}", fr=f"{self.stem.fr} {text.fr}")

    def text_for(self, language: str, variant: str | None = None, situation: str | None = None) -> str:
        if situation and self.text_when and situation in self.text_when:
            return self.text_when[situation](language)  # type: ignore[index]
        if variant and self.text_variants and variant in self.text_variants:
            return self.text_variants[variant](language)
        return self.text(language)

    def wording(self, situations: frozenset[str] | set[str]) -> str | None:
        """The situation whose wording the patient reads (the first of ``text_when`` that applies), or None."""
        return next((name for name in self.text_when or {} if name in situations), None)

    def option_label(self, value: str, language: str) -> str:
        """The label of a choice's option; ValueError for a value it does not have."""
        for opt in self.option_list:
            if opt.value == value:
                return opt.label(language)
        raise ValueError(f"{self.code}: {value!r} is not one of its options")

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
    """A repeating group. Asked (the patient adds repeats, "another one?" after each, up to ``max_repeats``) or,
    with ``repeats_from``, one repeat per ulcer the questionnaire knows of, its index the ulcer's number.
    ``label`` may hold ``{ulcer}``: the ulcer's hand, finger and place."""

    code: str = Field(pattern=CODE_RE)
    max_repeats: int = Field(default=50, ge=1, le=999)
    show_if: dict[str, str] | None = None
    label: Text
    more: Text | None = None                      # the "another one?" question of an asked group
    repeats_from: RepeatSource | None = None


class Derived(_Strict):
    code: str = Field(pattern=CODE_RE)
    type: Literal["integer", "decimal", "text"]
    label: Text
    min: float | None = None          # the published range of a number (checks alert rules against it)
    max: float | None = None
    group: str | None = None          # a value per repeat of this group (each ulcer's days to healing)
    source: str | None = None         # the rule it follows, when not the instrument's source


RemoteMode = Literal["voice", "sms"]


class RemoteItem(_Strict):
    """An item as read aloud or sent by SMS, where the page's wording does not fit: its own wording, and a date
    asked as a number of days ago (no calendar on a keypad)."""

    text: Text | None = None
    days_ago: bool = False


class Remote(_Strict):
    """The instrument asked without the web page (a voice call, SMS replies): another mode of administration, with
    its own wording version. Only choice items (each option a key: 1, 2, ...) and dates asked as days ago can be
    asked so; the file says which modes, and the study file which of those it allows."""

    version: str = Field(pattern=r"^\d+(\.\d+){0,2}-R\d+$")      # the web version, "-R", the remote wording's
    modes: list[RemoteMode] = Field(min_length=1)
    validated: bool = False
    note: str = Field(min_length=1)
    # Read (voice) or sent (SMS) before the first question instead of the page's instructions.
    instructions: Text | None = None
    items: dict[str, RemoteItem] = Field(default_factory=dict)


class Instrument(_Strict):
    code: str = Field(pattern=CODE_RE)
    version: str = Field(pattern=VERSION_RE)
    title: Text
    source: str = Field(min_length=1)
    copyright: str = Field(min_length=1)
    # What a study team must hold or do before using the instrument (licence, permission, none needed).
    licence: str = Field(min_length=1)
    show_copyright_on_every_screen: bool = False
    languages: dict[Literal["en", "fr"], LanguageStatus]
    estimated_minutes: int = Field(ge=1, le=120)
    instructions: Text
    # The title and the instructions in a situation (see Situation) instead of ``title`` and ``instructions``.
    title_when: dict[Situation, Text] | None = None
    instructions_when: dict[Situation, Text] | None = None
    # The instructions as read without JavaScript, when ``instructions`` speak of the line a script draws (a VAS
    # answered in its number box): shown first, replaced by ``instructions`` once the line is drawn.
    instructions_typed: Text | None = None
    option_sets: dict[str, list[Option]] = Field(default_factory=dict)
    sections: dict[str, Section] = Field(default_factory=dict)
    variants: dict[str, Text] = Field(default_factory=dict)
    default_variant: str | None = None
    # Optional parts a study switches on (instruments.<code>.features): items with ``requires`` are asked then only.
    features: dict[str, Text] = Field(default_factory=dict)
    items: list[Item] = Field(min_length=1)
    groups: list[Group] = Field(default_factory=list)
    derived: list[Derived] = Field(default_factory=list)
    remote: Remote | None = None

    def title_in(self, situations: frozenset[str] | set[str]) -> Text:
        """The title the patient reads in these situations (the checklist before treatment has its own)."""
        return next((t for name, t in (self.title_when or {}).items() if name in situations), self.title)

    def instructions_in(self, situations: frozenset[str] | set[str]) -> Text:
        """The instructions the patient reads in these situations."""
        return next((t for name, t in (self.instructions_when or {}).items() if name in situations),
                    self.instructions)

    def __hash__(self) -> int:
        """By code and version (the fields hold lists and dicts), so that functions of an instrument can be cached
        (``functools.lru_cache``: the questionnaire's screens); equality stays pydantic's, field by field."""
        return hash((self.code, self.version))

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
                if ref in by_code and by_code[ref].group not in (None, item.group):
                    raise ValueError(f"{where}.show_if: {ref} is in another repeating group")
            if item.requires and item.requires not in self.features:
                raise ValueError(f"{where}.requires: no feature named {item.requires!r}")
            if item.earliest != "month" and (item.type != "date" or not item.group):
                raise ValueError(f"{where}.earliest: only a date item of an ulcer's group has this limit")
            for name in item.text_variants or {}:
                if name not in self.variants:
                    raise ValueError(f"{where}.text_variants: no variant named {name!r}")
        for gidx, group in enumerate(self.groups):
            if not any(i.group == group.code for i in self.items):
                raise ValueError(f"groups.{gidx} ({group.code}): no item belongs to it")
            if group.repeats_from and group.more:
                raise ValueError(f"groups.{gidx} ({group.code}): its repeats come from {group.repeats_from}: "
                                 "no 'another one?' question")
            for ref, value in (group.show_if or {}).items():
                _check_condition(by_code, f"groups.{gidx} ({group.code})", ref, value)
        derived = [d.code for d in self.derived]
        for didx, d in enumerate(self.derived):
            if d.code in seen or derived.count(d.code) > 1:
                raise ValueError(f"derived.{didx} ({d.code}): the code is used twice")
            if d.group and d.group not in group_codes:
                raise ValueError(f"derived.{didx} ({d.code}).group: no group named {d.group!r}")
        if self.remote is not None:
            _check_remote(self)
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


def _check_remote(inst: Instrument) -> None:
    """Every item can be asked one at a time with keys or a number: choices, and dates asked as days ago."""
    remote = inst.remote
    assert remote is not None
    by_code = {i.code: i for i in inst.items}
    for code, spec in remote.items.items():
        if code not in by_code:
            raise ValueError(f"remote.items.{code}: no item named {code!r}")
        if spec.days_ago and by_code[code].type != "date":
            raise ValueError(f"remote.items.{code}.days_ago: only a date is asked as days ago")
    for item in inst.items:
        if item.type in ("check", "vas"):
            raise ValueError(f"remote: {item.code} is a {item.type}: it cannot be asked by voice or SMS")
        if item.type == "date" and not (item.code in remote.items and remote.items[item.code].days_ago
                                        and remote.items[item.code].text):
            raise ValueError(f"remote.items.{item.code}: a date is asked as days ago, with its own wording")
        if item.screen:
            raise ValueError(f"remote: {item.code} shares a screen: asked one question at a time it needs none")
        if item.type == "choice" and len(item.option_list) > 11:
            raise ValueError(f"remote: {item.code} has more than 11 answers: too many to read aloud")
