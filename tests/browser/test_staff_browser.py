"""The study team's pages in a real browser: sign in, enrol through the form, the patient page on a phone-sized
screen without horizontal scrolling, and handing a tablet to the patient."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from proapp import db
from proapp.accounts.models import Role
from proapp.accounts.staff import create_user
from proapp.patients.models import Patient
from tests.helpers import agreed

PASSWORD = "correct horse battery"


def _coordinator(app) -> None:
    with app.app_context():
        s = db.session()
        create_user(s, email="psl@chu.test", password=PASSWORD, role=Role.COORDINATOR, now=datetime.now(UTC),
                    study_code="IMATINIB-SSC", site_code="PSL")
        s.commit()


def _sign_in(page, base: str) -> None:
    page.goto(f"{base}/staff/")
    page.fill("#email", "psl@chu.test")
    page.fill("#password", PASSWORD)
    page.get_by_role("button", name="Se connecter").click()
    page.wait_for_url(f"{base}/staff/")


def _no_horizontal_scroll(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


def test_enrol_then_hand_the_tablet_to_the_patient(app, live_server, browser):
    _coordinator(app)
    context = browser.new_context(viewport={"width": 768, "height": 1024}, locale="fr-FR", has_touch=True)
    page = context.new_page()
    _sign_in(page, live_server)
    page.get_by_role("link", name="Inclure un patient").click()
    page.fill("#subject_id", "IMA-PSL-042")
    page.fill("#phone", "06 12 34 56 78")
    anchor = (datetime.now(UTC) - timedelta(days=30)).date().isoformat()
    page.fill("#anchor_date", anchor)
    page.fill("#agreed_on", agreed(datetime.now(UTC)).isoformat())    # the day the patient agreed, now required
    page.get_by_role("button", name="Inclure", exact=True).click()
    page.wait_for_url("**/staff/patients/*")
    assert "IMA-PSL-042 est inclus(e)" in page.inner_text("main")
    assert "Ouvert" in page.inner_text("table.timeline")
    with app.app_context():
        assert db.session().scalar(select(Patient.subject_id)) == "IMA-PSL-042"
    page.get_by_label("Je confie cet appareil au patient maintenant").check()
    page.get_by_role("button", name="Commencer ici sur cet appareil").click()
    page.wait_for_url(f"{live_server}/q")
    assert "questionnaire" in page.inner_text("main").lower()
    page.goto(f"{live_server}/staff/")
    assert page.url.startswith(f"{live_server}/staff/login")     # the tablet is no longer signed in
    context.close()


def test_staff_pages_fit_a_phone_screen(app, live_server, browser):
    _coordinator(app)
    context = browser.new_context(viewport={"width": 360, "height": 640}, locale="fr-FR", has_touch=True)
    page = context.new_page()
    _sign_in(page, live_server)
    assert _no_horizontal_scroll(page)
    page.goto(f"{live_server}/staff/patients/new")
    assert _no_horizontal_scroll(page)
    page.get_by_role("button", name="Inclure", exact=True).click()    # empty form: errors, nothing stored
    assert page.locator("[aria-invalid=true]").count() >= 3
    assert "Le patient n'est pas encore inclus" in page.inner_text("main")
    context.close()
