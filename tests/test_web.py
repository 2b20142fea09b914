"""Shared pages: language selection, error pages in the visitor's language, headers."""


def test_home_is_french_by_default(client):
    page = client.get("/")
    assert page.status_code == 200
    assert '<html lang="fr">' in page.text
    assert "Questionnaires patients pour les essais cliniques" in page.text


def test_browser_language_is_followed(client):
    page = client.get("/", headers={"Accept-Language": "en-GB,en;q=0.8"})
    assert '<html lang="en">' in page.text
    assert "Patient questionnaires for clinical trials" in page.text


def csrf_token(page_text: str) -> str:
    import re

    return re.search(r'name="csrf_token" value="([^"]+)"', page_text).group(1)


def test_language_switch_is_remembered(client):
    page = client.get("/")
    switched = client.post("/language", data={"lang": "en", "next": "/", "csrf_token": csrf_token(page.text)})
    assert switched.status_code == 303
    assert switched.headers["Location"] == "/"
    assert "Patient questionnaires for clinical trials" in client.get("/").text


def test_language_switch_never_redirects_off_site(client):
    page = client.get("/")
    resp = client.post("/language", data={"lang": "en", "next": "//evil.example", "csrf_token": csrf_token(page.text)})
    assert resp.headers["Location"] == "/"


def test_language_switch_without_csrf_is_a_friendly_page(client):
    resp = client.post("/language", data={"lang": "en"})
    assert resp.status_code == 400
    assert "Cette page avait expiré" in resp.text


def test_unknown_page_is_friendly_in_french(client):
    resp = client.get("/nowhere")
    assert resp.status_code == 404
    assert "Cette page n'existe pas." in resp.text.replace("&#39;", "'")


def test_security_headers(client):
    resp = client.get("/")
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    csp = resp.headers["Content-Security-Policy"]
    assert "object-src 'none'" in csp and "frame-ancestors 'none'" in csp and "'unsafe-inline'" not in csp


def test_health_check(client):
    assert client.get("/healthz").json == {"status": "ok"}


def test_oversized_body_is_413(client):
    resp = client.post("/language", data={"lang": "x" * 100_000})
    assert resp.status_code == 413
