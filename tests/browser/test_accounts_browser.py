"""The whole life of a staff account in a real browser: an admin invites a nurse; the invitation arrives through a
real SMTP server on 127.0.0.1; the nurse sets her password, sets up two-factor sign-in from the QR page's key,
signs out and in again with a code, and signs a correction with her password and a code."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pyotp
import pytest
from flask import Flask

from tests.alerts.conftest import later, make_alert_app, worker
from tests.export.conftest import complete_diary

PASSWORD = "correct horse battery"
NURSE_PASSWORD = "lantern river orchard seven"


@pytest.fixture
def app(database_url, instance_dir, smtp, fake_twilio) -> Iterator[Flask]:
    app = make_alert_app(database_url, smtp, fake_twilio, TWO_FACTOR_ROLES="coordinator")
    yield app
    app.extensions["proapp.engine"].dispose()


def code(app, secret: str) -> str:
    return pyotp.TOTP(secret).at(int(app.extensions["proapp.clock"].now().timestamp()))


@pytest.mark.requirement("E-SIGNATURE", "CORRECTION")
def test_invitation_password_two_factor_sign_in_and_signed_correction(app, live_server, browser, smtp):
    pid = complete_diary(app, "ADU-TLS-401")
    desk = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-GB")
    admin = desk.new_page()
    admin.goto(f"{live_server}/staff/login")
    admin.fill("#email", "admin@chu.test")
    admin.fill("#password", PASSWORD)
    admin.locator("form button[type=submit]").click()
    admin.wait_for_url(f"{live_server}/staff/")
    admin.get_by_role("link", name="Accounts").click()
    admin.get_by_role("link", name="Invite someone").click()
    admin.fill("#email", "nurse@chu.test")
    admin.locator("input[name=role][value=coordinator]").check()
    admin.select_option("#study", "ADUSE")
    admin.get_by_label("ADUSE · TLS").check()
    admin.locator("input[name=language][value=fr]").check()
    admin.get_by_role("button", name="Send the invitation").click()
    admin.wait_for_url("**/staff/accounts/*")
    assert "Invitation sent to nurse@chu.test" in admin.inner_text("main")
    desk.close()

    assert worker(app).account_mails()["sent"] == 1
    [mail] = smtp.to("nurse@chu.test")
    link = re.search(r"https://\S+/staff/welcome/\S+", mail.get_content()).group(0)
    phone = browser.new_context(viewport={"width": 360, "height": 740}, locale="fr-FR", has_touch=True)
    nurse = phone.new_page()
    nurse.goto(link.replace("https://pro.example.test", live_server))
    nurse.fill("#password", NURSE_PASSWORD)
    nurse.fill("#password2", NURSE_PASSWORD)
    nurse.get_by_role("button", name="Enregistrer mon mot de passe").click()
    nurse.wait_for_url("**/staff/account/two-factor")          # her role requires a second factor
    assert nurse.locator(".qr svg").count() == 1
    secret = nurse.inner_text("#totp-key").replace(" ", "")
    nurse.fill("#code", code(app, secret))
    nurse.get_by_role("button", name="Activer la connexion à deux facteurs").click()
    assert nurse.locator(".codes li").count() == 10
    nurse.get_by_role("button", name="Se déconnecter").click()

    later(app, seconds=31)                                      # a new code
    nurse.goto(f"{live_server}/staff/login")
    nurse.fill("#email", "nurse@chu.test")
    nurse.fill("#password", NURSE_PASSWORD)
    nurse.locator("form button[type=submit]").click()
    nurse.wait_for_url("**/staff/login/code")
    nurse.fill("#code", code(app, secret))
    nurse.get_by_role("button", name="Se connecter").click()
    nurse.wait_for_url(f"{live_server}/staff/")

    from sqlalchemy import select

    from proapp import db
    from proapp.questionnaire.models import Correction, Response

    with app.app_context():
        rid = db.session().scalar(select(Response.id).where(Response.instrument_code == "PAIN_VAS"))
    nurse.goto(f"{live_server}/staff/patients/{pid}/responses/{rid}")
    nurse.locator("summary").first.click()
    form = nurse.locator("form[action$='/correct']").first
    form.locator("input[name=value]").fill("40")
    form.locator("input[name=reason]").fill("la patiente a rappelé : 40")
    form.get_by_label("Un autre motif").check()
    assert "Je corrige cette réponse pour le motif indiqué." in form.inner_text()
    form.locator("input[name=signature_password]").fill(NURSE_PASSWORD)
    later(app, seconds=31)
    form.locator("input[name=signature_code]").fill(code(app, secret))
    form.get_by_role("button", name="Signer et enregistrer la correction").click()
    nurse.wait_for_load_state()
    assert "La correction est enregistrée" in nurse.inner_text("main")
    with app.app_context():
        c = db.session().scalar(select(Correction))
        assert (c.new_value, c.corrected_by, c.signature_method) == ("40", "user:nurse@chu.test", "password+totp")
    phone.close()
