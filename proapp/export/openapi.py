"""OpenAPI 3.1 description of the export API (served at /api/v1/openapi.json; schemathesis checks the app
against it in the tests)."""

from __future__ import annotations

from typing import Any

PROBLEM = {"$ref": "#/components/responses/Problem"}


def _problems(*codes: int) -> dict[str, Any]:
    return {str(c): PROBLEM for c in codes}


STUDY = {"name": "study", "in": "path", "required": True, "schema": {"type": "string"},
         "description": "The study code (the key's study), e.g. ADUSE."}
LABELS = {"name": "labels", "in": "query", "schema": {"type": "string", "enum": ["en", "fr"]},
          "description": "Language of the labels (CSV item and value labels, the REDCap project's labels)."}
BINARY = {"schema": {"type": "string", "format": "binary"}}


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


TEXT = {"type": "object", "required": ["en", "fr"], "properties": {"en": {"type": "string"}, "fr": {"type": "string"}}}
ANSWER_VALUE = {"type": ["string", "null"]}
ANSWER_MODE = {"type": "string", "enum": ["web", "voice_dtmf", "voice_speech", "sms"]}
SCHEMAS: dict[str, Any] = {
    "Text": {**TEXT, "description": "A wording in English and French."},
    "Problem": {"type": "object", "required": ["type", "title", "status", "detail"],
                "description": "An RFC 9457 problem document.",
                "properties": {"type": {"type": "string"}, "title": {"type": "string"},
                               "status": {"type": "integer"}, "detail": {"type": "string"},
                               "instance": {"type": "string"}}},
    "Window": {"type": "object", "required": ["target_day", "opens_on", "closes_on"],
               "properties": {k: {"type": "string", "format": "date"}
                              for k in ("target_day", "opens_on", "closes_on")}},
    "InstrumentRef": {"type": "object", "required": ["code", "version"],
                      "properties": {"code": {"type": "string"},
                                     "version": {"type": "string", "description": "Text, e.g. 1.0 or 1.1."},
                                     "mode_wording": {"type": ["string", "null"], "description": "The remote "
                                                      "wording version the questions were read aloud (voice call) "
                                                      "or sent by SMS with, e.g. 2.2-R1; null for the web "
                                                      "page's wording."}}},
    "Signature": {"type": "object", "required": ["meaning", "method"],
                  "description": "The corrector's electronic signature: what it means and how they were identified "
                                 "(password, password+totp).",
                  "properties": {"meaning": {"type": "string"}, "method": {"type": "string"}}},
    "Correction": {"type": "object", "required": ["item", "repeat", "old_value", "new_value", "reason", "by", "at"],
                   "properties": {"item": {"type": "string"}, "repeat": {"type": "integer"},
                                  "old_value": {"type": ["string", "null"]}, "new_value": {"type": "string"},
                                  "reason": {"type": "string"}, "by": {"type": "string"},
                                  "at": {"type": "string", "format": "date-time"},
                                  "signature": {"oneOf": [{"type": "null"}, ref("Signature")]},
                                  "source": {"description": "Where the correction comes from: the patient's "
                                             "request (the day they asked, how), a transcription error on a paper "
                                             "form entered on site, or another reason; null before sources were "
                                             "recorded.",
                                             "oneOf": [{"type": "null"}, {
                                                 "type": "object", "required": ["kind", "requested_on", "method"],
                                                 "properties": {
                                                     "kind": {"type": "string", "enum": [
                                                         "patient_request", "transcription_error", "other"]},
                                                     "requested_on": {"type": ["string", "null"], "format": "date"},
                                                     "method": {"type": ["string", "null"]}}}]}}},
    "Response": {
        "type": "object",
        "description": "A completed questionnaire response, as corrected.",
        "required": ["id", "sequence", "subject_id", "site", "visit", "window", "instrument", "language",
                     "completed_at", "completed_on_site", "answers", "scores", "revision", "corrections"],
        "properties": {
            "id": {"type": "integer", "description": "The response id (send it back in acknowledgements)."},
            "sequence": {"type": "integer", "description": "Its place in the feed."},
            "subject_id": {"type": "string"},
            "site": {"type": "string"},
            "visit": {"type": "string"},
            "window": ref("Window"),
            "instrument": ref("InstrumentRef"),
            "language": {"type": "string", "enum": ["fr", "en"]},
            "languages": {"type": "array", "items": {"type": "string", "enum": ["fr", "en"]},
                          "description": "Every language the patient answered in, first used first."},
            "answer_languages": {"type": "object", "additionalProperties": {"type": "string", "enum": ["fr", "en"]},
                                 "description": "The language of each answer, by item code (CODE[n] in a group's "
                                 "repeat n)."},
            "modes": {"type": "array", "items": ANSWER_MODE, "description": "Every way the patient answered this "
                      "response, first used first."},
            "answer_modes": {"type": "object", "additionalProperties": ANSWER_MODE,
                             "description": "How each answer was given, by item code (CODE[n] in a group's repeat "
                             "n): web for the web page (and every answer saved before modes were recorded), "
                             "voice_dtmf or voice_speech for a voice call (keypad or speech), sms for an SMS reply. "
                             "An answer a correction added is absent."},
            "agreements": {"type": "array", "description": "The patient's agreement to SMS and to answering "
                           "online at enrolment (kind agreement), then their acknowledgements of later information "
                           "sheets (acknowledgement) and their agreement that questions and answers travel by SMS "
                           "(sms_answers, when the team chose SMS replies with them), oldest first.",
                           "items": {"type": "object", "required": ["kind", "information_version", "given_on"],
                                     "properties": {"kind": {"type": "string",
                                                             "enum": ["agreement", "acknowledgement",
                                                                      "sms_answers"]},
                                                    "information_version": {"type": ["string", "null"]},
                                                    "given_on": {"type": "string", "format": "date"}}}},
            "wording_validated": {"type": "boolean", "description": "Whether the wording the patient read (this "
                                  "instrument version in this language) is the licensed, validated text."},
            "completed_at": {"type": "string", "format": "date-time"},
            "completed_on_site": {"type": "boolean"},
            "answers": {"type": "object", "description": "By item code; an item of a repeating group (new ulcers) "
                        "has a list, one value per repeat; of a group repeated by the patient's ulcers, an object "
                        "keyed by the ulcer's number.",
                        "additionalProperties": {"oneOf": [ANSWER_VALUE, {"type": "array", "items": ANSWER_VALUE},
                                                           {"type": "object", "additionalProperties": ANSWER_VALUE}]}},
            "scores": {"type": "object", "description": "Derived scores by their codes (DLQI_TOTAL, HAQ_DI ...), "
                       "from the corrected answers when there are corrections.",
                       "additionalProperties": {"type": ["number", "string", "null"]}},
            "group_scores": {"type": "object", "description": "Derived values per repeat: group code, then repeat "
                             "key, then code.", "additionalProperties": {"type": "object"}},
            "wording": {"type": "object", "additionalProperties": {"type": "string"},
                        "description": "Items whose wording depended on the patient's situation: the situation."},
            "entered_with": {"type": "object", "additionalProperties": {"type": "string", "enum": ["line", "number"]},
                             "description": "Each visual analogue scale's control, by item code (CODE[n] in a "
                             "group's repeat n): line (the line the page's script draws) or number (the number box "
                             "shown without JavaScript). Answers given before proapp recorded it are absent."},
            "revision": {"type": "integer", "description": "0 as completed; n after n corrections (the response "
                         "comes again in the feed after each)."},
            "corrections": {"type": "array", "items": ref("Correction")},
            "removed": {"type": "array", "items": ref("Removed"), "description": "What an earlier revision had "
                        "and this one no longer has (an answer a correction made meaningless, a score that can no "
                        "longer be computed): delete it. Empty for an uncorrected response."},
        },
    },
    "Removed": {"type": "object", "required": ["kind", "code", "repeat"],
                "properties": {"kind": {"type": "string", "enum": ["answer", "score"]}, "code": {"type": "string"},
                               "repeat": {"type": ["integer", "null"], "description": "The repeat (the ulcer's "
                                          "number for a value per ulcer); null or 0 for a plain one."}}},
    "ResponsePage": {"type": "object", "required": ["data", "next_cursor", "has_more"],
                     "properties": {"data": {"type": "array", "items": ref("Response")},
                                    "next_cursor": {"type": "string"}, "has_more": {"type": "boolean"}}},
    "DictionaryVisit": {"type": "object", "required": ["code", "label", "day", "window", "instruments"],
                        "properties": {"code": {"type": "string"}, "label": ref("Text"), "day": {"type": "integer"},
                                       "window": {"type": "object", "required": ["days_before", "days_after"],
                                                  "properties": {"days_before": {"type": "integer"},
                                                                 "days_after": {"type": "integer"}}},
                                       "instruments": {"type": "array", "items": {"type": "string"}},
                                       "forms": {"type": "array", "items": {"type": "string"},
                                                 "description": "Every form the visit's data may hold: its "
                                                 "instruments, and those answered instead of them by voice or SMS "
                                                 "(PAIN_NRS beside PAIN_VAS)."}}},
    "DictionaryItem": {"type": "object", "required": ["code", "type", "text"],
                       "properties": {"code": {"type": "string"},
                                      "type": {"type": "string", "enum": ["choice", "check", "vas", "date"]},
                                      "text": ref("Text"), "group": {"type": "string"},
                                      "section": {"type": "string"}, "section_title": ref("Text"),
                                      "allowed_values": {"type": "array", "items": {
                                          "type": "object", "required": ["value", "label"],
                                          "properties": {"value": {"type": "string"}, "label": ref("Text")}}},
                                      "format": {"type": "string"},
                                      "shown_if": {"type": "object", "additionalProperties": {"type": "string"}}}},
    "DictionaryDerived": {"type": "object", "required": ["code", "type", "label"],
                          "properties": {"code": {"type": "string"},
                                         "type": {"type": "string", "enum": ["integer", "decimal", "text"]},
                                         "label": ref("Text"), "group": {"type": "string"},
                                         "source": {"type": "string"}}},
    "DictionaryInstrument": {"type": "object", "required": ["code", "version", "title", "items", "derived"],
                             "properties": {"code": {"type": "string"}, "version": {"type": "string"},
                                            "title": ref("Text"), "instructions": ref("Text"),
                                            "variant": {"type": ["string", "null"]},
                                            "source": {"type": "string"}, "copyright": {"type": "string"},
                                            "licence": {"type": "string"},
                                            "remote": {"type": "object", "description": "How the study lets "
                                                       "patients answer it by voice call or SMS replies: the "
                                                       "remote wording's version, the modes allowed, and the items "
                                                       "reworded (a date asked as days ago).",
                                                       "required": ["version", "modes"],
                                                       "properties": {"version": {"type": "string"},
                                                                      "modes": {"type": "array", "items": {
                                                                          "type": "string",
                                                                          "enum": ["voice", "sms"]}},
                                                                      "validated": {"type": "boolean"},
                                                                      "note": {"type": "string"}}},
                                            "remote_as": {"type": "string", "description": "The study's other "
                                                          "instrument asked instead by voice or SMS (a different "
                                                          "measure, never rescaled)."},
                                            "items": {"type": "array", "items": ref("DictionaryItem")},
                                            "derived": {"type": "array", "items": ref("DictionaryDerived")}}},
    "Dictionary": {"type": "object", "required": ["study", "visits", "instruments"],
                   "description": "The study's data dictionary.",
                   "properties": {"study": {"type": "object", "required": ["code", "version"],
                                            "properties": {"code": {"type": "string"},
                                                           "version": {"type": "string"},
                                                           "title": {"type": "string"}}},
                                  "visits": {"type": "array", "items": ref("DictionaryVisit")},
                                  "instruments": {"type": "array", "items": ref("DictionaryInstrument")},
                                  "odm": {"type": "object", "properties": {
                                      "study_oid": {"type": "string"}, "metadata_version_oid": {"type": "string"}}}}},
    "Acknowledgement": {"type": "object", "required": ["id", "revision"],
                        "properties": {"id": {"type": "integer"}, "revision": {"type": "integer"}}},
    "AcknowledgementResult": {
        "type": "object", "required": ["acknowledged", "already_acknowledged", "unknown"],
        "properties": {k: {"type": "array", "items": {"oneOf": [{"type": "integer"}, ref("Acknowledgement")]}}
                       for k in ("acknowledged", "already_acknowledged", "unknown")}},
    "Alert": {
        "type": "object",
        "required": ["id", "subject_id", "site", "visit", "rule", "rule_label", "severity", "source", "raised_at",
                     "first_notified_at", "escalations", "evidence", "state", "acknowledgement"],
        "properties": {
            "id": {"type": "integer"},
            "subject_id": {"type": "string"},
            "site": {"type": "string"},
            "visit": {"type": "string"},
            "rule": {"type": "string", "description": "The rule's code in the study file."},
            "rule_label": ref("Text"),
            "severity": {"type": "string", "enum": ["urgent", "same_day", "review"]},
            "source": {"type": "string", "enum": ["answer_saved", "completed", "window_closed", "withdrawn"],
                       "description": "Raised when the answer was saved (urgent and same-day rules), at "
                                      "completion, or when the window closed (or the patient was withdrawn) on "
                                      "answers left in progress."},
            "raised_at": {"type": "string", "format": "date-time"},
            "first_notified_at": {"type": ["string", "null"], "format": "date-time"},
            "escalations": {"type": "integer", "description": "Reminders sent because nobody acknowledged it."},
            "evidence": {"type": "array", "items": {"type": "object", "required": ["ref", "value"],
                                                    "properties": {"ref": {"type": "string"}, "value": {}}},
                         "description": "The answers or scores (INSTRUMENT.CODE) that met the rule."},
            "state": {"type": "string", "enum": ["open", "acknowledged"]},
            "acknowledgement": {"oneOf": [{"type": "null"}, ref("AlertAcknowledgement")]},
        },
    },
    "AlertAcknowledgement": {
        "type": "object", "required": ["at", "by", "action", "note", "minutes_to_acknowledge"],
        "properties": {"at": {"type": "string", "format": "date-time"}, "by": {"type": "string"},
                       "action": {"type": "string", "enum": ["called_patient", "referred", "seen_at_visit",
                                                             "no_action"]},
                       "note": {"type": ["string", "null"]}, "minutes_to_acknowledge": {"type": "integer"}}},
    "AlertPage": {"type": "object", "required": ["data"],
                  "properties": {"data": {"type": "array", "items": ref("Alert")}}},
    "FhirResource": {"type": "object", "required": ["resourceType"], "additionalProperties": True,
                     "description": "A FHIR R4 resource (Questionnaire or Bundle), as FHIR's JSON defines it.",
                     "properties": {"resourceType": {"type": "string"}}},
    "RedcapRecord": {"type": "object", "description": "One row of REDCap's flat import format: the record, the "
                     "event, the repeating instrument and instance, and the variables of the data dictionary.",
                     "required": ["record_id", "redcap_event_name", "redcap_repeat_instrument",
                                  "redcap_repeat_instance"],
                     "properties": {"record_id": {"type": "string"}, "redcap_event_name": {"type": "string"},
                                    "redcap_repeat_instrument": {"type": "string"},
                                    "redcap_repeat_instance": {"type": "string"}},
                     "additionalProperties": {"type": "string"}},
    "UlcerRegistry": {"type": "object", "required": ["study", "generated_at", "subjects"],
                      "description": "Each patient's ulcers (the fields in the dictionary's ulcer_registry).",
                      "properties": {"study": {"type": "string"}, "generated_at": {"type": "string"},
                                     "subjects": {"type": "array", "items": {
                                         "type": "object",
                                         "required": ["subject_id", "site", "ulcers", "open_queries"],
                                         "properties": {
                                             "subject_id": {"type": "string"}, "site": {"type": "string"},
                                             "anchor_date": {"type": "string", "format": "date"},
                                             "harvest_date": {"type": ["string", "null"], "format": "date",
                                                              "description": "The liposuction date (the patient's "
                                                              "own cells), null while not recorded."},
                                             "ulcers": {"type": "array", "items": {"type": "object"}},
                                             "treated_query": {"type": ["object", "null"]},
                                             "open_queries": {"type": "array", "items": {"type": "string"}}}}}}},
    "RedcapProjectPart": {"type": "array", "items": {"type": "object", "additionalProperties": {
        "type": ["string", "integer"]}}, "description": "Arms, events, instrument-event mapping or repeating "
                          "instruments, as REDCap's API imports them."},
}
PAGE_HEADERS = {
    "X-Next-Cursor": {"schema": {"type": "string"}, "description": "The cursor for the next request."},
    "X-Has-More": {"schema": {"type": "string", "enum": ["true", "false"]}},
    "X-Item-Count": {"schema": {"type": "string", "pattern": "^[0-9]+$"}},
}
ODM = {"application/xml": BINARY, "application/vnd.cdisc.odm+xml": BINARY}


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
                "summary": "The study's data dictionary (JSON), its CDISC ODM 1.3.2 MetaDataVersion, or its REDCap "
                           "project",
                "operationId": "getMetadata",
                "description": "format=redcap: REDCap's data dictionary CSV (part=dictionary, the default), or, as "
                               "REDCap's API imports them, its arms, events, instrument-event mapping or repeating "
                               "instruments (part=arms, events, mapping, repeating).",
                "parameters": [STUDY, {"name": "format", "in": "query", "schema": {
                    "type": "string", "enum": ["json", "odm", "redcap"]}}, LABELS,
                    {"name": "part", "in": "query", "schema": {"type": "string", "enum": [
                        "dictionary", "arms", "events", "mapping", "repeating"]},
                     "description": "With format=redcap: which part of the REDCap project."}],
                "responses": {"200": {"description": "The data dictionary", "content": {
                    "application/json": {"schema": {"oneOf": [ref("Dictionary"), ref("RedcapProjectPart")]}},
                    **ODM, "text/csv": BINARY}},
                    **_problems(400, 401, 404, 429)}}},
            "/api/v1/studies/{study}/questionnaires/{code}": {"get": {
                "summary": "The FHIR R4 Questionnaire of an instrument, in the version the study uses",
                "operationId": "getQuestionnaire",
                "parameters": [STUDY, {"name": "code", "in": "path", "required": True, "schema": {"type": "string"}}],
                "responses": {"200": {"description": "A Questionnaire", "content": {"application/fhir+json": {
                    "schema": ref("FhirResource")}}},
                    **_problems(400, 401, 404, 429)}}},
            "/api/v1/fhir/Questionnaire/{name}": {"get": {
                "summary": "A Questionnaire at its canonical URL (the `questionnaire` of a QuestionnaireResponse)",
                "operationId": "getCanonicalQuestionnaire",
                "description": "`name` is the instrument's code, followed by `-<wording>` when a study uses "
                               "another wording than the instrument's default (PAIN_VAS-digital-ulcers-24h). "
                               "For a key of a study using the instrument; the study's version unless `version` "
                               "names another.",
                "parameters": [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}},
                               {"name": "version", "in": "query", "schema": {"type": "string"}}],
                "responses": {"200": {"description": "A Questionnaire", "content": {"application/fhir+json": {
                    "schema": ref("FhirResource")}}},
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
                                                                 "enum": ["json", "csv", "odm", "fhir", "redcap"]}},
                    LABELS,
                ],
                "description": "CSV (format=csv): one row per answer, RFC 4180 with CRLF line ends. A text cell "
                               "that would begin with =, +, -, @, a tab or a carriage return is written with a "
                               "leading single quote (OWASP CSV injection), so spreadsheets show it as text; "
                               "strip one leading quote from such cells to get the value back. Its "
                               "answer_language, answer_mode (web, voice_dtmf, voice_speech, sms) and mode_wording "
                               "(the remote wording version, empty for the web page's) columns are the JSON's. "
                               "REDCap "
                               "(format=redcap): a JSON array of records in REDCap's flat import format, the "
                               "cursor in the X-Next-Cursor header.",
                "responses": {"200": {"description": "A page of responses", "headers": PAGE_HEADERS, "content": {
                    "application/json": {"schema": {"oneOf": [
                        ref("ResponsePage"), {"type": "array", "items": ref("RedcapRecord")}]}},
                    "text/csv": BINARY,
                    **ODM,
                    "application/fhir+json": {"schema": ref("FhirResource")}}},
                    **_problems(400, 401, 404, 429)}}},
            **{f"/api/v1/studies/{{study}}/responses/{fmt}": {"get": {
                "summary": f"The same page of responses, as {name}",
                "operationId": f"getResponses{fmt.capitalize()}",
                "description": "The page `responses?format=" + fmt + "` gives, as an operation of its own (a "
                               "generated client reads one media type per operation).",
                "parameters": [
                    STUDY,
                    {"name": "cursor", "in": "query", "schema": {"type": "string"},
                     "description": "The next_cursor of the previous page; none for the first."},
                    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 10000,
                                                                "default": 100}},
                    LABELS,
                ],
                "responses": {"200": {"description": f"A page of responses, as {name}", "headers": PAGE_HEADERS,
                                      "content": content},
                              **_problems(400, 401, 404, 429)}}}
                for fmt, name, content in (
                    ("csv", "CSV", {"text/csv": {"schema": {"type": "string"}}}), ("odm", "CDISC ODM 1.3.2", ODM),
                    ("fhir", "a FHIR Bundle", {"application/fhir+json": {"schema": ref("FhirResource")}}),
                    ("redcap", "REDCap records", {"application/json": {"schema": {
                        "type": "array", "items": ref("RedcapRecord")}}}))},
            "/api/v1/studies/{study}/ulcers": {"get": {
                "summary": "The ulcer registry (ADUSE): each ulcer with its query, and each patient's treated-ulcer "
                           "query, as it stands now",
                "operationId": "getUlcerRegistry",
                "description": "Each ulcer the team noted or the patient reported: number, place, treated, when and "
                               "by whom noted (a pseudonymous staff id), status, healing or closing day, and the "
                               "query the patient's \"not right\" opened (open or resolved, how, by whom, when). "
                               "A snapshot of the key's sites: JSON, CSV (a row per ulcer and per treated-ulcer "
                               "query), ODM (a Snapshot: form F.ULCER_REGISTRY in the first visit), FHIR (a "
                               "Condition per ulcer, a Task per query) or REDCap records (the repeating instrument "
                               "ulcer_registry). A study without an ulcer registry is a 404.",
                "parameters": [STUDY, {"name": "format", "in": "query", "schema": {
                    "type": "string", "enum": ["json", "csv", "odm", "fhir", "redcap"]}}],
                "responses": {"200": {"description": "The registry", "content": {
                    "application/json": {"schema": {"oneOf": [
                        ref("UlcerRegistry"), {"type": "array", "items": ref("RedcapRecord")}]}},
                    "text/csv": BINARY, **ODM, "application/fhir+json": {"schema": ref("FhirResource")}}},
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
                                      "content": {"application/json": {"schema": ref("AlertPage")},
                                                  "text/csv": BINARY}},
                              **_problems(400, 401, 404, 429)}}},
            "/api/v1/studies/{study}/acknowledgements": {"post": {
                "summary": "Tell proapp which responses the EDC has imported",
                "operationId": "postAcknowledgements",
                "parameters": [STUDY],
                "description": "Name each (response id, revision) imported: revision 0 as completed, n after n "
                               "corrections (the `revision` of the pulled response). Acknowledging revision 0 "
                               "does not acknowledge a later correction. The older form `response_ids` "
                               "acknowledges revision 0 and answers with plain ids. Ids and revisions are whole "
                               "numbers (`171` and `171.0` alike, as JSON Schema's integer); a body may hold "
                               "the 10,000 items at their widest (up to 768 KiB), a larger one is refused (413).",
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
                    "application/json": {"schema": ref("AcknowledgementResult")}}},
                    **_problems(400, 401, 404, 413, 429)}}},
        },
        "components": {
            "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer",
                                           "description": "A key from `proapp api-key create`."}},
            "schemas": SCHEMAS,
            "responses": {"Problem": {"description": "An RFC 9457 problem document", "content": {
                "application/problem+json": {"schema": ref("Problem")}}}},
        },
    }
