"""axe-core (WCAG 2.1 A and AA rules) in the real browser: no violation on the patient pages, in French and in
English, nor on the study team's main pages."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.questionnaire.helpers import Patient, enrol_with_open_window

pytestmark = pytest.mark.requirement("ACCESSIBILITY")

AXE = Path(__file__).resolve().parents[2] / ".cache" / "axe-core" / "node_modules" / "axe-core" / "axe.min.js"
TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]


def violations(page) -> list[str]:
    if not AXE.exists():
        pytest.fail(f"{AXE} is missing: the test command installs axe-core from npm")
    page.add_script_tag(content=AXE.read_text())
    result = page.evaluate("tags => axe.run(document, {runOnly: {type: 'tag', values: tags}})", TAGS)
    return [f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}"
            for v in result["violations"]]


def _page(browser, js=True, locale="fr-FR", width=360, height=640):
    context = browser.new_context(viewport={"width": width, "height": height}, java_script_enabled=js,
                                  bypass_csp=True, locale=locale)      # to inject axe; the app's CSP is untouched
    return context.new_page()


@pytest.mark.parametrize("language", ["fr", "en"])
def test_patient_pages_have_no_violation(app, live_server, browser, language):
    _pid, token = enrol_with_open_window(app, "ADUSE", "W1", subject=f"ADU-TLS-0{ord(language[0]) % 90}",
                                         language=language)
    page = _page(browser)
    found = {}
    page.goto(f"{live_server}/s/{token}")
    found["welcome"] = violations(page)
    submit = page.locator("form button[type=submit]").last
    page.goto(f"{live_server}/q/DU_DIARY.DU_NEW")
    found["choice"] = violations(page)
    submit.click()                                                       # nothing chosen: the error state
    found["choice with error"] = violations(page)
    page.locator("input[value=Y]").check()                               # a new ulcer
    submit.click()
    page.wait_for_url(re.compile(r".*/q/DU_DIARY\.DU_ULCER\.1\.DU_HAND$"))
    found["ulcer (a group's screen)"] = violations(page)
    for field in ("DU_HAND", "DU_FINGER", "DU_SITE"):
        page.locator(f"input[name={field}]").first.check()
        submit.click()
        page.wait_for_load_state()
    page.wait_for_url(re.compile(r".*/q/DU_DIARY\.DU_ULCER\.1\.DU_ONSET$"))
    found["date"] = violations(page)
    page.locator("input[name=DU_ONSET]").fill(datetime.now(UTC).date().isoformat())
    submit.click()
    page.wait_for_url(re.compile(r".*/q/DU_DIARY\.DU_ULCER-more\.1$"))
    page.locator("input[value=N]").check()
    submit.click()
    page.wait_for_url(re.compile(r".*/q/DU_DIARY\.DU_INFECT$"))
    page.locator("input[value=Y]").check()                               # signs of infection
    submit.click()
    page.wait_for_url(re.compile(r".*/q/call\?.*"))
    found["call the study team"] = violations(page)
    page.goto(f"{live_server}/q/DU_DIARY.DU_ANTIBIO")
    for _ in range(10):                  # antibiotics, the complications (with a new ulcer: on an injected finger?)
        page.locator("input[value=N]").check()
        with page.expect_navigation():
            submit.click()
    page.wait_for_url(re.compile(r".*/q/PAIN_VAS\.PAIN_VAS$"))
    found["vas"] = violations(page)
    page.get_by_role("slider").focus()
    page.keyboard.press("End")
    submit.click()
    page.wait_for_url(re.compile(r".*/q/review$"))
    found["review"] = violations(page)
    page.evaluate("document.querySelectorAll('details.part').forEach(d => d.open = true)")
    found["review unfolded"] = violations(page)
    other = "en" if language == "fr" else "fr"
    page.locator(f"button[name=lang][value={other}]").click()            # the pages change; the SMS? asked
    page.wait_for_selector("input[name=sms]", state="attached")
    found["SMS language question"] = violations(page)
    page.locator(f"button[name=lang][value={language}]").click()
    page.wait_for_load_state()
    page.goto(f"{live_server}/q/PAIN_VAS.PAIN_VAS?from=review")            # a change, then "back to my answers"
    page.get_by_role("slider").focus()
    page.keyboard.press("Home")
    page.locator("button[name=leave]").click()
    page.wait_for_selector("#unsaved")
    found["unsaved change asked about"] = violations(page)
    page.goto(f"{live_server}/q/sms")
    found["sms"] = violations(page)
    page.goto(f"{live_server}/s/{'x' * 22}")
    found["invalid link"] = violations(page)
    page.goto(f"{live_server}/q/PAIN_VAS.PAIN_VAS?nojs")           # the number field the VAS falls back to
    page.evaluate("document.querySelectorAll('.vas-js').forEach(e => e.remove())")
    found["vas number field"] = violations(page)
    page.goto(f"{live_server}/q/review")
    page.locator("form[action='/q/submit'] button[type=submit]").first.click()
    page.wait_for_url(re.compile(r".*/q/done$"))
    found["thanks, next time by SMS offered"] = violations(page)
    page.locator("form[action='/q/channel'] button[type=submit]").first.click()
    page.wait_for_selector("p.notice[role=status]")
    found["channel chosen"] = violations(page)
    assert {k: v for k, v in found.items() if v} == {}, json.dumps(found, indent=1, ensure_ascii=False)


def test_staff_pages_have_no_violation(app, live_server, browser):
    from proapp import db
    from proapp.accounts.models import Role
    from proapp.accounts.staff import create_user
    from tests.dashboard.test_access_matrix import raise_alert

    pid, token = enrol_with_open_window(app, "ADUSE", "W1", subject="ADU-TLS-077")
    alert_id = raise_alert(app, pid, "W1")
    with app.app_context():
        s = db.session()
        create_user(s, email="admin@chu.test", password="correct horse battery", role=Role.ADMIN,
                    now=datetime.now(UTC), language="fr")
        s.commit()
    page = _page(browser, width=1280, height=900)
    page.goto(f"{live_server}/staff/forgot")
    found = {"forgot": violations(page)}
    page.goto(f"{live_server}/staff/welcome/{'x' * 43}")
    found["dead link"] = violations(page)
    page.goto(f"{live_server}/staff/login")
    found["login"] = violations(page)
    page.fill("#email", "admin@chu.test")
    page.fill("#password", "correct horse battery")
    page.get_by_role("button", name="Se connecter").click()
    page.wait_for_url(f"{live_server}/staff/")
    for name, path in (("overview", "/staff/"), ("patients", "/staff/patients"), ("enrol", "/staff/patients/new"),
                       ("patient", f"/staff/patients/{pid}"), ("audit", "/staff/audit"), ("alerts", "/staff/alerts"),
                       ("alert", f"/staff/alerts/{alert_id}"), ("accounts", "/staff/accounts"),
                       ("invite", "/staff/accounts/new"), ("my account", "/staff/account"),
                       ("close a study", "/staff/studies/ADUSE/close")):
        page.goto(live_server + path)
        found[name] = violations(page)
    # The ulcer list with a row, and its form open (a treated ulcer recorded by the team).
    page.goto(f"{live_server}/staff/patients/{pid}")
    page.locator("#ulcers ~ details summary").first.click()
    for field, value in (("hand", "L"), ("finger", "2"), ("site", "CALC")):
        page.select_option(f"#ulcer-{field}", value)
    page.get_by_role("button", name="Enregistrer l'ulcère").click()
    page.wait_for_url(re.compile(r".*/staff/patients/\d+#ulcers$"))
    assert "calcinose" in page.content()
    page.locator("#ulcers ~ details summary").first.click()
    found["patient's ulcers"] = violations(page)
    # The patient says the noted ulcer is not right: the query's form, and the form closing an ulcer, open.
    patient = Patient(app.test_client(), token)
    patient.open()
    patient.start()
    patient.answer(DU_CONFIRM_OK="N")
    patient.diary(pain="30")
    patient.submit()
    page.goto(f"{live_server}/staff/patients/{pid}")
    assert page.locator("#query-1").count() == 1
    page.locator("#ulcers ~ details summary").nth(1).click()
    found["ulcer query"] = violations(page)
    # The enrolment form sent empty: its error box lists each error, linked to its field.
    page.goto(f"{live_server}/staff/patients/new")
    page.get_by_role("button", name="Inclure").click()
    page.wait_for_selector("#error-summary li a")
    found["enrolment errors"] = violations(page)
    assert {k: v for k, v in found.items() if v} == {}, json.dumps(found, indent=1, ensure_ascii=False)
