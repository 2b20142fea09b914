"""The export formats, one module each: JSON, CSV, CDISC ODM 1.3.2 and FHIR R4 (`common` holds what they
share)."""
