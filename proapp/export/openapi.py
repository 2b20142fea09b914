"""OpenAPI 3.1 description of the export API (served at /api/v1/openapi.json; schemathesis checks the app
against it in the tests)."""

from __future__ import annotations

from typing import Any

PROBLEM = {"$ref": "#/components/responses/Problem"}


def _problems(*codes: int) -> dict[str, Any]:
    return {str(c): PROBLEM for c in codes}


STUDY = {"name": "study", "in": "path", "required": True, "schema": {"type": "string"},
         "description": "The study code (the key's study), e.g. ADUSE."}
ANSWER_VALUE = {"type": ["string", "null"]}
RESPONSE_ITEM = {
    "type": "object",
    "required": ["id", "sequence", "subject_id", "site", "visit", "window", "instrument", "language",
                 "completed_at", "completed_on_site", "answers", "scores", "revision", "corrections"],
    "properties": {
        "id": {"type": "integer", "description": "The response id (send it back in acknowledgements)."},
        "sequence": {"type": "integer", "description": "Its place in the feed."},
        "subject_id": {"type": "string"},
        "site": {"type": "string"},
        "visit": {"type": "string"},
        "window": {"type": "object", "required": ["target_day", "opens_on", "closes_on"],
                   "properties": {k: {"type": "string", "format": "date"}
                                  for k in ("target_day", "opens_on", "closes_on")}},
        "instrument": {"type": "object", "required": ["code", "version"],
                       "properties": {"code": {"type": "string"}, "version": {"type": "string"}}},
        "language": {"type": "string", "enum": ["fr", "en"]},
        "completed_at": {"type": "string", "format": "date-time"},
        "completed_on_site": {"type": "boolean"},
        "answers": {"type": "object", "description": "By item code; an item of a repeating group (new ulcers) "
                    "has a list, one value per repeat.",
                    "additionalProperties": {"oneOf": [ANSWER_VALUE, {"type": "array", "items": ANSWER_VALUE}]}},
        "scores": {"type": "object", "description": "Derived scores by their codes (DLQI_TOTAL, HAQ_DI ...), from "
                   "the corrected answers when there are corrections.",
                   "additionalProperties": {"type": ["number", "string", "null"]}},
        "revision": {"type": "integer", "description": "0 as completed; n after n corrections (the response comes "
                     "again in the feed after each)."},
        "corrections": {"type": "array", "items": {
            "type": "object", "required": ["item", "repeat", "old_value", "new_value", "reason", "by", "at"],
            "properties": {"item": {"type": "string"}, "repeat": {"type": "integer"},
                           "old_value": {"type": ["string", "null"]}, "new_value": {"type": "string"},
                           "reason": {"type": "string"}, "by": {"type": "string"},
                           "at": {"type": "string", "format": "date-time"},
                           "signature": {"description": "The corrector's electronic signature: what it means and "
                                                        "how they were identified (password, password+totp).",
                                         "oneOf": [{"type": "null"}, {
                                             "type": "object", "required": ["meaning", "method"],
                                             "properties": {"meaning": {"type": "string"},
                                                            "method": {"type": "string"}}}]}}}},
    },
}
ALERT_ITEM = {
    "type": "object",
    "required": ["id", "subject_id", "site", "visit", "rule", "rule_label", "severity", "source", "raised_at",
                 "first_notified_at", "escalations", "evidence", "state", "acknowledgement"],
    "properties": {
        "id": {"type": "integer"},
        "subject_id": {"type": "string"},
        "site": {"type": "string"},
        "visit": {"type": "string"},
        "rule": {"type": "string", "description": "The rule's code in the study file."},
        "rule_label": {"type": "object", "required": ["en", "fr"],
                       "properties": {"en": {"type": "string"}, "fr": {"type": "string"}}},
        "severity": {"type": "string", "enum": ["urgent", "same_day", "review"]},
        "source": {"type": "string", "enum": ["completed", "window_closed", "withdrawn"],
                   "description": "Raised at completion, or when the window closed (or the patient was withdrawn) "
                                  "on answers left in progress."},
        "raised_at": {"type": "string", "format": "date-time"},
        "first_notified_at": {"type": ["string", "null"], "format": "date-time"},
        "escalations": {"type": "integer", "description": "Reminders sent because nobody acknowledged it."},
        "evidence": {"type": "array", "items": {"type": "object", "required": ["ref", "value"]},
                     "description": "The answers or scores (INSTRUMENT.CODE) that met the rule."},
        "state": {"type": "string", "enum": ["open", "acknowledged"]},
        "acknowledgement": {"oneOf": [{"type": "null"}, {
            "type": "object", "required": ["at", "by", "action", "note", "minutes_to_acknowledge"],
            "properties": {"at": {"type": "string", "format": "date-time"}, "by": {"type": "string"},
                           "action": {"type": "string", "enum": ["called_patient", "referred", "seen_at_visit",
                                                                 "no_action"]},
                           "note": {"type": ["string", "null"]},
                           "minutes_to_acknowledge": {"type": "integer"}}}]},
    },
}
PAGE_HEADERS = {
    "X-Next-Cursor": {"schema": {"type": "string"}, "description": "The cursor for the next request."},
    "X-Has-More": {"schema": {"type": "string", "enum": ["true", "false"]}},
    "X-Item-Count": {"schema": {"type": "string", "pattern": "^[0-9]+$"}},
}


def spec(public_url: str) -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "proapp export API", "version": "1.0.0",
                 "description": "Completed patient-reported outcome responses for the trial's EDC, pulled in the "
                                "order they became available. Follow next_cursor: no response is ever missed or "
                                "returned twice. Errors are RFC 9457 problem documents."},
        "servers": [{"url": public_url}],
        "security": [{"apiKey": []}],
        "paths": {
            "/api/v1/studies/{study}/metadata": {"get": {
                "summary": "The study's data dictionary (JSON) or its CDISC ODM 1.3.2 MetaDataVersion",
                "operationId": "getMetadata",
                "parameters": [STUDY, {"name": "format", "in": "query", "schema": {"type": "string",
                                                                                   "enum": ["json", "odm"]}}],
                "responses": {"200": {"description": "The data dictionary", "content": {
                    "application/json": {"schema": {"type": "object", "required": ["study", "visits", "instruments"]}},
                    "application/xml": {}}},
                    **_problems(400, 401, 404, 429)}}},
            "/api/v1/studies/{study}/questionnaires/{code}": {"get": {
                "summary": "The FHIR R4 Questionnaire of an instrument, in the version the study uses",
                "operationId": "getQuestionnaire",
                "parameters": [STUDY, {"name": "code", "in": "path", "required": True, "schema": {"type": "string"}}],
                "responses": {"200": {"description": "A Questionnaire", "content": {"application/fhir+json": {
                    "schema": {"type": "object", "required": ["resourceType", "url", "version", "item"]}}}},
                    **_problems(400, 401, 404, 429)}}},
            "/api/v1/studies/{study}/responses": {"get": {
                "summary": "Completed responses after the cursor, in the order they became available",
                "operationId": "getResponses",
                "parameters": [
                    STUDY,
                    {"name": "cursor", "in": "query", "schema": {"type": "string"},
                     "description": "The next_cursor of the previous page; none for the first."},
                    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 10000,
                                                                "default": 100}},
                    {"name": "format", "in": "query", "schema": {"type": "string",
                                                                 "enum": ["json", "csv", "odm", "fhir"]}},
                    {"name": "labels", "in": "query", "schema": {"type": "string", "enum": ["en", "fr"]},
                     "description": "Language of the item and value labels in CSV."},
                ],
                "description": "CSV (format=csv): one row per answer, RFC 4180 with CRLF line ends. A text cell "
                               "that would begin with =, +, -, @, a tab or a carriage return is written with a "
                               "leading single quote (OWASP CSV injection), so spreadsheets show it as text; "
                               "strip one leading quote from such cells to get the value back.",
                "responses": {"200": {"description": "A page of responses", "headers": PAGE_HEADERS, "content": {
                    "application/json": {"schema": {
                        "type": "object", "required": ["data", "next_cursor", "has_more"],
                        "properties": {"data": {"type": "array", "items": RESPONSE_ITEM},
                                       "next_cursor": {"type": "string"}, "has_more": {"type": "boolean"}}}},
                    "text/csv": {},
                    "application/xml": {},
                    "application/fhir+json": {"schema": {"type": "object", "required": ["resourceType", "entry"]}}}},
                    **_problems(400, 401, 404, 429)}}},
            "/api/v1/studies/{study}/alerts": {"get": {
                "summary": "Safety-signal alerts and their acknowledgements, for the sponsor's safety desk",
                "operationId": "getAlerts",
                "parameters": [
                    STUDY,
                    {"name": "format", "in": "query", "schema": {"type": "string", "enum": ["json", "csv"]}},
                    {"name": "state", "in": "query", "schema": {"type": "string", "enum": ["open", "acknowledged"]}},
                ],
                "responses": {"200": {"description": "Every alert of the key's study and sites, oldest first",
                                      "content": {
                    "application/json": {"schema": {"type": "object", "required": ["data"],
                                                    "properties": {"data": {"type": "array", "items": ALERT_ITEM}}}},
                    "text/csv": {"schema": {"type": "string", "format": "binary"}}}},
                    **_problems(400, 401, 404, 429)}}},
            "/api/v1/studies/{study}/acknowledgements": {"post": {
                "summary": "Tell proapp which responses the EDC has imported",
                "operationId": "postAcknowledgements",
                "parameters": [STUDY],
                "description": "Name each (response id, revision) imported: revision 0 as completed, n after n "
                               "corrections (the `revision` of the pulled response). Acknowledging revision 0 "
                               "does not acknowledge a later correction. The older form `response_ids` "
                               "acknowledges revision 0 and answers with plain ids.",
                "requestBody": {"required": True, "content": {"application/json": {"schema": {"oneOf": [
                    {"type": "object", "required": ["responses"], "additionalProperties": False,
                     "properties": {"responses": {"type": "array", "minItems": 1, "maxItems": 10000, "items": {
                         "type": "object", "required": ["id", "revision"], "additionalProperties": False,
                         "properties": {"id": {"type": "integer", "minimum": 1, "maximum": 2**31 - 1},
                                        "revision": {"type": "integer", "minimum": 0,
                                                     "maximum": 2**31 - 1}}}}}},
                    {"type": "object", "required": ["response_ids"], "additionalProperties": False,
                     "properties": {"response_ids": {"type": "array", "minItems": 1, "maxItems": 10000,
                                                     "items": {"type": "integer", "minimum": 1,
                                                               "maximum": 2**31 - 1}}}}]}}}},
                "responses": {"200": {"description": "What was recorded: (id, revision) objects for the "
                                                     "`responses` form, ids for the older one", "content": {
                    "application/json": {"schema": {
                        "type": "object", "required": ["acknowledged", "already_acknowledged", "unknown"],
                        "properties": {k: {"type": "array", "items": {"oneOf": [
                            {"type": "integer"},
                            {"type": "object", "required": ["id", "revision"],
                             "properties": {"id": {"type": "integer"}, "revision": {"type": "integer"}}}]}}
                            for k in ("acknowledged", "already_acknowledged", "unknown")}}}}},
                    **_problems(400, 401, 404, 429)}}},
        },
        "components": {
            "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer",
                                           "description": "A key from `proapp api-key create`."}},
            "responses": {"Problem": {"description": "An RFC 9457 problem document", "content": {
                "application/problem+json": {"schema": {
                    "type": "object", "required": ["type", "title", "status", "detail"],
                    "properties": {"type": {"type": "string"}, "title": {"type": "string"},
                                   "status": {"type": "integer"}, "detail": {"type": "string"},
                                   "instance": {"type": "string"}}}}}}},
        },
    }
