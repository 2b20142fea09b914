"""The shape of a study file: sites, visits with their windows, and the instruments at each visit."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from functools import cached_property
from typing import Literal, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from proapp.instruments.schema import Text
from proapp.mail import ADDRESS_RE

SITE_CODE_RE = r"^[A-Z]{2,6}$"
VISIT_CODE_RE = r"^[A-Z][A-Z0-9_]{0,19}$"
E164_RE = r"^\+[1-9][0-9]{6,14}$"
EMAIL_RE = ADDRESS_RE             # one plain address (proapp.mail)
SEVERITIES = ("urgent", "same_day", "review")
# The instruments' optional part about the place where the patient's fat was taken (autologous cells): the study's
# ``fat_harvest`` follow-up decides in which entries it is asked.
HARVEST_FEATURE = "fat_harvest_site"
Severity = Literal["urgent", "same_day", "review"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def check_timezone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{name!r} is not a known time zone (e.g. Europe/Paris)") from None
    if name not in available_timezones():
        raise ValueError(f"{name!r} is not a known time zone (e.g. Europe/Paris)")
    return name


class Window(_Strict):
    before: int = Field(ge=0, le=365)
    after: int = Field(ge=0, le=365)


class SiteDef(_Strict):
    """A site. ``phone`` is the number patients call (E.164); the on-call e-mail and mobile receive the alerts.
    The deploying team sets them in the study file or in the site contacts file (PROAPP_SITE_CONTACTS)."""

    code: str = Field(pattern=SITE_CODE_RE)
    name: str = Field(min_length=1, max_length=200)
    phone: str | None = Field(default=None, pattern=E164_RE)
    on_call_email: str | None = Field(default=None, pattern=EMAIL_RE, max_length=254)
    on_call_mobile: str | None = Field(default=None, pattern=E164_RE)
    timezone: str | None = None

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str | None) -> str | None:
        return None if v is None else check_timezone(v)


class InstrumentUse(_Strict):
    """An instrument a study uses. ``accept_unvalidated`` names the languages whose wording is not yet the licensed,
    validated text and that the sponsor nevertheless accepts for this study: production refuses any other."""

    version: str
    variant: str | None = None
    features: list[str] = Field(default_factory=list)     # the instrument's optional parts this study asks
    accept_unvalidated: list[Literal["en", "fr"]] = Field(default_factory=list)
    # The instrument file's ``screen`` groups (a paper page's items together) split, one question per screen as
    # before them; a category's checkboxes stay together, with the question before them.
    one_item_per_screen: bool = False
    # The modes in which patients may answer it without the web page (the instrument file's ``remote`` wording);
    # ``remote_as``: another instrument of the study answered instead in those modes (the pain VAS, a line to
    # touch, becomes a 0-10 numeric rating read aloud: a different measure, declared as such).
    remote: list[Literal["voice", "sms"]] = Field(default_factory=list)
    remote_as: str | None = None


class VisitDef(_Strict):
    code: str = Field(pattern=VISIT_CODE_RE)
    day: int = Field(ge=-365, le=3650)
    window: Window
    instruments: list[str] = Field(min_length=1)
    label: Text
    # The visit before the first dose: its questionnaires are worded for it (the instruments' ``before_treatment``
    # title and instructions) and alert rules' ``change_from: baseline`` compare with its answers.
    before_treatment: bool = False


class Series(_Strict):
    """Visits repeated every N days: ``code`` and ``label`` use ``{n}`` for the repeat number."""

    code: str
    label: Text
    from_: int = Field(alias="from", ge=0)
    to: int = Field(ge=0, le=520)
    every_days: int = Field(ge=1, le=365)
    window: Window
    instruments: list[str] = Field(min_length=1)

    @model_validator(mode="after")
    def _range(self) -> Self:
        if self.to < self.from_:
            raise ValueError("'to' must not be before 'from'")
        if "{n}" not in self.code:
            raise ValueError("code must contain {n}")
        return self

    def expand(self) -> list[VisitDef]:
        return [
            VisitDef(code=self.code.format(n=n), day=n * self.every_days, window=self.window,
                     instruments=self.instruments,
                     label=Text(en=self.label.en.format(n=n), fr=self.label.fr.format(n=n)))
            for n in range(self.from_, self.to + 1)
        ]


class Reminder(_Strict):
    """A reminder at the patient's SMS hour: some days after the invitation, or on the window's last day."""

    after_invitation_days: int | None = Field(default=None, ge=1, le=60)
    last_day: bool = False

    @model_validator(mode="after")
    def _one(self) -> Self:
        if (self.after_invitation_days is None) == (not self.last_day):
            raise ValueError("give either after_invitation_days or last_day: true")
        return self


class SmsRules(_Strict):
    """When reminders go. Default: two days after the invitation, and on the window's last day."""

    reminders: list[Reminder] = Field(
        default_factory=lambda: [Reminder(after_invitation_days=2), Reminder(last_day=True)], max_length=5)


class OdmSettings(_Strict):
    """OIDs in the CDISC ODM export. Defaults: S.<study>, MDV.<study>.<fingerprint of the metadata>, SE.<visit>,
    F.<instrument>, IG.<instrument>[.<group>], I.<instrument>.<item>, CL.<instrument>.<item>; ``oids`` renames any
    of them to match the EDC's study build (default OID -> EDC OID), checked at start-up."""

    study_oid: str | None = Field(default=None, pattern=r"^[A-Za-z0-9._-]{1,64}$")
    metadata_version_oid: str | None = Field(default=None, pattern=r"^[A-Za-z0-9._-]{1,64}$")
    oids: dict[str, str] = Field(default_factory=dict)

    @field_validator("oids")
    @classmethod
    def _oids(cls, v: dict[str, str]) -> dict[str, str]:
        for old, new in v.items():
            if not re.fullmatch(r"[A-Za-z0-9._-]{1,64}", new):
                raise ValueError(f"{old}: {new!r} is not an OID (letters, digits, . _ -)")
        return v


class PushSettings(_Strict):
    """POST each completed response to the EDC. The HMAC secret comes from the named environment variable."""

    url: str = Field(pattern=r"^https?://[^\s]{1,490}$")
    secret_env: str = Field(pattern=r"^PROAPP_[A-Z0-9_]{1,60}$")


class RedcapSettings(_Strict):
    """Names in the REDCap project (``format=redcap``). Defaults: a variable is the item's or score's code in
    lower case, a form the instrument's or group's; ``variables`` (``INSTRUMENT.CODE: name``) and ``forms``
    (``INSTRUMENT: name`` or ``INSTRUMENT.GROUP: name``) rename them, checked at start-up."""

    variables: dict[str, str] = Field(default_factory=dict)
    forms: dict[str, str] = Field(default_factory=dict)


class EdcSettings(_Strict):
    odm: OdmSettings = Field(default_factory=OdmSettings)
    redcap: RedcapSettings = Field(default_factory=RedcapSettings)
    push: PushSettings | None = None


class SmsProvider(_Strict):
    """Who sends the SMS, where it processes the numbers, and the safeguard of a transfer outside the EU."""

    name: str = Field(min_length=1, max_length=200)
    country: Text
    safeguard: Text


class Information(_Strict):
    """What the patient's information page says (GDPR articles 13 and 14), per study: who is responsible, why, on
    what legal basis and reference methodology, what is collected, who receives it, how long it is kept and whom to
    ask. ``version`` is the information sheet's version: the patient's agreement records it."""

    version: str = Field(pattern=r"^[0-9A-Za-z.\-]{1,40}$")
    sponsor: str = Field(min_length=1, max_length=300)
    purpose: Text
    legal_basis: Text
    methodology: str = Field(min_length=1, max_length=200)        # in France the CNIL's reference one, e.g. MR-001
    collected: Text
    retention: Text
    data_protection_officer: str = Field(min_length=1, max_length=300)
    sms_provider: SmsProvider


CorrectionSource = Literal["patient_request", "transcription_error", "other"]
CORRECTION_SOURCES: tuple[str, ...] = ("patient_request", "transcription_error", "other")


class CorrectionSettings(_Strict):
    """Which sources a staff correction of a patient's answer may have. A monitor expects answers to change only
    at the patient's documented request or for a transcription error on a paper form completed on site: list
    those two to forbid any other reason."""

    sources: list[CorrectionSource] = Field(default_factory=lambda: list(CORRECTION_SOURCES), min_length=1)


class ClosureSettings(_Strict):
    """What ``proapp study close`` does with the live data once the signed archive is written and verified:
    ``keep`` it (read-only in practice: the study takes no patient, no answer, no SMS) or ``remove`` the study's
    patients and everything recorded about them from the live tables (the audit trail stays: it is append-only).
    ``archive_years``: how long the sponsor keeps the archive (25 for a clinical trial of a medicinal product,
    Regulation (EU) No 536/2014 article 58), written in the archive."""

    live_data: Literal["keep", "remove"] = "keep"
    archive_years: int = Field(default=25, ge=1, le=100)


class FatHarvest(_Strict):
    """The follow-up of the place where the patient's fat was taken (a liposuction some days or weeks before the
    injection of their own cells): the items of the instruments' ``fat_harvest_site`` part are asked in the entries
    whose window overlaps the liposuction day and the ``follow_up_days`` after it. A patient whose liposuction date is
    not recorded yet is asked in every entry (and their page shows the team a to-do)."""

    follow_up_days: int = Field(ge=1, le=365)

    def followed(self, taken_on: date, timezone: str, opens_at: datetime, closes_at: datetime) -> bool:
        """Whether a window (UTC instants, closing excluded) overlaps the follow-up: from local midnight of the
        liposuction day to local midnight after its last day (``follow_up_days`` after it), in the patient's zone."""
        zone = ZoneInfo(timezone)
        start = datetime.combine(taken_on, datetime.min.time(), zone)
        end = datetime.combine(taken_on + timedelta(days=self.follow_up_days + 1), datetime.min.time(), zone)
        return opens_at < end and closes_at > start


class SeriesEntry(_Strict):
    series: Series


class Condition(_Strict):
    """When an alert rule is met: a comparison on one answer (``item``) or derived score (``score``), written
    ``INSTRUMENT.CODE``, optionally as a change from the patient's first (``baseline``) or last (``previous``)
    completed response to that instrument; or ``any`` / ``all`` of other conditions."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    item: str | None = Field(default=None, pattern=r"^[A-Z][A-Z0-9_]*\.[A-Z][A-Z0-9_]*$")
    score: str | None = Field(default=None, pattern=r"^[A-Z][A-Z0-9_]*\.[A-Z][A-Z0-9_]*$")
    equals: str | None = None
    one_of: list[str] | None = Field(default=None, alias="in", min_length=1)
    at_least: float | None = None
    at_most: float | None = None
    change_from: Literal["baseline", "previous"] | None = None
    # A change with nothing to compare with (no completed response before treatment, the visit before treatment
    # missed): the comparison is not met (``not_met``) or the rest of the rule decides alone (``met``: a severe
    # grade on treatment without a reference still reaches the team). The visit before treatment itself is never
    # compared with itself: there the comparison is not met.
    without_reference: Literal["not_met", "met"] = "not_met"
    any: list[Condition] | None = Field(default=None, min_length=1)
    all: list[Condition] | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _shape(self) -> Self:
        kinds = [k for k in ("item", "score", "any", "all") if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError("give one of item, score, any or all")
        compares = [k for k in ("equals", "one_of", "at_least", "at_most") if getattr(self, k) is not None]
        if kinds[0] in ("any", "all"):
            if compares or self.change_from:
                raise ValueError(f"{kinds[0]} takes a list of conditions and nothing else")
            return self
        if not compares:
            raise ValueError("give a comparison: equals, in, at_least or at_most")
        if len(compares) > 1 and set(compares) != {"at_least", "at_most"}:
            raise ValueError("give one comparison (at_least and at_most may go together)")
        if self.change_from and set(compares) - {"at_least", "at_most"}:
            raise ValueError("change_from compares numbers: use at_least or at_most")
        if self.without_reference == "met" and not self.change_from:
            raise ValueError("without_reference applies to a change (change_from)")
        if self.at_least is not None and self.at_most is not None and self.at_least > self.at_most:
            raise ValueError("at_least is above at_most: the rule could never be met")
        return self

    def leaves(self) -> Iterator[Condition]:
        """Every comparison in this condition."""
        if self.any or self.all:
            for child in self.any or self.all or []:
                yield from child.leaves()
        else:
            yield self

    @property
    def ref(self) -> tuple[str, str, str]:
        """("item" or "score", instrument code, item or derived code) of a comparison."""
        kind, ref = ("item", self.item) if self.item else ("score", self.score)
        assert ref is not None
        inst, _, code = ref.partition(".")
        return kind, inst, code


class AlertRule(_Strict):
    """``label``: the team's wording (queue, e-mails, exports). ``patient``: what the patient reads on the "call
    your team" page, in the first person, naming what they reported ("You told us that..."); required for the
    urgent and same-day rules, which patients see."""

    code: str = Field(pattern=r"^[A-Z][A-Z0-9_]{1,39}$")
    label: Text
    patient: Text | None = None
    severity: Severity
    when: Condition

    @model_validator(mode="after")
    def _patient_wording(self) -> Self:
        if self.severity in ("urgent", "same_day") and self.patient is None:
            raise ValueError(f"{self.code}: an {self.severity} rule is shown to the patient: give its patient "
                             "wording (patient: {en: ..., fr: ...})")
        return self

    def instruments(self) -> set[str]:
        return {leaf.ref[1] for leaf in self.when.leaves()}


class AlertSettings(_Strict):
    """Safety signals: the rules, how long an alert may stay unacknowledged before it is escalated (hours, per
    severity), how many escalations at most, and the emergency numbers patients are given for out of hours."""

    escalation_hours: dict[Severity, int] = Field(
        default_factory=lambda: {"urgent": 1, "same_day": 4, "review": 72})
    max_escalations: int = Field(default=3, ge=0, le=10)
    emergency_numbers: list[str] = Field(default_factory=lambda: ["15", "112"], min_length=1, max_length=3)
    # France: 114 takes emergency calls by text message (deaf, hard of hearing or speech-impaired people); 116 117
    # the on-call doctor at night and at the weekend for care that cannot wait but is not an emergency.
    emergency_text_number: str | None = Field(default="114", pattern=r"^[0-9]{2,4}$")
    out_of_hours_number: str | None = Field(default="116 117", pattern=r"^[0-9]{2,4}( ?[0-9]{2,4})?$")
    rules: list[AlertRule] = Field(default_factory=list)

    @field_validator("escalation_hours")
    @classmethod
    def _hours(cls, v: dict[str, int]) -> dict[str, int]:
        missing = set(SEVERITIES) - set(v)
        if missing:
            raise ValueError(f"give the hours for {', '.join(sorted(missing))}")
        for severity, hours in v.items():
            if not 1 <= hours <= 720:
                raise ValueError(f"{severity}: {hours} is not a number of hours from 1 to 720")
        return v

    @field_validator("emergency_numbers")
    @classmethod
    def _numbers(cls, v: list[str]) -> list[str]:
        for number in v:
            if not re.fullmatch(r"[0-9]{2,4}", number):
                raise ValueError(f"{number!r} is not a short emergency number (e.g. 15, 112)")
        return v

    def rule(self, code: str) -> AlertRule:
        return next(r for r in self.rules if r.code == code)


class StudyDef(_Strict):
    code: str = Field(pattern=r"^[A-Z][A-Z0-9-]{1,39}$")
    version: str = Field(pattern=r"^[0-9A-Za-z.\-]{1,40}$")
    title: str = Field(min_length=1, max_length=300)
    title_fr: str | None = Field(default=None, min_length=1, max_length=300)    # the title on French pages
    registry_id: str | None = None
    subject_id_pattern: str
    anchor: Text
    default_timezone: str = "Europe/Paris"
    sites: list[SiteDef] = Field(min_length=1)
    instruments: dict[str, InstrumentUse] = Field(min_length=1)
    visits: list[VisitDef | SeriesEntry] = Field(min_length=1)
    sms: SmsRules = Field(default_factory=SmsRules)
    edc: EdcSettings = Field(default_factory=EdcSettings)
    alerts: AlertSettings = Field(default_factory=AlertSettings)
    information: Information | None = None      # required in production (the patient's information page)
    corrections: CorrectionSettings = Field(default_factory=CorrectionSettings)
    closure: ClosureSettings = Field(default_factory=ClosureSettings)
    # The liposuction's follow-up (autologous cells: ADUSE); requires an instrument asking about the harvest site.
    fat_harvest: FatHarvest | None = None

    @field_validator("default_timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        return check_timezone(v)

    @field_validator("subject_id_pattern")
    @classmethod
    def _pattern(cls, v: str) -> str:
        if "{site}" not in v:
            raise ValueError("must contain {site}, replaced by the site code")
        try:
            re.compile(v.replace("{site}", "SITE"))
        except re.error as exc:
            raise ValueError(f"not a valid regular expression: {exc}") from None
        return v

    @model_validator(mode="after")
    def _cross_checks(self) -> Self:
        seen: set[str] = set()
        for i, site in enumerate(self.sites):
            if site.code in seen:
                raise ValueError(f"sites.{i}.code: {site.code} appears twice")
            seen.add(site.code)
        rules: set[str] = set()
        for rule in self.alerts.rules:
            if rule.code in rules:
                raise ValueError(f"alerts.rules: rule code {rule.code} appears twice")
            rules.add(rule.code)
            for inst in rule.instruments():
                if inst not in self.instruments:
                    raise ValueError(f"alerts.rules ({rule.code}): {inst} is not listed under instruments")
        if self.alerts.rules:
            for site in self.sites:
                if not site.phone:
                    raise ValueError(
                        f"study {self.code}, site {site.code}: no phone number, and the study's alert rules tell "
                        "patients to call their site (set it in the study file or the site contacts file, "
                        "PROAPP_SITE_CONTACTS)")
        codes: set[str] = set()
        for visit in self.all_visits():
            if visit.code in codes:
                raise ValueError(f"visits: visit code {visit.code} appears twice")
            codes.add(visit.code)
            for inst in visit.instruments:
                if inst not in self.instruments:
                    raise ValueError(f"visits ({visit.code}).instruments: {inst} is not listed under instruments")
        if self.fat_harvest is not None and not any(HARVEST_FEATURE in use.features
                                                    for use in self.instruments.values()):
            raise ValueError(f"fat_harvest: no instrument asks about the harvest site (features: [{HARVEST_FEATURE}] "
                             "under instruments): nothing would follow it")
        before = [v.code for v in self.all_visits() if v.before_treatment]
        if len(before) > 1:
            raise ValueError(f"visits: one visit before treatment at most ({', '.join(before)})")
        return self

    @cached_property
    def visit_before_treatment(self) -> str | None:
        """The code of the visit before the first dose, when the study file names one (asked by every question
        page: computed once per loaded study file)."""
        return next((v.code for v in self.all_visits() if v.before_treatment), None)

    def title_for(self, language: str) -> str:
        return self.title_fr if language == "fr" and self.title_fr else self.title

    def all_visits(self) -> list[VisitDef]:
        out: list[VisitDef] = []
        for entry in self.visits:
            out.extend(entry.series.expand() if isinstance(entry, SeriesEntry) else [entry])
        return sorted(out, key=lambda v: (v.day - v.window.before, v.day, v.code))

    def forms_of(self, instruments: list[str] | tuple[str, ...]) -> list[str]:
        """A visit's instruments and those answered instead of them by voice or SMS (``remote_as``): every form
        the visit's data may hold."""
        out = list(instruments)
        for code in instruments:
            other = self.instruments[code].remote_as if code in self.instruments else None
            if other and other not in out:
                out.append(other)
        return out

    def remote_plan(self, instruments: list[str] | tuple[str, ...], mode: str) -> list[str] | None:
        """The instruments asked in ``mode`` ("voice", "sms") for a visit of these instruments (each replaced by its
        ``remote_as`` when it has one), or None when one of them cannot be asked so: the visit goes by web link."""
        plan = []
        for code in instruments:
            use = self.instruments[code]
            asked = use.remote_as or code
            if mode not in self.instruments[asked].remote:
                return None
            plan.append(asked)
        return plan

    def site(self, code: str) -> SiteDef:
        for site in self.sites:
            if site.code == code:
                return site
        raise KeyError(code)

    def subject_id_matches(self, subject_id: str, site_code: str) -> bool:
        pattern = self.subject_id_pattern.replace("{site}", re.escape(site_code))
        return re.fullmatch(pattern, subject_id) is not None

    def subject_id_example(self, site_code: str) -> str:
        return self.subject_id_pattern.replace("{site}", site_code).replace("[0-9]{3}", "001")
