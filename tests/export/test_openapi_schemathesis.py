"""Schemathesis drives the API from its OpenAPI 3.1 document: no server error, and every response matches the
document (status codes, content types, headers, bodies). Each operation gets generated requests with a valid key,
against a database holding real responses."""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.export.conftest import auth, complete_diary, make_key

EXAMPLES = 40


def test_api_conforms_to_its_openapi_document(app):
    key = make_key(app)
    complete_diary(app, "ADU-TLS-001")
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    checked = []
    for result in schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def check(case):
            if case.path_parameters and case.path_parameters.get("study") and len(checked) % 2:
                case.path_parameters["study"] = "ADUSE"     # half the cases reach the real study
            case.call_and_validate(headers=auth(key))

        check()
        checked.append(operation.label)
    assert len(checked) == 4, checked
