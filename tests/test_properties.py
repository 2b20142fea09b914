"""Property-based tests (hypothesis) over the forms and API parameters: whatever is sent, never a 500, and
nothing is stored from invalid input."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from proapp import db
from proapp.export.models import Acknowledgement
from proapp.questionnaire.models import Answer
from tests.export.conftest import auth, complete_diary, make_key
from tests.questionnaire.helpers import enrol_with_open_window

SETTINGS = settings(max_examples=60, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
junk = st.text(max_size=40) | st.sampled_from(["", "0", "-1", "101", "1e3", "NaN", "Y", "N", "2026-02-30", "<b>",
                                                "' OR 1=1 --", "\x00", "a\x00b", "９", "35.5", " 42 "])


def count(app, model) -> int:
    with app.app_context():
        return db.session().scalar(select(func.count()).select_from(model))


def _csrf(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def test_patient_answers(app):
    _pid, token = enrol_with_open_window(app, "ADUSE", "W1", subject="ADU-TLS-001")
    client = app.test_client()
    client.get(f"/s/{token}")
    token_field = _csrf(client.get("/q/DU_DIARY.DU_NEW").get_data(as_text=True))
    for code in ("DU_NEW", "DU_INFECT", "DU_ANTIBIO", "DU_NECROSIS", "DU_HOSPITAL", "DU_SURGERY", "DU_INJECTED",
                 "DU_HARVEST"):                         # the diary first: the pain scale comes after it
        assert client.post(f"/q/DU_DIARY.{code}", data={"csrf_token": token_field, code: "N"}).status_code == 303

    @SETTINGS
    @given(value=junk, extra=st.dictionaries(st.text(max_size=10), junk, max_size=3))
    def check(value, extra):
        before = count(app, Answer)
        resp = client.post("/q/PAIN_VAS.PAIN_VAS", data={**extra, "csrf_token": token_field, "PAIN_VAS": value})
        assert resp.status_code in (200, 303, 400, 413, 422), resp.status_code
        valid = re.fullmatch(r"0|[1-9]\d?|100", value.strip()) is not None
        if resp.status_code != 303:
            assert count(app, Answer) == before
        else:
            assert valid, value

    check()


def test_dates_in_the_ulcer_diary(app):
    _pid, token = enrol_with_open_window(app, "ADUSE", "W1", subject="ADU-TLS-002")
    client = app.test_client()
    client.get(f"/s/{token}")
    page = client.get("/q/DU_DIARY.DU_NEW").get_data(as_text=True)
    for path, values in (("DU_NEW", {"DU_NEW": "Y"}), ("DU_ULCER.1.DU_HAND", {"DU_HAND": "L"}),
                         ("DU_ULCER.1.DU_FINGER", {"DU_FINGER": "2"}), ("DU_ULCER.1.DU_SITE", {"DU_SITE": "TIP"})):
        resp = client.post(f"/q/DU_DIARY.{path}", data={"csrf_token": _csrf(page), **values})
        assert resp.status_code == 303, path
    path = "/q/DU_DIARY.DU_ULCER.1.DU_ONSET"
    assert resp.headers["Location"] == path
    today = datetime.now(ZoneInfo("Europe/Paris")).date()        # the patient's calendar

    @SETTINGS
    @given(onset=junk | st.dates().map(date.isoformat))
    def check(onset):
        before = count(app, Answer)
        resp = client.post(path, data={"csrf_token": _csrf(page), "DU_ONSET": onset})
        assert resp.status_code in (200, 303, 400, 404, 422), resp.status_code
        if resp.status_code != 303:
            assert count(app, Answer) == before
        else:                      # a day within the last month, not in the future
            day = date.fromisoformat(onset.strip())
            assert today - timedelta(days=31) <= day <= today, onset

    check()


def test_api_parameters_and_acknowledgements(app):
    key = make_key(app)
    complete_diary(app, "ADU-TLS-001")
    client = app.test_client()

    @SETTINGS
    @given(params=st.dictionaries(st.sampled_from(["cursor", "limit", "format", "labels", "x"]), junk, max_size=4),
           body=st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | junk,
                             lambda children: st.lists(children, max_size=4) | st.dictionaries(
                                 st.sampled_from(["response_ids", "x"]), children, max_size=2), max_leaves=8))
    def check(params, body):
        resp = client.get("/api/v1/studies/ADUSE/responses", query_string=params, headers=auth(key))
        assert resp.status_code in (200, 400, 429), resp.status_code
        if resp.status_code == 400:
            assert resp.mimetype == "application/problem+json"
        before = count(app, Acknowledgement)
        ack = client.post("/api/v1/studies/ADUSE/acknowledgements", json=body, headers=auth(key))
        assert ack.status_code in (200, 400, 429), ack.status_code
        if ack.status_code != 200:
            assert count(app, Acknowledgement) == before

    check()


def test_language_switches_and_metadata_parameters(app):
    _pid, token = enrol_with_open_window(app, "ADUSE", "W1", subject="ADU-TLS-003")
    key = make_key(app)
    patient = app.test_client()
    patient.get(f"/s/{token}")
    csrf = _csrf(patient.get("/q").get_data(as_text=True))
    anon = app.test_client()
    anon_csrf = _csrf(anon.get("/").get_data(as_text=True))

    @SETTINGS
    @given(lang=junk, target=junk | st.sampled_from(["//evil.example", "/q/../staff", "https://x.y", "/q"]),
           fmt=junk, code=junk)
    def check(lang, target, fmt, code):
        for resp in (patient.post("/q/language", data={"csrf_token": csrf, "lang": lang, "next": target}),
                     anon.post("/language", data={"csrf_token": anon_csrf, "lang": lang, "next": target})):
            assert resp.status_code in (303, 400), resp.status_code        # 400: a NUL byte
            assert not resp.headers.get("Location", "/").startswith(("//", "http"))
        meta = anon.get("/api/v1/studies/ADUSE/metadata", query_string={"format": fmt}, headers=auth(key))
        assert meta.status_code in (200, 400, 429)
        q = anon.get(f"/api/v1/studies/ADUSE/questionnaires/{code}", headers=auth(key)) if code.isprintable() \
            and "/" not in code and code not in ("", ".", "..") else None
        assert q is None or q.status_code in (200, 404, 429)

    check()
