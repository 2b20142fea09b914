"""Two-factor sign-in (TOTP) and electronic signatures: set up with a QR code drawn on the server, a code works
once, recovery codes once each, wrong codes lock the account like wrong passwords, the roles that must use it are
sent to set it up, an admin can set it up again; a correction is signed with the password and the code."""

from __future__ import annotations

import re

import pyotp
import pytest
from sqlalchemy import select

from proapp import db
from proapp.accounts.models import User
from proapp.audit.models import AuditEvent
from tests.accounts.test_invitations import PASSWORD, csrf, post
from tests.alerts.conftest import later, make_alert_app
from tests.questionnaire.helpers import text

pytestmark = pytest.mark.requirement("E-SIGNATURE")


@pytest.fixture
def app(database_url, instance_dir, smtp, fake_twilio):
    app = make_alert_app(database_url, smtp, fake_twilio, TWO_FACTOR_ROLES="admin,coordinator")
    yield app
    app.extensions["proapp.engine"].dispose()


def code_at(app, secret: str, steps_later: int = 0) -> str:
    return pyotp.TOTP(secret).at(int(app.extensions["proapp.clock"].now().timestamp()) + 30 * steps_later)


def password_step(app, email: str, password: str = PASSWORD):
    client = app.test_client()
    resp = post(client, "/staff/login", email=email, password=password)
    assert resp.status_code == 303, resp.text
    return client, resp.headers["Location"]


def enrol(app, email: str) -> tuple[object, str, list[str]]:
    client, _where = password_step(app, email)
    assert client.get("/staff/").headers["Location"].endswith("/staff/account/two-factor")   # sent to set it up
    page = client.get("/staff/account/two-factor")
    assert "<svg" in page.text and "otpauth" not in page.text          # the QR code itself, drawn on the server
    shown = re.search(r'id="totp-key">([A-Z2-7 ]+)<', page.text).group(1)
    assert re.fullmatch(r"([A-Z2-7]{4} ){7}[A-Z2-7]{4}", shown)          # in groups of four, easier to copy
    secret = shown.replace(" ", "")
    wrong = client.post("/staff/account/two-factor?keep=1", data={"csrf_token": csrf(page.text), "code": "000000"})
    assert wrong.status_code == 422
    ok = client.post("/staff/account/two-factor?keep=1", data={"csrf_token": csrf(page.text),
                                                              "code": code_at(app, secret)})
    assert ok.status_code == 200
    codes = re.findall(r"<code>([a-z0-9]{5}-[a-z0-9]{5})</code>", ok.text)
    assert len(codes) == 10
    assert client.get("/staff/").status_code == 200                     # now in
    return client, secret, codes


def test_set_up_then_sign_in_with_a_code_that_works_once(app):
    _client, secret, _codes = enrol(app, "tls@chu.test")
    later(app, seconds=31)
    client, where = password_step(app, "tls@chu.test")
    assert where.endswith("/staff/login/code")
    assert client.get("/staff/").status_code == 303                     # not signed in after the password alone
    code = code_at(app, secret)
    assert post(client, "/staff/login/code", code=code).status_code == 303
    assert client.get("/staff/").status_code == 200
    replay, _ = password_step(app, "tls@chu.test")
    reused = post(replay, "/staff/login/code", code=code)
    assert reused.status_code == 422 and "Ce code a déjà servi" in text(reused.text)
    with app.app_context():
        actions = [e.action for e in db.session().scalars(select(AuditEvent).order_by(AuditEvent.id))]
    assert "user.two_factor_enabled" in actions and "user.login_password_ok" in actions


def test_the_code_of_the_activation_step_is_said_used_not_wrong_and_the_next_one_works(app):
    _client, secret, _codes = enrol(app, "tls@chu.test")
    client, _where = password_step(app, "tls@chu.test")
    same_step = post(client, "/staff/login/code", code=code_at(app, secret))      # within the same 30 s
    assert same_step.status_code == 422
    assert "Ce code a déjà servi" in text(same_step.text) and "ne fonctionne pas" not in text(same_step.text)
    with app.app_context():
        assert db.session().scalar(select(User.failed_logins).where(User.email == "tls@chu.test")) == 0
    later(app, seconds=31)
    assert post(client, "/staff/login/code", code=code_at(app, secret)).status_code == 303


def test_a_recovery_code_works_once_and_wrong_codes_lock_the_account(app):
    _client, secret, codes = enrol(app, "tls@chu.test")
    client, _ = password_step(app, "tls@chu.test")
    assert post(client, "/staff/login/code", code=codes[0].upper()).status_code == 303
    again, _ = password_step(app, "tls@chu.test")
    assert post(again, "/staff/login/code", code=codes[0]).status_code == 422      # used up
    for _ in range(2):
        assert post(again, "/staff/login/code", code="123456").status_code == 422
    # The password typed again does not reset the count of wrong codes: no endless tries.
    again, _ = password_step(app, "tls@chu.test")
    for _ in range(2):                                   # five wrong codes in all
        assert post(again, "/staff/login/code", code="123456").status_code == 422
    with app.app_context():
        user = db.session().scalar(select(User).where(User.email == "tls@chu.test"))
        assert user.locked_until is not None
    later(app, seconds=31)
    locked = post(again, "/staff/login/code", code=code_at(app, secret))
    assert locked.status_code in (422, 429)              # even the right code, while locked (or rate-limited)
    assert again.get("/staff/").status_code == 303       # not signed in


def test_roles_not_required_are_not_sent_to_set_it_up_and_an_admin_can_set_it_up_again(app):
    monitor, _ = password_step(app, "monitor@cro.test")
    assert monitor.get("/staff/").status_code == 200
    _c, _secret, _codes = enrol(app, "tls@chu.test")
    admin, _s, _codes = enrol(app, "admin@chu.test")
    with app.app_context():
        uid = db.session().scalar(select(User.id).where(User.email == "tls@chu.test"))
    page = admin.get(f"/staff/accounts/{uid}")
    assert "Set up two-factor sign-in again" in page.text
    admin.post(f"/staff/accounts/{uid}/reset-two-factor", data={"csrf_token": csrf(page.text), "reason": "new phone"})
    client, where = password_step(app, "tls@chu.test")
    assert where.endswith("/staff/")                     # no code asked ...
    assert client.get("/staff/").headers["Location"].endswith("/staff/account/two-factor")   # ... set it up again


def test_a_correction_is_signed_with_the_password_and_the_code(app):
    from tests.export.conftest import complete_diary

    pid = complete_diary(app, "ADU-TLS-301")
    client, secret, _codes = enrol(app, "tls@chu.test")
    with app.app_context():
        from proapp.questionnaire.models import Response

        rid = db.session().scalar(select(Response.id).where(Response.instrument_code == "PAIN_VAS"))
    url = f"/staff/patients/{pid}/responses/{rid}"
    page = client.get(url)
    assert "Je corrige cette réponse pour le motif indiqué." in text(page.text)
    form = {"csrf_token": csrf(page.text), "item": "PAIN_VAS", "repeat": "0", "value": "40",
            "reason": "appel de la patiente", "source": "other", "signature_password": PASSWORD}
    no_code = client.post(f"{url}/correct", data=form)
    assert no_code.status_code == 422 and "Le code ne correspond pas" in text(no_code.text)
    later(app, seconds=31)
    signed = client.post(f"{url}/correct", data={**form, "signature_code": code_at(app, secret)})
    assert signed.status_code == 303
    with app.app_context():
        from proapp.questionnaire.models import Correction

        c = db.session().scalar(select(Correction))
        assert c.signature_method == "password+totp"


def _set_password_by_link(app, smtp, email: str, kind: str, password: str = "seven otters under the bridge"):
    from tests.accounts.test_invitations import link_in
    from tests.alerts.conftest import worker

    worker(app).account_mails()
    path = link_in(smtp.to(email)[-1], kind)
    client = app.test_client()
    page = client.get(path)
    done = client.post(path, data={"csrf_token": csrf(page.text), "password": password, "password2": password})
    assert done.status_code == 303, done.text
    return client, done.headers["Location"]


def test_a_reset_link_leads_to_the_code_step_not_into_the_account(app, smtp):
    _c, secret, codes = enrol(app, "tls@chu.test")
    forgot = post(app.test_client(), "/staff/forgot", email="tls@chu.test")
    assert forgot.status_code == 200
    forgot.close()                              # the request is queued once the answer is sent
    thief, where = _set_password_by_link(app, smtp, "tls@chu.test", "reset")
    assert where.endswith("/staff/login/code")                  # whoever reads the mailbox has no code
    assert thief.get("/staff/").status_code == 303
    assert thief.get("/staff/patients").headers["Location"].startswith("/staff/login")
    assert post(thief, "/staff/login/code", code="000000").status_code == 422       # counted like any wrong code
    with app.app_context():
        user = db.session().scalar(select(User).where(User.email == "tls@chu.test"))
        assert user.failed_logins == 1
    later(app, seconds=31)
    assert post(thief, "/staff/login/code", code=code_at(app, secret)).status_code == 303
    assert thief.get("/staff/").status_code == 200                # the owner, with the phone, is in
    with app.app_context():
        logins = db.session().scalars(select(AuditEvent).where(AuditEvent.action == "user.login")
                                      .order_by(AuditEvent.id)).all()
    assert logins[-1].new["second_factor"] == "totp"
    # An invitation link of an account with two-factor sign-in: the code step too (a recovery code here).
    from proapp.accounts import invitations

    with app.app_context():
        s = db.session()
        invitations.queue(s, s.scalar(select(User).where(User.email == "tls@chu.test")), "invite",
                          app.extensions["proapp.clock"].now(), actor="user:admin@chu.test")
        s.commit()
    client, where = _set_password_by_link(app, smtp, "tls@chu.test", "welcome", "four quiet lamps by the sea")
    assert where.endswith("/staff/login/code") and client.get("/staff/").status_code == 303
    assert post(client, "/staff/login/code", code=codes[3]).status_code == 303
    assert client.get("/staff/").status_code == 200


def test_a_reset_of_an_account_that_must_set_up_two_factor_goes_to_the_set_up_and_is_audited(app, smtp):
    with app.app_context():                     # a coordinator: two-factor required here, not set up yet
        uid = db.session().scalar(select(User.id).where(User.email == "tls@chu.test"))
    post(app.test_client(), "/staff/forgot", email="tls@chu.test").close()
    client, where = _set_password_by_link(app, smtp, "tls@chu.test", "reset")
    assert client.get(where).headers["Location"].endswith("/staff/account/two-factor")   # set it up first
    assert client.get("/staff/patients").headers["Location"].endswith("/staff/account/two-factor")
    with app.app_context():
        login = db.session().scalars(select(AuditEvent).where(AuditEvent.action == "user.login")
                                     .order_by(AuditEvent.id.desc())).first()
    assert login.actor == "user:tls@chu.test" and login.entity_id == str(uid)
