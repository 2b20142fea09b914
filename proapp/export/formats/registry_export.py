"""The ulcer registry (``/api/v1/studies/{study}/ulcers``) in each format: its media type and its body, one
function a format, as the response pages' formats provide theirs (``formats/__init__``'s modules)."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from proapp import csvfiles
from proapp.export.formats import odm, ulcer_registry
from proapp.export.formats.redcap import unique_event
from proapp.export.formats.ulcer_registry import Staff, SubjectRegistry
from proapp.studies.schema import StudyDef


@dataclass(frozen=True)
class RegistryPull:
    """One pull of the registry: the study, its subjects' ulcers and queries, who noted them, when."""

    study: StudyDef
    subjects: list[SubjectRegistry]
    staff: Staff
    registry: Any                     # the instruments (the FHIR place names use DU_BASELINE's labels)
    file_oid: str
    created: datetime


def _json(p: RegistryPull) -> str:
    return json.dumps(ulcer_registry.json_registry(p.study.code, p.subjects, p.staff, p.created), ensure_ascii=False)


def _csv(p: RegistryPull) -> str:
    out = io.StringIO()
    writer = csvfiles.writer(out)
    writer.writerow(ulcer_registry.CSV_COLUMNS)
    writer.writerows(ulcer_registry.csv_rows(p.subjects, p.staff))
    return out.getvalue()


def _odm(p: RegistryPull) -> str:
    first = p.study.all_visits()[0].code
    return (odm.odm_header(p.file_oid, None, p.created, f"{p.study.code} ulcer registry")
            + "".join(ulcer_registry.odm_clinical(p.subjects, p.staff, odm.Oids(p.study), first)) + "</ODM>\n")


def _fhir(p: RegistryPull) -> str:
    inst = p.registry.get("DU_BASELINE")

    def place(u: Any) -> str:
        return " · ".join(inst.item(c).option_label(v, "en") for c, v in (
            ("DU_HAND", u.hand), ("DU_FINGER", u.finger), ("DU_SITE", u.site)))

    return json.dumps(ulcer_registry.fhir_bundle(p.study.code, p.subjects, p.staff, place, p.created),
                      ensure_ascii=False)


def _redcap(p: RegistryPull) -> str:
    first = unique_event(p.study.all_visits()[0].code)
    return json.dumps(ulcer_registry.redcap_records(p.subjects, p.staff, p.registry, first), ensure_ascii=False)


# format -> (media type, body, file name for a download or None)
FORMATS: dict[str, tuple[str, Callable[[RegistryPull], str], bool]] = {
    "json": ("application/json", _json, False),
    "csv": ("text/csv", _csv, True),
    "odm": ("application/xml", _odm, False),
    "fhir": ("application/fhir+json", _fhir, False),
    "redcap": ("application/json", _redcap, False),
}
