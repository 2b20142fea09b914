"""FHIR R4: Questionnaire resources of the instruments, QuestionnaireResponse resources of the responses."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

from sqlalchemy.orm import Session

from proapp.export.data import Exported
from proapp.export.formats.common import Page, all_scores, correction_source, current_answers, iso, removed, shown
from proapp.export.formats.csv_format import value_label
from proapp.instruments.schema import Instrument, Item
from proapp.studies.schema import StudyDef


def _coding_system(inst: Instrument, item: Item) -> str:
    return f"urn:proapp:instrument:{inst.code}:{inst.version}:{item.code}"


# Each response's fullUrl in a Bundle: urn:uuid of a name-based UUID, the same for the same response and revision.
UUIDS = uuid.uuid5(uuid.NAMESPACE_URL, "urn:proapp:fhir")
DERIVED_SYSTEM = "urn:proapp:derived"


def questionnaire_name(inst: Instrument, variant: str | None) -> str:
    """The Questionnaire's name in its canonical URL: the instrument's code, with the study's variant of the wording
    when it is not the instrument's default (ADUSE's pain scale about the finger ulcers is another Questionnaire)."""
    if variant is None or variant == inst.default_variant:
        return inst.code
    return f"{inst.code}-{variant.replace('_', '-')}"


def canonical(public_url: str, inst: Instrument, variant: str | None = None) -> str:
    """The canonical URL; it resolves (``GET`` with an API key of a study using the instrument; ``?version=``)."""
    return f"{public_url}/api/v1/fhir/Questionnaire/{questionnaire_name(inst, variant)}"


def full_url(study: str, e: Exported) -> str:
    return f"urn:uuid:{uuid.uuid5(UUIDS, f'{study}:response:{e.id}:r{len(e.corrections)}')}"


def answer_mode_url(public_url: str) -> str:
    """The item extension saying how an answer was given (``valueCode``: web, voice_dtmf, voice_speech, sms)."""
    return f"{public_url}/fhir/StructureDefinition/answer-mode"


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
    use = study.instruments.get(inst.code)
    variant = (use.variant if use else None) or inst.default_variant
    remote = e.modes != ["web"]
    for code, repeat, value, _at in current_answers(inst, e):
        try:
            item = inst.item(code)
        except KeyError:
            continue
        # The wording the patient read, in the language they read it in (they may switch language midway): that
        # language on the item, with FHIR's own extension for an element's language.
        lang = e.language_of(code, repeat)
        entry: dict[str, Any] = {"linkId": code, "text": shown(item, e, variant)(lang)}
        extensions = []
        if lang != e.language:
            extensions.append({"url": "http://hl7.org/fhir/StructureDefinition/language", "valueCode": lang})
        # How the answer was given, on every item of a response answered (wholly or partly) by voice or SMS; a
        # response answered on the web page alone carries none (absent: the web page).
        mode = e.answer_modes.get((code, repeat))
        if remote and mode is not None:
            extensions.append({"url": answer_mode_url(public_url), "valueCode": mode})
        if extensions:
            entry["extension"] = extensions
        if value is not None:
            entry["answer"] = [_fhir_answer(inst, item, value, lang)]
            control = e.entered_with.get((code, repeat))
            if control is not None:          # a visual analogue scale's control: the line, or the number box
                entry["answer"][0]["extension"] = [{"url": f"{public_url}/fhir/StructureDefinition/entered-with",
                                                    "valueCode": control}]
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
        "questionnaire": f"{canonical(public_url, inst, variant)}|{inst.version}",
        "status": "amended" if e.corrections else "completed",
        "meta": {"versionId": str(len(e.corrections) + 1)},
        "subject": {"identifier": {"system": f"urn:proapp:{study.code}:subject", "value": e.subject_id},
                    "display": e.subject_id},
        "authored": iso(e.completed_at),
        "source": {"display": "site device" if e.on_site else "patient's own device"},
        "extension": [{"url": f"{public_url}/fhir/StructureDefinition/visit",
                       "valueString": e.visit},
                      # The remote wording the questions were read aloud or sent by SMS with ("2.2-R1")
                      *([{"url": f"{public_url}/fhir/StructureDefinition/mode-wording",
                          "valueString": e.mode_wording}] if e.mode_wording else []),
                      *(_correction(public_url, c) for c in e.corrections)],
        "language": e.language,
        "item": items,
    }


def _correction(public_url: str, fix: tuple) -> dict[str, Any]:
    """A correction of the response as a complex extension: which answer, when, why, and its source (``source``:
    patient_request, transcription_error or other; the patient's request with ``requestedOn`` and
    ``requestMethod``). Absent parts (a correction recorded before sources) are left out, never empty."""
    kind, day, method = correction_source(fix)
    parts: list[dict[str, Any]] = [{"url": "item", "valueString": fix[0]}, {"url": "repeat", "valueInteger": fix[1]},
                                   {"url": "at", "valueDateTime": iso(fix[6])},
                                   {"url": "reason", "valueString": fix[4]}]
    parts += [{"url": "source", "valueCode": kind}] if kind else []
    parts += [{"url": "requestedOn", "valueDate": day}] if day else []
    parts += [{"url": "requestMethod", "valueCode": method}] if method else []
    return {"url": f"{public_url}/fhir/StructureDefinition/correction", "extension": parts}


def observation_id(e: Exported, code: str, repeat: int | None) -> str:
    """The Observation's id, the same in every revision of the response: (response, score, ulcer or report)."""
    return f"proapp-{e.id}-{code.replace('_', '-').lower()}" + ("" if repeat is None else f"-{repeat}")


def fhir_observations(e: Exported, inst: Instrument, study: StudyDef, response_url: str) -> list[dict[str, Any]]:
    """The derived scores the FHIR way: an Observation per score (and per ulcer for a value per ulcer) that is
    ``derivedFrom`` the QuestionnaireResponse, coded ``urn:proapp:derived`` with ``INSTRUMENT.CODE``; a score that
    could not be computed (too many answers missing) is left out, as in the other formats. Each has an ``id`` and
    ``identifier`` stable across revisions, so a receiver matches a corrected value (status ``amended``) to the one
    it replaces; a value a correction removed comes once more as ``entered-in-error``, without a value."""
    subject = {"identifier": {"system": f"urn:proapp:{study.code}:subject", "value": e.subject_id},
               "display": e.subject_id}
    types = {d.code: d for d in inst.derived}

    def observation(code: str, repeat: int | None, status: str) -> dict[str, Any]:
        d = types[code]
        obs: dict[str, Any] = {
            "resourceType": "Observation",
            "id": observation_id(e, code, repeat),
            "meta": {"versionId": str(len(e.corrections) + 1)},
            "identifier": [{"system": f"urn:proapp:{study.code}:derived",
                            "value": f"{e.id}.{inst.code}.{code}" + ("" if repeat is None else f".{repeat}")}],
            "status": status,
            "code": {"coding": [{"system": DERIVED_SYSTEM, "code": f"{inst.code}.{code}",
                                 "display": d.label("en")}],
                     "text": d.label(e.language) + (f" ({repeat})" if repeat is not None else "")},
            "subject": subject, "effectiveDateTime": iso(e.completed_at),
            "derivedFrom": [{"reference": response_url}],
        }
        if repeat is not None:               # the ulcer (or report) it is about: the group's repeat key
            obs["component"] = [{"code": {"coding": [{"system": DERIVED_SYSTEM, "code": f"{inst.code}.{d.group}"}],
                                          "text": "repeat"}, "valueInteger": repeat}]
        return obs

    out = []
    for code, repeat, value in all_scores(inst, e.current_scores):
        if value is None or value == "":
            continue
        obs = observation(code, repeat, "amended" if e.corrections else "final")
        kind = types[code].type
        if kind == "integer":
            obs["valueInteger"] = int(value)
        elif kind == "decimal":
            obs["valueQuantity"] = {"value": float(value)}
        else:
            obs["valueString"] = str(value)
        out.append(obs)
    out += [observation(code, repeat, "entered-in-error") for kind, code, repeat in removed(inst, e)
            if kind == "score" and code in types]
    return out


FHIR_TYPES = {"choice": "choice", "check": "boolean", "vas": "integer", "date": "date"}


def fhir_questionnaire(inst: Instrument, public_url: str, variant: str | None = None) -> dict[str, Any]:
    """The Questionnaire as the study's patients read it (stems, the study's variant of the wording)."""
    def item_def(i: Item) -> dict[str, Any]:
        shown = i.shown(variant or inst.default_variant)
        d: dict[str, Any] = {"linkId": i.code, "text": shown("en"), "type": FHIR_TYPES[i.type], "required": False,
                             "_text": {"extension": [{"url": "http://hl7.org/fhir/StructureDefinition/translation",
                                                      "extension": [{"url": "lang", "valueCode": "fr"},
                                                                    {"url": "content", "valueString": shown("fr")}]}]}}
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
    return {"resourceType": "Questionnaire",
            "id": f"{questionnaire_name(inst, variant)}-{inst.version}".replace("_", "-"),
            "url": canonical(public_url, inst, variant), "version": inst.version, "name": inst.code.replace("_", ""),
            "title": inst.title("en"), "status": "active", "copyright": inst.copyright, "item": items}


def _enable_when(inst: Instrument, ref: str, value: str) -> dict[str, Any]:
    item = inst.item(ref)
    if item.type == "check":
        return {"question": ref, "operator": "=", "answerBoolean": value == "Y"}
    return {"question": ref, "operator": "=", "answerCoding": {"system": _coding_system(inst, item), "code": value}}


MEDIA_TYPES = ("application/fhir+json",)
ATTACHMENT = None


def page_chunks(page: Page, db: Session) -> Iterator[str]:
    """A page of responses as a FHIR Bundle of QuestionnaireResponses and their Observations."""
    code = page.study.code
    yield '{"resourceType":"Bundle","type":"collection","timestamp":' + json.dumps(iso(page.now))
    if page.more:
        yield ',"link":[{"relation":"next","url":' + json.dumps(page.next_url) + "}]"
    yield ',"entry":['
    for n, e in enumerate(page.responses(db)):
        inst = page.instrument(e)
        url = full_url(code, e)
        entries = [{"fullUrl": url, "resource": fhir_response(e, inst, page.study, page.public_url)}]
        entries += [{"resource": obs} for obs in fhir_observations(e, inst, page.study, url)]
        yield ("," if n else "") + ",".join(json.dumps(entry, ensure_ascii=False, separators=(",", ":"))
                                            for entry in entries)
    yield "]}"
