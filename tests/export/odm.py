"""Validation against the official CDISC ODM 1.3.2 schema, kept in tests/data/odm-1.3.2 with its MIT licence (no
network)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from lxml import etree

SCHEMA_DIR = Path(__file__).resolve().parents[1] / "data" / "odm-1.3.2"


@cache
def odm_schema() -> etree.XMLSchema:
    parser = etree.XMLParser(no_network=True, resolve_entities=False)
    return etree.XMLSchema(etree.parse(str(SCHEMA_DIR / "ODM1-3-2.xsd"), parser))


def validate_odm(body: bytes):
    doc = etree.fromstring(body, etree.XMLParser(no_network=True, resolve_entities=False))
    schema = odm_schema()
    if not schema.validate(doc):
        raise AssertionError("ODM does not validate:\n" + "\n".join(str(e) for e in list(schema.error_log)[:10]))
    return doc
