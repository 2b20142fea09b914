"""The OpenAPI document as a data manager's tools read it: openapi-spec-validator accepts it, and openapi-python-client
generates a client whose JSON models are typed, which then pulls real responses and metadata from the app."""

from __future__ import annotations

import datetime
import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
from openapi_spec_validator import validate

from tests.export.conftest import complete_diary, make_key


def test_the_document_is_valid_openapi(app):
    spec = app.test_client().get("/api/v1/openapi.json").get_json()
    validate(spec)
    schemas = spec["components"]["schemas"]
    assert {"Problem", "Response", "ResponsePage", "Dictionary", "Alert", "RedcapRecord"} <= set(schemas)
    content = spec["paths"]["/api/v1/studies/{study}/responses"]["get"]["responses"]["200"]["content"]
    for media in ("text/csv", "application/xml", "application/vnd.cdisc.odm+xml"):
        assert content[media]["schema"] == {"type": "string", "format": "binary"}, media
    assert content["application/fhir+json"]["schema"] == {"$ref": "#/components/schemas/FhirResource"}


def test_a_generated_client_is_typed_and_reads_the_api(app, tmp_path: Path):
    spec = tmp_path / "openapi.json"
    spec.write_text(json.dumps(app.test_client().get("/api/v1/openapi.json").get_json()))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    done = subprocess.run([str(Path(sys.executable).parent / "openapi-python-client"), "generate", "--path",
                           str(spec), "--meta", "none", "--output-path", str(tmp_path / "proapp_client")],
                          capture_output=True, text=True, timeout=240, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    sys.path.insert(0, str(tmp_path))
    try:
        models = importlib.import_module("proapp_client.models")
        client_mod = importlib.import_module("proapp_client.client")
        for model, typed in ((models.Response, {"id": "int", "completed_at": "datetime.datetime",
                                                "corrections": "list[Correction]", "window": "Window"}),
                             (models.Dictionary, {"visits": "list[DictionaryVisit] | Unset",
                                                  "instruments": "list[DictionaryInstrument] | Unset"})):
            annotations = {k: str(v) for k, v in model.__annotations__.items()}
            for name, expected in typed.items():
                assert annotations[name].replace("'", "") in (expected, expected.removesuffix(" | Unset")), \
                    (model.__name__, name, annotations[name])

        key = make_key(app)
        complete_diary(app, "ADU-TLS-001")
        client = client_mod.AuthenticatedClient(base_url="https://pro.example.test", token=key)
        client.set_httpx_client(httpx.Client(transport=httpx.WSGITransport(app=app),
                                             base_url="https://pro.example.test",
                                             headers={"Authorization": f"Bearer {key}"}))
        get_responses = importlib.import_module("proapp_client.api.default.get_responses")
        page = get_responses.sync("ADUSE", client=client)
        assert isinstance(page, models.ResponsePage), page
        assert [r.instrument.code for r in page.data] == ["DU_DIARY", "PAIN_VAS"]
        assert isinstance(page.data[0].completed_at, datetime.datetime) and page.data[0].revision == 0
        # Each other format is an operation of its own, whose body the client reads without raising (it reads only
        # an operation's first media type: through get_responses, a CSV body would be parsed as JSON).
        for fmt, starts in (("csv", b"response_id,"), ("odm", b"<?xml"), ("fhir", b'{"resourceType":"Bundle"'),
                            ("redcap", b"[{")):
            operation = importlib.import_module(f"proapp_client.api.default.get_responses_{fmt}")
            detailed = operation.sync_detailed("ADUSE", client=client)
            assert detailed.status_code == 200 and detailed.content.startswith(starts), fmt
            parsed = detailed.parsed
            if fmt == "redcap":
                assert isinstance(parsed, list) and parsed[0].record_id == "ADU-TLS-001", parsed
            elif fmt == "fhir":
                assert isinstance(parsed, models.FhirResource) and parsed.resource_type == "Bundle", parsed
            elif fmt == "csv":
                assert isinstance(parsed, str) and parsed.startswith(starts.decode()), parsed
            else:                        # XML: the client has no model for it; the body is in .content
                assert parsed is None
        get_metadata = importlib.import_module("proapp_client.api.default.get_metadata")
        meta = get_metadata.sync("ADUSE", client=client)
        assert isinstance(meta, models.Dictionary) and meta.visits[0].code == "W0"
        assert isinstance(meta.instruments[0].items[0], models.DictionaryItem)
    finally:
        sys.path.remove(str(tmp_path))
        for name in [n for n in sys.modules if n == "proapp_client" or n.startswith("proapp_client.")]:
            del sys.modules[name]
