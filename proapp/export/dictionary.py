"""The data dictionary of a study as JSON: visits and windows, instruments and versions, items with their codes,
types, allowed values and FR/EN labels, and the derived scores."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from proapp.export.formats import ulcer_registry
from proapp.export.formats.odm import Oids
from proapp.instruments import Registry
from proapp.instruments.schema import Instrument, Item, Text
from proapp.studies.models import Site
from proapp.studies.schema import InstrumentUse, StudyDef


def _text(t: Text | None) -> dict[str, str] | None:
    return None if t is None else {"en": t.en, "fr": t.fr}


def _item(i: Item, inst: Instrument, variant: str | None) -> dict[str, Any]:
    d: dict[str, Any] = {"code": i.code, "type": i.type, "text": _text(i.shown(variant))}    # as the patient read it
    if i.group:
        d["group"] = i.group
    if i.section:
        d["section"] = i.section
        if i.section in inst.sections:
            d["section_title"] = _text(inst.sections[i.section].label)
    if i.type == "choice":
        d["allowed_values"] = [{"value": o.value, "label": _text(o.label)} for o in i.option_list]
    elif i.type == "check":
        d["allowed_values"] = [{"value": "Y", "label": {"en": "Ticked", "fr": "Coché"}}]
        d["unticked"] = "absent or null"
    elif i.type == "vas":
        d["range"] = {"min": 0, "max": 100, "anchors": {"low": _text(i.anchors.low), "high": _text(i.anchors.high)}}
    elif i.type == "date":
        d["format"] = "YYYY-MM-DD"
    if i.show_if:
        d["shown_if"] = i.show_if
    if i.text_when:               # a response's "wording" names the one its patient read
        d["text_when"] = {name: _text(i.shown(variant, name)) for name in i.text_when}
    if i.requires:
        d["asked_when_study_enables"] = i.requires
    if i.source:
        d["source"] = i.source
    if i.study_specific:
        d["study_specific"] = True
    return d


def _remote(inst: Instrument, use: InstrumentUse) -> dict[str, Any] | None:
    """How the study lets patients answer the instrument without the web page: by voice call or SMS replies, with
    the instrument file's remote wording (its own version; items reworded for the ear, dates asked as days ago);
    None when it is asked on the web page only."""
    if not use.remote or inst.remote is None:
        return None
    r = inst.remote
    return {"version": r.version, "modes": list(use.remote), "validated": r.validated, "note": r.note,
            "instructions": _text(r.instructions),
            "items": {code: {"text": _text(spec.text), **({"asked_as": "days_ago"} if spec.days_ago else {})}
                      for code, spec in r.items.items()}}


def _instrument(inst: Instrument, variant: str | None, features: list[str],
                use: InstrumentUse | None = None) -> dict[str, Any]:
    remote = _remote(inst, use) if use is not None else None
    return {
        "code": inst.code, "version": inst.version, "title": _text(inst.title),
        "instructions": _text(inst.instructions), "variant": variant, "features": features,
        "source": inst.source, "copyright": inst.copyright, "licence": inst.licence,
        "languages": {lang: {"validated": st.validated} for lang, st in inst.languages.items()},
        # Answered by voice or SMS: the remote wording; ``remote_as``: the study's other instrument asked instead
        # in those modes (the pain VAS becomes the 0-10 PAIN_NRS: another measure, never rescaled).
        **({"remote": remote} if remote else {}),
        **({"remote_as": use.remote_as} if use is not None and use.remote_as else {}),
        "items": [_item(i, inst, variant) for i in inst.items],
        # A group "repeated_by" the patient's ulcers has one repeat per ulcer, its key the ulcer's number.
        "groups": [{"code": g.code, "max_repeats": g.max_repeats, "label": _text(g.label), "shown_if": g.show_if,
                    **({"repeated_by": g.repeats_from} if g.repeats_from else {})}
                   for g in inst.groups],
        "derived": [{"code": d.code, "type": d.type, "label": _text(d.label),
                     **({"group": d.group} if d.group else {}), **({"source": d.source} if d.source else {})}
                    for d in inst.derived],
    }


def data_dictionary(study: StudyDef, registry: Registry, db: Session, study_id: int,
                    site_ids: list[int] | None = None) -> dict[str, Any]:
    """The study's data dictionary; ``site_ids``: a site-restricted key sees only its own sites."""
    oids = Oids(study)
    q = select(Site.code, Site.name, Site.timezone).where(Site.study_id == study_id).order_by(Site.code)
    sites = db.execute(q.where(Site.id.in_(site_ids)) if site_ids else q).all()
    return {
        "study": {"code": study.code, "version": study.version, "title": study.title, "title_fr": study.title_fr,
                  "registry_id": study.registry_id, "anchor": _text(study.anchor)},
        "sites": [{"code": c, "name": n, "timezone": tz} for c, n, tz in sites],
        "visits": [{"code": v.code, "label": _text(v.label), "day": v.day,
                    "window": {"days_before": v.window.before, "days_after": v.window.after},
                    "instruments": list(v.instruments),
                    # Every form the visit's data may hold: its instruments, and those answered instead of them by
                    # voice or SMS (PAIN_NRS beside PAIN_VAS).
                    "forms": study.forms_of(v.instruments)} for v in study.all_visits()],
        "instruments": [_instrument(inst, use.variant or inst.default_variant, list(use.features), use)
                        for code, use in study.instruments.items()
                        for inst in [registry.get(code, use.version)]],
        "odm": {"study_oid": oids.study, "metadata_version_oid": oids.mdv},
        **({"ulcer_registry": _ulcer_registry(registry)} if ulcer_registry.study_has_registry(study, registry)
           else {}),
    }


def _ulcer_registry(registry: Registry) -> dict[str, Any]:
    """The fields of ``GET .../ulcers`` (each ulcer, with its query's ``query_`` fields; the patient's
    ``treated_query``)."""
    ulcer, treated, _query = ulcer_registry.fields(registry)

    def described(f: ulcer_registry.RegistryField) -> dict[str, Any]:
        return {"code": f.code.lower(), "type": f.kind, "label": _text(f.label),
                **({"allowed_values": [{"value": v, "label": _text(t)} for v, t in f.choices]} if f.choices else {})}

    return {"ulcer": [described(f) for f in ulcer], "treated_query": [described(f) for f in treated]}
