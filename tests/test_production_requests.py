"""What a deployed proapp gets from real browsers and the open internet: HTTPS without a Referer, cross-site
forms, forged hosts, hostile ``next`` values, CSV cells that look like formulas, logs that must not hold link
tokens, staff sessions the server can end. The end-to-end run behind nginx is tests/test_deployed.py."""

from __future__ import annotations

import io
import logging
import threading
from datetime import timedelta

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import func, select

from proapp import db
from proapp.audit.models import AuditEvent
from proapp.csvfiles import FORMULA_STARTS, safe_cell
from proapp.export.models import ApiPull
from proapp.patients.models import PatientContact
from proapp.questionnaire.models import Answer, Response
from tests.conftest import PRODUCTION_MAIL, fresh_app
from tests.export.conftest import auth, complete_diary, make_key
from tests.questionnaire.helpers import Patient, csrf, enrol_with_open_window, text, weekly_screens

PUBLIC = "https://pro.example.test"


@pytest.fixture
def prod_app(database_url, instance_dir):
    app = fresh_app(database_url, ENV="production", SECRET_KEY="p" * 64, PUBLIC_URL=PUBLIC,
                    PHONE_KEYS=Fernet.generate_key().decode(), AUDIT_KEYS="k1:" + "ab" * 32, SMS_GATEWAY="twilio",
                    TWILIO_ACCOUNT_SID="AC" + "0" * 32, TWILIO_AUTH_TOKEN="t" * 32, **PRODUCTION_MAIL)
    yield app
    app.extensions["proapp.engine"].dispose()


class HttpsClient:
    """A browser on the public HTTPS address that sends no Referer (the patient pages' policy) and says its
    forms come from the same origin, as Chromium does."""

    def __init__(self, app):
        self.client = app.test_client()
        self.client.environ_base["HTTP_SEC_FETCH_SITE"] = "same-origin"

    def get(self, path, **kw):
        return self.client.get(path, base_url=PUBLIC, **kw)

    def post(self, path, **kw):
        return self.client.post(path, base_url=PUBLIC, **kw)


def https_client(app) -> HttpsClient:
    return HttpsClient(app)


def test_every_patient_form_saves_over_https_without_a_referer(prod_app):
    pid, token = enrol_with_open_window(prod_app, "ADUSE", "W1", language="fr")
    client = https_client(prod_app)
    p = Patient(client, token)
    p.open()
    p.start()
    # The language switch.
    switched = client.post("/q/language", data={"csrf_token": csrf(p.page.text), "lang": "en", "next": p.path})
    assert switched.status_code == 303 and "expired" not in switched.headers["Location"]
    p.get(switched.headers["Location"])
    assert "Question" in p.page.text and p.page.headers["Referrer-Policy"] == "no-referrer"
    # Answers.
    for values in weekly_screens("10"):
        before = p.path
        p.answer(**values)
        assert p.path != before and "expired" not in p.path, (values, p.path)
    assert p.path == "/q/review"
    # A change from the review: "back to my answers" asks, then "Save" saves and comes back.
    p.get("/q/PAIN_VAS.PAIN_VAS?from=review")
    asked = client.post("/q/PAIN_VAS.PAIN_VAS", data={"csrf_token": csrf(p.page.text), "from": "review",
                                                      "leave": "1", "PAIN_VAS": "15"})
    assert asked.status_code == 200 and 'id="unsaved"' in asked.text
    saved = client.post("/q/PAIN_VAS.PAIN_VAS", data={"csrf_token": csrf(asked.text), "from": "review",
                                                      "PAIN_VAS": "15"})
    assert saved.status_code == 303 and saved.headers["Location"].endswith("/q/review?open=PAIN_VAS")
    # The SMS opt-out.
    stop = client.get("/q/sms")
    stopped = client.post("/q/sms", data={"csrf_token": csrf(stop.text)})
    assert stopped.status_code == 200 and "You will receive no more SMS from us." in text(stopped.text)
    # Submit.
    p.get("/q/review")
    done = p.submit()
    assert done.status_code == 200 and p.path == "/q/done"
    with prod_app.app_context():
        s = db.session()
        assert s.scalar(select(func.count()).select_from(Answer)) == 12
        assert s.scalar(select(func.count()).select_from(Response).where(Response.completed_at.is_not(None))) == 2
        assert s.get(PatientContact, pid).opted_out_at is not None


def test_a_form_posted_from_another_site_is_refused_even_with_a_valid_token(prod_app):
    _pid, token = enrol_with_open_window(prod_app, "ADUSE", "W1")
    client = https_client(prod_app)
    p = Patient(client, token)
    p.open()
    p.start()
    resp = client.post(p.path, data={"csrf_token": csrf(p.page.text), "DU_NEW": "N"},
                       headers={"Sec-Fetch-Site": "cross-site"})
    assert resp.status_code == 303 and resp.headers["Location"].endswith("?expired=1")
    with prod_app.app_context():
        assert db.session().scalar(select(func.count()).select_from(Answer)) == 0
    # The same form from the page itself is saved.
    assert p.answer(follow=False, DU_NEW="N").status_code == 303
    with prod_app.app_context():
        assert db.session().scalar(select(func.count()).select_from(Answer)) == 1


def test_production_answers_only_for_the_public_host(prod_app):
    client = prod_app.test_client()
    for headers in ({"Host": "evil.example"}, {"Host": "pro.example.test.evil.example"}):
        resp = client.get("/staff/login", base_url="https://evil.example", headers=headers)
        assert resp.status_code == 400, headers
        assert "evil" not in resp.get_data(as_text=True)
    assert client.get("/staff/login", base_url=PUBLIC).status_code == 200


def test_behind_the_proxy_a_forged_forwarded_host_is_refused(database_url, instance_dir):
    app = fresh_app(database_url, ENV="production", SECRET_KEY="p" * 64, PUBLIC_URL=PUBLIC, PROXY_HOPS=1,
                    PHONE_KEYS=Fernet.generate_key().decode(), AUDIT_KEYS="k1:" + "ab" * 32, SMS_GATEWAY="twilio",
                    TWILIO_ACCOUNT_SID="AC" + "0" * 32, TWILIO_AUTH_TOKEN="t" * 32, **PRODUCTION_MAIL)
    try:
        client = app.test_client()
        forged = client.get("/staff/", base_url="http://127.0.0.1:8000",
                            headers={"X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "https"})
        assert forged.status_code == 400 and "evil" not in forged.headers.get("Location", "")
        good = client.get("/staff/", base_url="http://127.0.0.1:8000",
                          headers={"X-Forwarded-Host": "pro.example.test", "X-Forwarded-Proto": "https"})
        assert good.status_code == 303 and "evil" not in good.headers["Location"]
    finally:
        app.extensions["proapp.engine"].dispose()


HOSTILE_NEXT = ["/staff/\r\nSet-Cookie: x=1", "/staff/\nx", "//evil.example/", "/\\evil.example", "/\t/evil.example",
                "/staff/\t/evil.example", "https://evil.example/staff/", "/staff\\..\\x", "/staff/%0d%0a",
                "/q/\r\nLocation: //evil", "/q//evil.example", " /staff/", "/staff/\x7f"]


def test_hostile_next_values_never_redirect_elsewhere_and_never_fail(app):
    from proapp.accounts.models import Role
    from proapp.accounts.staff import create_user
    from proapp.runtime import now
    from tests.dashboard.conftest import PASSWORD

    with app.app_context():
        create_user(db.session(), email="n@chu.test", password=PASSWORD, role=Role.ADMIN, now=now())
        db.session().commit()
    app.config.update(RATE_LOGIN_PER_ACCOUNT=0, RATE_LOGIN_PER_IP=0)     # one sign-in per hostile value
    for target in HOSTILE_NEXT:
        client = app.test_client()
        page = client.get("/staff/login")
        assert page.status_code == 200
        resp = client.post("/staff/login", query_string={"next": target},
                           data={"email": "n@chu.test", "password": PASSWORD, "csrf_token": csrf(page.text)})
        location = resp.headers["Location"]
        assert resp.status_code == 303 and location in ("/staff/", "/staff/%0d%0a"), (target, location)
        token = csrf(client.get("/staff/").text)                # the session is new since sign-in
        switch = client.post("/language", data={"lang": "en", "next": target, "csrf_token": token})
        assert switch.status_code == 303 and switch.headers["Location"] in ("/", "/staff/%0d%0a"), target
    _pid, token = enrol_with_open_window(app, "ADUSE", "W1")
    client = app.test_client()
    p = Patient(client, token)
    p.open()
    for target in HOSTILE_NEXT:
        resp = client.post("/q/language", data={"lang": "en", "next": target, "csrf_token": csrf(p.page.text)})
        assert resp.status_code == 303 and resp.headers["Location"] == "/q", target


def test_a_post_to_a_screen_that_does_not_exist_is_a_404_and_stores_nothing(app):
    _pid, token = enrol_with_open_window(app, "ADUSE", "W1")
    client = app.test_client()
    p = Patient(client, token)
    p.open()
    p.start()
    for key in ("NOPE.NOPE", "DU_DIARY.DU_ULCER.11", "PAIN_VAS.PAIN_VAS2"):
        resp = client.post(f"/q/{key}", data={"csrf_token": csrf(p.page.text), "PAIN_VAS": "50"})
        assert resp.status_code == 404, key
    assert client.get("/q/NOPE.NOPE").status_code == 303           # a GET still leads to the right screen
    with app.app_context():
        assert db.session().scalar(select(func.count()).select_from(Answer)) == 0


def test_csv_cells_that_would_start_a_formula_are_neutralised():
    for start in FORMULA_STARTS:
        assert safe_cell(f"{start}HYPERLINK(\"http://evil\")") == f"'{start}HYPERLINK(\"http://evil\")"
    assert safe_cell("ADU-TLS-001") == "ADU-TLS-001" and safe_cell(-3) == -3 and safe_cell(None) is None


def test_the_certified_audit_copy_neutralises_formulas_typed_by_staff(app):
    """A reason typed by staff is the free text that reaches a CSV: every formula start comes out quoted."""
    from proapp.accounts.models import Role
    from proapp.accounts.staff import create_user
    from proapp.runtime import now
    from tests.dashboard.conftest import PASSWORD, Staff

    with app.app_context():
        create_user(db.session(), email="c@chu.test", password=PASSWORD, role=Role.ADMIN, now=now())
        db.session().commit()
    pid, _token = enrol_with_open_window(app, "ADUSE", "W1")
    staff = Staff(app, None)
    staff.login("c@chu.test", PASSWORD, expect=303)
    for n, start in enumerate(FORMULA_STARTS):
        action = "pause" if n % 2 == 0 else "resume"
        resp = staff.post(f"/staff/patients/{pid}/actions/{action}", data={"reason": f"{start}cmd|'/c calc'!A{n}"})
        assert resp.status_code == 303, resp.text[:300]
    copy = staff.get(f"/staff/patients/{pid}/audit.csv").get_data(as_text=True)
    import csv

    cells = [cell for row in csv.reader(io.StringIO(copy)) for cell in row]
    assert not [c for c in cells if c.startswith(FORMULA_STARTS)]
    typed = [c for c in cells if "calc" in c]
    assert len(typed) == len(FORMULA_STARTS)          # tab and CR were stripped from the reasons as typed
    assert sum(c.startswith("'") for c in typed) == 4, typed


def test_an_over_long_password_costs_the_same_as_a_wrong_one(app, monkeypatch):
    """Same path, same work: one scrypt hash for a wrong password and for one over the length limit."""
    import hashlib

    from proapp.accounts import staff as accounts
    from proapp.accounts.models import Role
    from proapp.runtime import now

    with app.app_context():
        s = db.session()
        accounts.create_user(s, email="t@chu.test", password="a good long password", role=Role.ADMIN, now=now())
        s.commit()
        accounts._dummy_check("warm")           # the dummy hash exists before counting
        calls = []
        real = hashlib.scrypt
        monkeypatch.setattr(hashlib, "scrypt", lambda *a, **k: calls.append(1) or real(*a, **k))
        counts = []
        for password in ("wrong password", "x" * 5000):
            calls.clear()
            with pytest.raises(accounts.LoginRefused):
                accounts.authenticate(s, "t@chu.test", password, now=now(), max_failures=100,
                                      lock_for=timedelta(minutes=1))
            counts.append(len(calls))
        assert counts == [1, 1]
        s.rollback()


def test_a_refused_api_request_writes_nothing(app, rate_window):
    key = make_key(app)
    app.config["RATE_API_PER_MINUTE"] = 2
    client = app.test_client()
    codes = [client.get("/api/v1/studies/ADUSE/metadata", headers=auth(key)).status_code for _ in range(40)]
    assert codes[:2] == [200, 200] and set(codes[2:]) == {429}
    with app.app_context():
        s = db.session()
        assert s.scalar(select(func.count()).select_from(ApiPull)) == 2
        assert s.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "api.request")) == 2


@pytest.mark.parametrize("fmt", ["json", "csv", "odm", "fhir", "redcap"])
def test_every_format_pages_to_the_end_one_response_at_a_time(app, fmt):
    for n in range(3):
        complete_diary(app, f"ADU-TLS-{n + 1:03d}", ulcers=0)
    key = make_key(app)
    client = app.test_client()
    cursor, pages, has_more = None, 0, True
    while has_more:
        resp = client.get("/api/v1/studies/ADUSE/responses",
                          query_string={"format": fmt, "limit": 1, **({"cursor": cursor} if cursor else {})},
                          headers=auth(key))
        body = resp.get_data(as_text=True)
        assert resp.status_code == 200, body[:300]
        if fmt == "fhir":
            import json

            bundle = json.loads(body)
            has_next = any(link["relation"] == "next" for link in bundle.get("link", []))
            assert has_next == (resp.headers["X-Has-More"] == "true")
        cursor, has_more = resp.headers["X-Next-Cursor"], resp.headers["X-Has-More"] == "true"
        pages += 1
        assert pages < 20
    assert pages == 6              # 3 patients x (pain VAS + ulcer diary)


def test_link_tokens_never_reach_the_development_servers_log(app, caplog):
    from werkzeug.serving import make_server

    _pid, token = enrol_with_open_window(app, "ADUSE", "W1")
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        import http.client

        with caplog.at_level(logging.INFO, logger="werkzeug"):
            conn = http.client.HTTPConnection("127.0.0.1", server.server_port, timeout=10)
            conn.request("GET", f"/s/{token}")
            assert conn.getresponse().status == 303
            conn.close()
    finally:
        server.shutdown()
        thread.join(timeout=5)
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "/s/[redacted]" in logged and token not in logged


def test_link_tokens_never_reach_the_apps_own_log(app, caplog):
    """An error on a link page is logged by Flask with the path: redacted."""
    from proapp.questionnaire import answering as answering

    def broken(*_a, **_k):
        raise RuntimeError("boom")

    app.config["PROPAGATE_EXCEPTIONS"] = False
    token = "T0k3n-abcdefghijklmnop"
    original = answering.resolve_link
    answering.resolve_link = broken
    try:
        with caplog.at_level(logging.ERROR):
            assert app.test_client().get(f"/s/{token}").status_code == 500
    finally:
        answering.resolve_link = original
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "Exception on /s/[redacted] [GET]" in logged and token not in logged


def test_redaction_keeps_everything_but_the_token():
    from proapp.logs import redact

    assert redact('127.0.0.1 "GET /s/AbC_-123 HTTP/1.1" 303') == '127.0.0.1 "GET /s/[redacted] HTTP/1.1" 303'
    assert redact("/s/tok?x=1 and /s/other") == "/s/[redacted]?x=1 and /s/[redacted]"
    assert redact("/static/app.css /staff/patients/3") == "/static/app.css /staff/patients/3"


def test_staff_account_forms_work_over_https_in_production(prod_app):
    """Production asks admins for a second factor: set-up, the code step, "forgot your password?" and a reset
    link, each posted over HTTPS without a Referer, as behind the proxy."""
    import re as _re

    import pyotp

    from proapp.accounts import invitations
    from proapp.accounts import staff as accounts
    from proapp.accounts.models import Role, User
    from proapp.runtime import now

    with prod_app.app_context():
        s = db.session()
        accounts.create_user(s, email="admin@chu.test", password="a good long password", role=Role.ADMIN, now=now())
        s.commit()
    client = https_client(prod_app)
    page = client.get("/staff/login")
    signed = client.post("/staff/login", data={"csrf_token": csrf(page.text), "email": "admin@chu.test",
                                               "password": "a good long password"})
    assert signed.status_code == 303
    setup = client.get("/staff/")
    assert setup.headers["Location"].endswith("/staff/account/two-factor")        # required in production
    page = client.get("/staff/account/two-factor")
    secret = _re.search(r'id="totp-key">([A-Z2-7 ]{39})<', page.text).group(1).replace(" ", "")   # in fours
    on = client.post("/staff/account/two-factor?keep=1",
                     data={"csrf_token": csrf(page.text), "code": pyotp.TOTP(secret).now()})
    codes = _re.findall(r"<code>([a-z0-9]{5}-[a-z0-9]{5})</code>", on.text)
    assert on.status_code == 200 and len(codes) == 10
    other = https_client(prod_app)
    page = other.get("/staff/login")
    first = other.post("/staff/login", data={"csrf_token": csrf(page.text), "email": "admin@chu.test",
                                             "password": "a good long password"})
    assert first.headers["Location"].endswith("/staff/login/code")
    page = other.get("/staff/login/code")
    assert other.post("/staff/login/code", data={"csrf_token": csrf(page.text), "code": codes[0]}).status_code == 303
    anonymous = https_client(prod_app)
    page = anonymous.get("/staff/forgot")
    forgot = anonymous.post("/staff/forgot", data={"csrf_token": csrf(page.text), "email": "admin@chu.test"})
    assert forgot.status_code == 200
    forgot.close()                  # the reset is queued once the answer is sent
    with prod_app.app_context(), db.transaction() as s:
        mail_id = invitations.claim(s, "test", now())[0]
        mail = invitations.prepare(s, mail_id, now(), PUBLIC)
    path = _re.search(r"https://\S+(/staff/reset/\S+)", mail.body).group(1)
    page = anonymous.get(path)
    reset = anonymous.post(path, data={"csrf_token": csrf(page.text), "password": "seven otters under the bridge",
                                       "password2": "seven otters under the bridge"})
    assert reset.status_code == 303 and reset.headers["Location"].endswith("/staff/login/code")   # not signed in
    assert anonymous.get("/staff/").status_code == 303
    with prod_app.app_context():
        assert db.session().scalar(select(User.failed_logins).where(User.email == "admin@chu.test")) == 0


def test_gunicorns_request_line_without_a_forwarded_address_is_written_redacted():
    """A request straight to gunicorn (the monitoring's /readyz) has no X-Forwarded-For: gunicorn's atoms answer
    "-" for it, and the redacting filter must keep them able to, or the line is lost to a logging error."""
    import io

    from gunicorn.glogging import SafeAtoms

    from proapp.logs import RedactTokens

    out = io.StringIO()
    logger = logging.Logger("gunicorn.access.test")
    handler = logging.StreamHandler(out)
    logger.addHandler(handler)
    logger.addFilter(RedactTokens())
    fmt = '{"client":"%({x-forwarded-for}i)s","path":"%(U)s","status":%(s)s}'
    for path in ("/readyz", "/s/T0k3n-abcdefghijklmnop"):
        logger.info(fmt, SafeAtoms({"U": path, "s": "200", "{host}i": "127.0.0.1"}))
    assert out.getvalue().splitlines() == ['{"client":"-","path":"/readyz","status":200}',
                                           '{"client":"-","path":"/s/[redacted]","status":200}']
