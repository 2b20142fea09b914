"""Staff accounts from the browser: invitations and password resets through a real SMTP server on 127.0.0.1, the
password rules, one's own password change, and the admins' changes (each one audited, the last admin kept)."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from proapp import db
from proapp.accounts.models import Role, User
from proapp.accounts.staff import create_user
from proapp.audit.models import AuditEvent
from tests.alerts.conftest import later, make_alert_app, worker
from tests.mailserver import Inbox
from tests.questionnaire.helpers import text

ADMIN, PASSWORD = "admin@chu.test", "correct horse battery"


@pytest.fixture
def app(database_url, instance_dir, smtp, fake_twilio):
    app = make_alert_app(database_url, smtp, fake_twilio)     # admin@chu.test, tls@chu.test (fr) ...
    yield app
    app.extensions["proapp.engine"].dispose()


def csrf(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def signed_in(app, email: str = ADMIN, password: str = PASSWORD):
    client = app.test_client()
    page = client.get("/staff/login")
    resp = client.post("/staff/login", data={"csrf_token": csrf(page.text), "email": email, "password": password})
    assert resp.status_code == 303, resp.text
    return client


def post(client, url: str, **data):
    page = client.get(url)
    return client.post(url, data={"csrf_token": csrf(page.text), **data})


def link_in(message, kind: str) -> str:
    url = re.search(rf"https://\S+/staff/{kind}/[A-Za-z0-9_-]+", message.get_content()).group(0)
    return url.split("https://pro.example.test", 1)[1]


def actions(app) -> list[str]:
    with app.app_context():
        return [e.action for e in db.session().scalars(select(AuditEvent).order_by(AuditEvent.id))]


def test_an_invitation_sets_a_password_once_and_signs_in(app, smtp: Inbox):
    admin = signed_in(app)
    resp = post(admin, "/staff/accounts/new", email="Nurse@CHU.test", role="coordinator", study="ADUSE",
                sites="TLS", language="fr")
    assert resp.status_code == 303
    assert worker(app).account_mails()["sent"] == 1
    [mail] = smtp.to("nurse@chu.test")
    assert mail["Subject"] == "proapp : votre compte de l'équipe d'étude"
    assert "72 heures" in mail.get_content() and "ADU-" not in mail.get_content()
    path = link_in(mail, "welcome")
    nurse = app.test_client()
    page = nurse.get(path, headers={"Accept-Language": "en-GB,en;q=0.9"})     # an English browser
    assert page.status_code == 200 and "nurse@chu.test" in page.text
    assert "Choisissez votre mot de passe" in text(page.text)                # the invitation's language
    weak = nurse.post(path, data={"csrf_token": csrf(page.text), "password": "aaaaaaaaaaaaaaaa",
                                  "password2": "aaaaaaaaaaaaaaaa"})
    assert weak.status_code == 422 and "trop facile à deviner" in text(weak.text)
    common = nurse.post(path, data={"csrf_token": csrf(page.text), "password": "123qweasdzxc",
                                    "password2": "123qweasdzxc"})
    assert common.status_code == 422 and "trop courant" in text(common.text)
    differ = nurse.post(path, data={"csrf_token": csrf(page.text), "password": "blue kettle on a quiet hill",
                                    "password2": "blue kettle on a quiet hil"})
    assert differ.status_code == 422 and "diffèrent" in text(differ.text)
    done = nurse.post(path, data={"csrf_token": csrf(page.text), "password": "blue kettle on a quiet hill",
                                  "password2": "blue kettle on a quiet hill"})
    assert done.status_code == 303 and done.headers["Location"].endswith("/staff/")
    assert "ADUSE" in nurse.get("/staff/").text                     # signed in, on her study
    again = app.test_client().get(path)
    assert again.status_code == 404 and "ne fonctionne plus" in text(again.text)
    assert signed_in(app, "nurse@chu.test", "blue kettle on a quiet hill")
    for needed in ("user.invited", "user.invite_mail_queued", "user.invite_mail_sent", "user.password_changed",
                   "user.invitation_accepted"):
        assert needed in actions(app), needed


def test_an_invitation_expires_after_72_hours_and_a_new_one_replaces_it(app, smtp):
    admin = signed_in(app)
    post(admin, "/staff/accounts/new", email="late@chu.test", role="monitor", study="ADUSE", language="en")
    worker(app).account_mails()
    first = link_in(smtp.to("late@chu.test")[0], "welcome")
    later(app, hours=72, minutes=1)
    assert app.test_client().get(first).status_code == 404
    with app.app_context():
        uid = db.session().scalar(select(User.id).where(User.email == "late@chu.test"))
    admin = signed_in(app)
    assert post(admin, f"/staff/accounts/{uid}", reason="x").status_code == 422    # the edit form needs a role
    page = admin.get(f"/staff/accounts/{uid}")
    admin.post(f"/staff/accounts/{uid}/resend", data={"csrf_token": csrf(page.text), "reason": "expired"})
    worker(app).account_mails()
    second = link_in(smtp.to("late@chu.test")[1], "welcome")
    assert smtp.to("late@chu.test")[1]["Subject"] == "proapp: your study team account"
    assert app.test_client().get(second).status_code == 200


def test_forgot_password_says_the_same_for_everyone_and_resets_once_within_the_hour(app, smtp):
    other_session = signed_in(app, "tls@chu.test")
    known = post(app.test_client(), "/staff/forgot", email="tls@chu.test")
    unknown = post(app.test_client(), "/staff/forgot", email="nobody@chu.test")
    assert known.status_code == unknown.status_code == 200
    known.close(), unknown.close()          # the request is queued once the answer is sent
    strip = lambda page: re.sub(r'name="csrf_token" value="[^"]+"', "", page.text)  # noqa: E731
    assert strip(known) == strip(unknown)
    worker(app).account_mails()
    assert [m["To"] for m in smtp.all()] == ["tls@chu.test"]
    path = link_in(smtp.to("tls@chu.test")[0], "reset")
    client = app.test_client()
    page = client.get(path)
    done = client.post(path, data={"csrf_token": csrf(page.text), "password": "seven otters under the bridge",
                                   "password2": "seven otters under the bridge"})
    assert done.status_code == 303
    assert other_session.get("/staff/").status_code == 303            # the reset ended the other session
    assert app.test_client().get(path).status_code == 404              # once
    assert "user.password_reset" in actions(app)
    post(app.test_client(), "/staff/forgot", email="tls@chu.test").close()
    worker(app).account_mails()
    assert len(smtp.to("tls@chu.test")) == 1        # a second request within a minute sends no second mail
    later(app, minutes=2)
    post(app.test_client(), "/staff/forgot", email="tls@chu.test").close()
    worker(app).account_mails()
    expired = link_in(smtp.to("tls@chu.test")[1], "reset")
    later(app, hours=1, minutes=1)
    assert app.test_client().get(expired).status_code == 404


def test_changing_ones_password_needs_the_current_one_and_ends_the_other_sessions(app):
    phone = signed_in(app, "tls@chu.test")
    desk = signed_in(app, "tls@chu.test")
    wrong = post(desk, "/staff/account", current="not it at all", password="a brand new phrase here",
                 password2="a brand new phrase here")
    assert wrong.status_code == 422 and "pas votre mot de passe actuel" in text(wrong.text)
    ok = post(desk, "/staff/account", current=PASSWORD, password="a brand new phrase here",
              password2="a brand new phrase here")
    assert ok.status_code == 303
    assert desk.get("/staff/account").status_code == 200               # this browser stays signed in
    assert phone.get("/staff/").status_code == 303                      # the other one is out
    assert signed_in(app, "tls@chu.test", "a brand new phrase here")


def test_admins_change_disable_and_end_sessions_with_a_reason_and_keep_the_last_admin(app):
    admin = signed_in(app)
    listing = text(admin.get("/staff/accounts").text)
    assert "tls@chu.test" in listing and "ADUSE (TLS)" in listing
    with app.app_context():
        ids = {u.email: u.id for u in db.session().scalars(select(User))}
    nurse = signed_in(app, "tls@chu.test")
    assert nurse.get("/staff/accounts").status_code == 403
    changed = post(admin, f"/staff/accounts/{ids['tls@chu.test']}", role="monitor", study="ADUSE", language="fr",
                   reason="moved to monitoring")
    assert changed.status_code == 303
    assert nurse.get("/staff/").status_code == 303                      # new rights: sign in again
    page = admin.get(f"/staff/accounts/{ids['tls@chu.test']}")
    no_reason = admin.post(f"/staff/accounts/{ids['tls@chu.test']}/disable", data={"csrf_token": csrf(page.text)})
    assert "Give a reason" in text(admin.get(no_reason.headers["Location"]).text)
    admin.post(f"/staff/accounts/{ids['tls@chu.test']}/disable", data={"csrf_token": csrf(page.text),
                                                                       "reason": "left the hospital"})
    refused = post(app.test_client(), "/staff/login", email="tls@chu.test", password=PASSWORD)
    assert refused.status_code == 200 and "Adresse e-mail ou mot de passe incorrect" in text(refused.text)
    with app.app_context():
        assert db.session().get(User, ids["tls@chu.test"]).active is False
    page = admin.get(f"/staff/accounts/{ids[ADMIN]}")
    last = admin.post(f"/staff/accounts/{ids[ADMIN]}/disable", data={"csrf_token": csrf(page.text), "reason": "x"})
    assert "the last active admin cannot be disabled" in admin.get(last.headers["Location"]).text
    demote = post(admin, f"/staff/accounts/{ids[ADMIN]}", role="coordinator", study="ADUSE", language="en",
                  reason="test")
    assert demote.status_code == 422 and "the last active admin must stay an admin" in demote.text
    with app.app_context():
        audit = {e.action: e for e in db.session().scalars(select(AuditEvent).where(
            AuditEvent.entity == "app_user", AuditEvent.entity_id == str(ids["tls@chu.test"])))}
    assert audit["user.changed"].reason == "moved to monitoring" and audit["user.changed"].new["role"] == "monitor"
    assert audit["user.disabled"].reason == "left the hospital" and audit["user.disabled"].actor == f"user:{ADMIN}"


def test_the_password_rules_apply_to_every_way_of_setting_one(app):
    with app.app_context():
        s = db.session()
        from proapp.accounts.staff import AccountError

        for weak in ("short", "passwordpassword", "qwertyuiopasdf", "x" * 1025, "ADMIN-chu-2026-admin-chu"):
            with pytest.raises(AccountError):
                create_user(s, email="admin-chu@x.test", password=weak, role=Role.ADMIN,
                            now=app.extensions["proapp.clock"].now())
        s.rollback()


def test_links_never_reach_the_logs():
    from proapp.logs import redact

    assert redact("GET /staff/welcome/abcDEF_123-x HTTP/1.1") == "GET /staff/welcome/[redacted] HTTP/1.1"
    assert redact("GET /staff/reset/abc?x=1") == "GET /staff/reset/[redacted]?x=1"
    assert redact("GET /staff/accounts/12") == "GET /staff/accounts/12"
