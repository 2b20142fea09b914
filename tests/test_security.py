"""Security headers on every route, production cookies, and the rate limits (shared by every process)."""

from __future__ import annotations

import re

from cryptography.fernet import Fernet

from tests.conftest import PRODUCTION_MAIL, fresh_app, make_app
from tests.export.conftest import auth, make_key

SKIP_STATUS = {500}


def _requests(app):
    values = {"token": "x" * 22, "key": "DLQI.DLQI01", "message_id": 1, "patient_id": 1, "action": "pause",
              "code": "ADUSE", "study": "ADUSE", "filename": "app.css", "response_id": 1, "alert_id": 1, "user_id": 1,
              "name": "DLQI"}
    for rule in app.url_map.iter_rules():
        url = rule.build({k: v for k, v in values.items() if k in rule.arguments})[1]
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            yield rule.endpoint, method, url


def test_every_route_sends_the_security_headers(app):
    client = app.test_client()
    seen = set()
    for endpoint, method, url in _requests(app):
        resp = client.open(url, method=method)
        resp.close()                                          # static files are streamed from disk
        assert resp.status_code not in SKIP_STATUS, (method, url)
        csp = resp.headers.get("Content-Security-Policy", "")
        where = f"{method} {url}"
        for directive in ("default-src 'self'", "object-src 'none'", "base-uri 'none'", "frame-ancestors 'none'"):
            assert directive in csp, where
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp, where
        assert resp.headers["X-Content-Type-Options"] == "nosniff", where
        assert resp.headers["Referrer-Policy"] in ("same-origin", "no-referrer"), where
        assert "Strict-Transport-Security" not in resp.headers, where      # development: plain http
        seen.add(endpoint)
    assert len(seen) == len({r.endpoint for r in app.url_map.iter_rules()})


def test_production_adds_hsts_and_host_only_secure_cookies(database_url, instance_dir):
    app = make_app(database_url, ENV="production", SECRET_KEY="p" * 64, PUBLIC_URL="https://pro.example.test",
                   PHONE_KEYS=Fernet.generate_key().decode(), AUDIT_KEYS="k1:" + "ab" * 32, SMS_GATEWAY="twilio",
                   TWILIO_ACCOUNT_SID="AC" + "0" * 32, TWILIO_AUTH_TOKEN="t" * 32, **PRODUCTION_MAIL)
    try:
        client = app.test_client()
        resp = client.get("/staff/login", base_url="https://pro.example.test")
        assert resp.headers["Strict-Transport-Security"].startswith("max-age=31536000")
        cookie = resp.headers["Set-Cookie"]
        assert cookie.startswith("__Host-session=")
        for flag in ("Secure", "HttpOnly", "SameSite=Lax", "Path=/"):
            assert flag in cookie
        assert "Domain=" not in cookie
        # The language chosen on this browser (the sign-in page's): host-only and secure too.
        token = re.search(r'name="csrf_token" value="([^"]+)"', resp.get_data(as_text=True)).group(1)
        switched = client.post("/language", data={"lang": "en", "next": "/staff/login", "csrf_token": token},
                               base_url="https://pro.example.test", headers={"Referer": "https://pro.example.test/"})
        lang = next(c for c in switched.headers.getlist("Set-Cookie") if c.startswith("__Host-lang="))
        for flag in ("__Host-lang=en", "Secure", "HttpOnly", "SameSite=Lax", "Path=/"):
            assert flag in lang
        assert "Domain=" not in lang
    finally:
        app.extensions["proapp.engine"].dispose()


def test_sms_links_are_rate_limited_per_ip_across_processes(database_url, instance_dir, rate_window):
    first = fresh_app(database_url, RATE_LINK_PER_MINUTE=3)
    second = make_app(database_url, RATE_LINK_PER_MINUTE=3)       # another process, same database
    try:
        a, b = first.test_client(), second.test_client()
        assert [a.get("/s/" + "x" * 22).status_code for _ in range(2)] == [404, 404]
        assert b.get("/s/" + "y" * 22).status_code == 404
        limited = b.get("/s/" + "z" * 22)
        assert limited.status_code == 429 and 1 <= int(limited.headers["Retry-After"]) <= 60
        assert "Trop de tentatives" in limited.get_data(as_text=True)
        other_ip = a.get("/s/" + "x" * 22, environ_base={"REMOTE_ADDR": "10.0.0.9"})
        assert other_ip.status_code == 404
    finally:
        for app in (first, second):
            app.extensions["proapp.engine"].dispose()


def test_spent_rate_counters_are_purged_by_the_worker(database_url, instance_dir):
    """Issue 28, finding 13: a counter row per IP address and account ever seen would stay for ever; the worker
    deletes each once the longest window (15 minutes) has passed since its own began."""
    import time
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import func, select

    from proapp import db
    from proapp.ratelimit import RateCounter

    app = fresh_app(database_url)
    try:
        client = app.test_client()
        for ip in ("10.0.0.1", "10.0.0.2"):
            client.get("/s/" + "x" * 22, environ_base={"REMOTE_ADDR": ip})
        started = datetime.fromtimestamp(time.time(), UTC)

        def tick(after: timedelta) -> str:
            result = app.test_cli_runner().invoke(args=["proapp", "tick", "--now", (started + after).isoformat()])
            assert result.exit_code == 0, result.output
            return result.output

        def rows() -> int:
            with app.app_context():
                return db.session().scalar(select(func.count()).select_from(RateCounter))

        assert rows() == 2
        assert "rate_counters_purged=0" in tick(timedelta(minutes=5)) and rows() == 2
        assert "rate_counters_purged=2" in tick(timedelta(minutes=16)) and rows() == 0
    finally:
        app.extensions["proapp.engine"].dispose()


def test_sign_in_is_rate_limited_per_account(database_url, instance_dir, rate_window):
    import re

    app = fresh_app(database_url, RATE_LOGIN_PER_ACCOUNT=2, LOGIN_MAX_FAILURES=50)
    try:
        client = app.test_client()
        token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/staff/login").get_data(as_text=True))
        data = {"email": "who@chu.test", "password": "wrong", "csrf_token": token.group(1)}
        assert [client.post("/staff/login", data=data).status_code for _ in range(2)] == [200, 200]
        limited = client.post("/staff/login", data=data, environ_base={"REMOTE_ADDR": "10.1.1.1"})
        assert limited.status_code == 429 and "Retry-After" in limited.headers
        assert client.post("/staff/login", data={**data, "email": "other@chu.test"}).status_code == 200
    finally:
        app.extensions["proapp.engine"].dispose()


def test_the_api_is_rate_limited_per_key(database_url, instance_dir, rate_window):
    app = fresh_app(database_url, RATE_API_PER_MINUTE=2)
    try:
        key, other = make_key(app), make_key(app)
        client = app.test_client()
        codes = [client.get("/api/v1/studies/ADUSE/metadata", headers=auth(key)).status_code for _ in range(3)]
        assert codes == [200, 200, 429]
        limited = client.get("/api/v1/studies/ADUSE/metadata", headers=auth(key))
        assert limited.mimetype == "application/problem+json" and int(limited.headers["Retry-After"]) >= 1
        assert client.get("/api/v1/studies/ADUSE/metadata", headers=auth(other)).status_code == 200
    finally:
        app.extensions["proapp.engine"].dispose()


def test_nul_bytes_are_refused_everywhere_with_a_400(app):
    """PostgreSQL refuses NUL bytes in text (found by the property tests): refused up front, never a 500."""
    client = app.test_client()
    for path in ("/?q=a%00b", "/staff/login?next=%00", "/api/v1/studies/ADUSE/responses?cursor=%00"):
        assert client.get(path).status_code == 400, path
    assert client.post("/language", data={"lang": "fr\x00"}).status_code == 400
