"""The patient's questionnaire in a real browser at phone sizes, with JavaScript on and off."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect
from sqlalchemy import func, select

from proapp import db
from proapp.models import Answer, Response
from tests.browser.conftest import new_page
from tests.questionnaire.helpers import enrol_with_open_window

BOTH = [("360x640", True), ("320x568", False), ("320x568", True), ("360x640", False)]


def choose(page, label: str) -> None:
    page.get_by_label(label, exact=True).check()


def go(page, locator) -> None:
    """Click something that navigates and wait for the new page to be fully loaded."""
    with page.expect_navigation(wait_until="load"):
        locator.click()


def answer_in(page, prefix: str, label: str, nth: int = 0) -> None:
    """Choose ``label`` in the nth question of the screen whose code starts with ``prefix`` (a screen may show
    several questions with the same answers)."""
    page.locator(f"fieldset[id^='q-{prefix}']").nth(nth).get_by_label(label, exact=True).check()


def next_(page) -> None:
    go(page, page.get_by_role("button", name="Suivant"))


def assert_fits(page) -> None:
    """No horizontal scroll, and every control a finger touches is at least 44 px high."""
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= page.viewport_size["width"], f"horizontal scroll: {width}px"
    small = page.evaluate("""() => [...document.querySelectorAll(
        'main button, main a, main label.opt, main input[type=number], .vas-line')]
        .filter(e => e.offsetParent !== null)
        .map(e => [e.textContent.trim().slice(0, 30) || e.className, e.getBoundingClientRect().height])
        .filter(([, h]) => h < 44)""")
    assert small == [], small


def mark_vas(page, js: bool, item: str, end: str) -> None:
    """Mark a VAS at one end: by keyboard on the line (JS) or by typing in the number field (no JS)."""
    if js:
        page.get_by_role("slider").focus()
        page.keyboard.press(end)
    else:
        page.locator(f"input[name={item}]").fill("0" if end == "Home" else "100")
    next_(page)


def diary_without_ulcer(page, *, infect: str = "Non") -> None:
    """The weekly diary's eleven yes/no screens with no ulcer (then the pain scale comes)."""
    for label in ["Non", infect, "Non", "Non", "Non", "Non", "Non", "Non", "Non", "Non"]:
        choose(page, label)
        next_(page)
    choose(page, "Non")        # the fat-harvest site (ADUSE's cells are autologous)
    next_(page)


def complications_and_infection(page) -> None:
    for _ in range(10):        # infection, antibiotics, eight complications (the harvest site comes after)
        choose(page, "Non")
        next_(page)


def tolerance_none(page) -> None:
    """The IMATINIB-SSC tolerance checklist, nothing to report (none, never, not at all, no) each time: the
    checklist 2.0 lists "Yes" first, and a "Yes" meets a rule that sends the patient to the "call your team" page."""
    while "/q/TOLERANCE." in page.url:
        questions = page.locator("fieldset[id^='q-TOL_']")
        for n in range(questions.count()):
            if questions.nth(n).get_attribute("id") != "q-TOL_RASH_SEV":       # asked only after a rash
                questions.nth(n).locator("input[type=radio][value='0'], input[type=radio][value='N']").first.check()
        next_(page)


def stored_scores(app, code: str) -> dict:
    with app.app_context():
        return db.session().scalar(select(Response.scores).where(Response.instrument_code == code))


@pytest.mark.parametrize(("viewport", "js"), BOTH)
def test_dlqi_with_question_7_branching(app, live_server, browser, viewport, js):
    _pid, token = enrol_with_open_window(app, study="IMATINIB-SSC", visit="M1")
    page = new_page(browser, viewport, js)
    page.goto(f"{live_server}/s/{token}")
    assert page.url.endswith("/q")
    go(page, page.get_by_role("link", name="Commencer"))
    assert_fits(page)
    # The DLQI by its subscales: two questions a screen, as on the paper page.
    for first, second in [("Beaucoup", "Un peu"), ("Non concerné(e)", "Pas du tout"), ("Énormément", "Pas du tout")]:
        answer_in(page, "DLQI0", first, 0)
        answer_in(page, "DLQI0", second, 1)
        next_(page)
    assert "Question 4 sur 6" in page.content()
    assert "Si vous avez répondu « non »" in page.content()      # 7B beside 7A, as on paper
    answer_in(page, "DLQI07A", "Non")
    next_(page)                                                   # 7B left empty after a "No": asked
    assert page.locator("#err-DLQI07B").count() == 1 and page.locator("#err-DLQI07A").count() == 0
    answer_in(page, "DLQI07B", "Un peu")
    next_(page)
    go(page, page.get_by_role("link", name="Retour"))            # back to 7A and 7B
    answer_in(page, "DLQI07A", "Oui")                            # 7B's answer still ticked: dropped, not asked
    next_(page)
    answer_in(page, "DLQI0", "Pas du tout", 0)
    answer_in(page, "DLQI0", "Non concerné(e)", 1)
    next_(page)
    answer_in(page, "DLQI10", "Un peu")
    next_(page)
    assert "HAQ" in page.title() or "Êtes-vous capable de" in page.content()
    page.context.close()
    with app.app_context():
        s = db.session()
        assert s.scalar(select(func.count()).select_from(Answer).where(Answer.item_code == "DLQI07B")) == 0
        assert s.scalar(select(Answer.value).where(Answer.item_code == "DLQI07A")) == "Y"


def test_haq_with_aids_and_help(app, live_server, browser):
    _pid, token = enrol_with_open_window(app, study="IMATINIB-SSC", visit="M1")
    page = new_page(browser, "360x640", True)
    page.goto(f"{live_server}/s/{token}")
    go(page, page.get_by_role("link", name="Commencer"))
    while "/q/DLQI." in page.url:
        questions = page.locator("fieldset[id^='q-DLQI']")
        for n in range(questions.count()):
            if questions.nth(n).get_attribute("id") != "q-DLQI07B":
                questions.nth(n).locator("input[type=radio]").last.check()     # "not relevant" or "not at all"
        next_(page)
    assert "Êtes-vous capable de" in page.content()
    ticked = {"Accessoires pour s'habiller (crochet à boutons, tire-fermeture éclair, chausse-pied à long manche, "
              "etc.)",
              "Canne", "J'ai habituellement besoin de l'aide d'une autre personne pour saisir et ouvrir des objets"}
    screens = 0
    while "Êtes-vous capable de" in page.content():
        screens += 1
        questions = page.locator("fieldset[id^='q-HAQ_']")
        for n in range(questions.count()):
            questions.nth(n).get_by_label("Avec QUELQUES difficultés", exact=True).check()
        assert page.locator("input[type=checkbox]").count()      # the category's aids and help, with its questions
        assert_fits(page)
        for label in ticked:
            if page.get_by_label(label, exact=True).count():
                page.get_by_label(label, exact=True).check()
        next_(page)
    assert screens == 8                                           # one a category, its questions and aids together
    # The seven scales follow on two screens (pain and global; the five scleroderma scales): mark each by keyboard.
    for count in (2, 5):
        sliders = page.get_by_role("slider")
        assert sliders.count() == count
        for n in range(count):
            sliders.nth(n).focus()
            page.keyboard.press("Home")
        assert_fits(page)
        next_(page)
    assert "Effets indésirables du traitement" in page.content()       # the tolerance checklist comes last
    tolerance_none(page)
    assert page.url.endswith("/q/review")
    go(page, page.get_by_role("button", name="Envoyer mes réponses").first)
    assert "Merci, vos réponses ont été envoyées." in page.content()
    assert stored_scores(app, "TOLERANCE") == {"status": "scored", "worst": 0, "severe_count": 0}
    haq = stored_scores(app, "HAQ")
    # dressing (aid), walking (cane) and grip (help) raised from 1 to 2: (5*1 + 3*2) / 8 = 1.375
    assert (haq["haq_di"], haq["haq_di_without_aids"]) == (1.375, 1.0)
    assert haq["vas"]["HAQ_PAIN"] == {"mm": 0, "scale_0_3": 0.0}


def test_vas_by_tap_and_by_keyboard(app, live_server, browser):
    _pid, token = enrol_with_open_window(app)
    page = new_page(browser, "360x640", True)
    page.goto(f"{live_server}/s/{token}")
    go(page, page.get_by_role("link", name="Commencer"))
    diary_without_ulcer(page)
    slider = page.get_by_role("slider")
    assert slider.get_attribute("aria-valuenow") is None                   # no marker until touched
    assert not page.locator(".vas-marker").is_visible()
    assert page.locator("input[type=number]").count() == 0
    box = slider.bounding_box()
    page.touchscreen.tap(box["x"] + box["width"] * 0.3, box["y"] + box["height"] / 2)
    tapped = int(slider.get_attribute("aria-valuenow"))
    assert 28 <= tapped <= 32
    assert page.locator(".vas-marker").is_visible()
    slider.focus()
    page.keyboard.press("ArrowRight")
    page.keyboard.press("PageUp")
    assert int(slider.get_attribute("aria-valuenow")) == tapped + 11
    assert "Aucune douleur" in slider.get_attribute("aria-valuetext")
    assert_fits(page)
    next_(page)
    with app.app_context():
        assert db.session().scalar(select(Answer.value).where(Answer.item_code == "PAIN_VAS")) == str(tapped + 11)


def test_vas_without_javascript_is_a_number_field(app, live_server, browser):
    _pid, token = enrol_with_open_window(app)
    page = new_page(browser, "320x568", False)
    page.goto(f"{live_server}/s/{token}")
    go(page, page.get_by_role("link", name="Commencer"))
    diary_without_ulcer(page)
    assert page.get_by_role("slider").count() == 0
    question = "Quelle douleur vos ulcères des doigts vous ont-ils causée au cours des dernières 24 heures ?"
    page.get_by_label(question).fill("150")
    next_(page)
    assert "Veuillez saisir un nombre entier de 0 à 100." in page.content()
    page.locator("input[name=PAIN_VAS]").fill("64")
    next_(page)
    with app.app_context():
        assert db.session().scalar(select(Answer.value).where(Answer.item_code == "PAIN_VAS")) == "64"


def fill_ulcer(page, hand, finger, site, onset):
    """An ulcer's four questions, one per screen."""
    for label in (hand, finger, site):
        choose(page, label)
        assert_fits(page)
        next_(page)
    page.locator("input[name=DU_ONSET]").fill(onset)
    next_(page)


@pytest.mark.parametrize(("viewport", "js"), [("320x568", False), ("360x640", True)])
def test_ulcer_diary_with_two_ulcers(app, live_server, browser, viewport, js):
    from datetime import UTC, datetime, timedelta

    _pid, token = enrol_with_open_window(app)
    page = new_page(browser, viewport, js)
    page.goto(f"{live_server}/s/{token}")
    go(page, page.get_by_role("link", name="Commencer"))
    assert "Un ulcère du doigt est une plaie" in page.content()          # the definition on the first screen
    choose(page, "Oui")
    next_(page)
    today = datetime.now(UTC).date()
    fill_ulcer(page, "Main droite", "Majeur", "Bout du doigt", (today - timedelta(days=3)).isoformat())
    choose(page, "Oui")
    next_(page)
    fill_ulcer(page, "Main gauche", "Pouce", "Sur une boule dure sous la peau (calcinose)",
               (today - timedelta(days=1)).isoformat())
    choose(page, "Non")
    next_(page)
    complications_and_infection(page)
    choose(page, "Non")                                                   # the fat-harvest site
    next_(page)
    mark_vas(page, js, "PAIN_VAS", "End")                                 # one pain scale, after the diary
    assert page.url.endswith("/q/review")
    assert_fits(page)
    go(page, page.get_by_role("button", name="Envoyer mes réponses").first)
    du = stored_scores(app, "DU_DIARY")
    # The thumb's ulcer is over a calcinosis: followed, not a new digital ulcer as the protocol counts them.
    assert (du["new_ulcer_count"], du["fingers_affected"], du["active_ulcer_count"]) == (1, ["R3"], 2)
    assert stored_scores(app, "PAIN_VAS")["pain"] == 100
    assert "signes d'infection" not in page.content()


def test_close_and_resume(app, live_server, browser):
    _pid, token = enrol_with_open_window(app)
    page = new_page(browser, "360x640", True)
    page.goto(f"{live_server}/s/{token}")
    go(page, page.get_by_role("link", name="Commencer"))
    for _ in range(2):
        choose(page, "Non")
        next_(page)
    page.context.close()                                  # the phone closes the browser
    again = new_page(browser, "360x640", True)
    again.goto(f"{live_server}/s/{token}")
    go(again, again.get_by_role("link", name="Continuer"))
    assert "Question 4 sur 13" in again.content()         # the new-ulcer step was passed over
    assert "Avez-vous commencé des antibiotiques depuis l'injection" in again.content()


@pytest.mark.parametrize("js", [True, False])
@pytest.mark.requirement("ANSWER-KEPT")
def test_double_tap_submit_gives_exactly_one_response(app, live_server, browser, js):
    _pid, token = enrol_with_open_window(app)
    page = new_page(browser, "360x640", js)
    page.goto(f"{live_server}/s/{token}")
    go(page, page.get_by_role("link", name="Commencer"))
    diary_without_ulcer(page)
    mark_vas(page, js, "PAIN_VAS", "Home")
    page.get_by_role("button", name="Envoyer mes réponses").first.dblclick()
    # The second tap's request aborts the first's navigation (without JavaScript both are sent): wait for where
    # the page ends, not for one navigation.
    expect(page).to_have_url(re.compile(r"/q/done$"), timeout=30_000)
    assert "Merci, vos réponses ont été envoyées." in page.content()
    with app.app_context():
        s = db.session()
        assert s.scalar(select(func.count()).select_from(Response)) == 2
        rows = s.execute(select(Answer.response_id, Answer.item_code, Answer.repeat_index)).all()
        assert len(rows) == len(set(rows)) == 12       # the diary 2.1's eleven answers, then the pain scale
    page.go_back()
    page.reload()
    assert "Vous avez déjà rempli ce questionnaire." in page.content()
