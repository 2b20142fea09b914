"""The patient-side fixes in a real browser at 320 px, French and English, JavaScript on and off: steady progress,
the error summary and its focus, the pain line's own error, and a change from the review page never dropped."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from proapp import db
from proapp.models import Answer
from tests.browser.conftest import new_page
from tests.browser.test_patient_browser import assert_fits, go
from tests.questionnaire.helpers import enrol_with_open_window

WORDS = {
    "fr": {"start": "Commencer", "next": "Suivant", "no": "Non", "save": "Enregistrer",
           "back": "Retour à mes réponses", "keep": "Garder ma réponse d'avant", "problem": "Il y a un problème",
           "change": "Modifier", "progress": "Partie 1 sur 2 · Question 1 sur 13", "unsaved": "sans l'enregistrer",
           "line": "Veuillez marquer la ligne", "number": "saisir un nombre"},
    "en": {"start": "Start", "next": "Next", "no": "No", "save": "Save", "back": "Back to my answers",
           "keep": "Keep my earlier answer", "problem": "There is a problem", "change": "Change",
           "progress": "Part 1 of 2 · Question 1 of 13", "unsaved": "did not save it", "line": "Please mark the line",
           "number": "type a number"},
}
CASES = [("fr", True), ("fr", False), ("en", True), ("en", False)]


def _to_pain_scale(page, w) -> None:
    for _ in range(11):                                    # the diary's yes/no screens, no ulcer
        page.get_by_label(w["no"], exact=True).check()
        go(page, page.get_by_role("button", name=w["next"]))


def _mark(page, js: bool, value: str) -> None:
    if js:
        page.get_by_role("slider").focus()
        page.keyboard.press("Home")
        for _ in range(int(value)):
            page.keyboard.press("ArrowRight")
    else:
        page.locator("input[name=PAIN_VAS]").fill(value)


@pytest.mark.parametrize("lang, js", CASES)
def test_progress_errors_and_a_change_from_the_review(app, live_server, browser, lang, js):
    w = WORDS[lang]
    _pid, token = enrol_with_open_window(app, language=lang)
    page = new_page(browser, "320x568", js)
    page.goto(f"{live_server}/s/{token}")
    go(page, page.get_by_role("link", name=w["start"]))
    assert w["progress"] in page.inner_text("main")
    # Sent with nothing chosen: the summary at the top, linked to the question, focused when JavaScript runs.
    go(page, page.get_by_role("button", name=w["next"]))
    summary = page.locator("#error-summary")
    assert w["problem"] in summary.inner_text()
    assert_fits(page)
    if js:
        assert page.evaluate("document.activeElement.id") == "error-summary"
    target = summary.get_by_role("link").first.get_attribute("href")
    assert page.locator(target).count() == 1
    _to_pain_scale(page, w)
    # The pain line sent unmarked: with JavaScript, the message speaks of the line, and goes once it is marked.
    go(page, page.get_by_role("button", name=w["next"]))
    error = page.locator("#err-PAIN_VAS")
    if js:
        assert w["line"] in error.inner_text() and w["number"] not in error.inner_text()
        assert w["line"] in summary.inner_text()
        _mark(page, js, "30")
        assert error.is_hidden()
    else:
        assert w["number"] in error.inner_text()
        _mark(page, js, "30")
    go(page, page.get_by_role("button", name=w["next"]))
    assert page.url.endswith("/q/review")
    assert_fits(page)
    # From the review: unfold the pain scale's block (each questionnaire is folded), change the pain line, then
    # "back to my answers": asked, nothing dropped or saved silently.
    change = page.locator("a[href*='PAIN_VAS.PAIN_VAS']")
    assert change.is_hidden()
    page.locator("#part-PAIN_VAS > summary").click()
    assert_fits(page)
    go(page, change)
    assert page.get_by_role("button", name=w["save"], exact=True).count() == 1
    _mark(page, js, "60")
    go(page, page.get_by_role("button", name=w["back"]))
    assert w["unsaved"] in page.inner_text("#unsaved")
    assert_fits(page)
    with app.app_context():
        assert db.session().scalar(select(Answer.value).where(Answer.item_code == "PAIN_VAS")) == "30"
    go(page, page.get_by_role("button", name=w["save"], exact=True))
    assert page.url.endswith("/q/review?open=PAIN_VAS")
    assert re.search(r"\b60\b", page.inner_text("main"))
    with app.app_context():
        assert db.session().scalar(select(Answer.value).where(Answer.item_code == "PAIN_VAS")) == "60"
