"""Question pages kept rendered per worker (proapp/questionnaire/pages.py): what the patient sees must be exactly
what a fresh render would show: their own CSRF token, their own answer, their language, the right progress."""

import re

from proapp.questionnaire.pages import CSRF_SLOT, PageCache
from tests.questionnaire.helpers import Patient, csrf, enrol_with_open_window, text


def _fresh_render(app, client, path):
    """The same page with the kept pages emptied (rendered from the template again)."""
    app.extensions["proapp.page_cache"] = PageCache()
    return client.get(path)


def test_two_patients_on_the_same_screen_each_get_their_own_token_and_can_answer(app):
    _a, token_a = enrol_with_open_window(app, subject="ADU-TLS-101")
    _b, token_b = enrol_with_open_window(app, subject="ADU-TLS-102")
    pa, pb = Patient(app.test_client(), token_a), Patient(app.test_client(), token_b)
    for p in (pa, pb):
        p.open()
        p.start()
    assert pa.screen_key == pb.screen_key == "PAIN_VAS.PAIN_VAS"
    assert CSRF_SLOT not in pa.page.text and CSRF_SLOT not in pb.page.text
    assert csrf(pa.page.text) != csrf(pb.page.text)
    # Each token is the one of its own session: the other patient's would be refused (page re-shown).
    stolen = pb.client.post("/q/PAIN_VAS.PAIN_VAS", data={"csrf_token": csrf(pa.page.text), "PAIN_VAS": "5"})
    assert stolen.status_code == 303 and stolen.headers["Location"].endswith("?expired=1")
    assert pa.answer(PAIN_VAS="12").status_code == 200 and pa.screen_key == "DU_DIARY.DU_NEW"
    assert pb.answer(PAIN_VAS="88").status_code == 200 and pb.screen_key == "DU_DIARY.DU_NEW"


def test_a_kept_page_shows_the_answer_stored_now_not_the_one_kept(app, client):
    _pid, token = enrol_with_open_window(app)
    p = Patient(client, token)
    p.open()
    p.start()
    p.answer(PAIN_VAS="42")
    first = client.get("/q/PAIN_VAS.PAIN_VAS")
    assert 'value="42"' in first.text
    client.post("/q/PAIN_VAS.PAIN_VAS", data={"csrf_token": csrf(first.text), "PAIN_VAS": "43"})
    again = client.get("/q/PAIN_VAS.PAIN_VAS")
    assert 'value="43"' in again.text and 'value="42"' not in again.text
    client.post("/q/PAIN_VAS.PAIN_VAS", data={"csrf_token": csrf(again.text), "PAIN_VAS": "42"})
    back_to_42 = client.get("/q/PAIN_VAS.PAIN_VAS")          # served from the kept pages
    assert app.extensions["proapp.page_cache"].hits >= 1
    fresh = _fresh_render(app, client, "/q/PAIN_VAS.PAIN_VAS")
    strip = re.compile(r'name="csrf_token" value="[^"]+"')
    assert strip.sub("", back_to_42.text) == strip.sub("", fresh.text)


def test_kept_pages_follow_the_language_and_the_progress(app, client):
    _pid, token = enrol_with_open_window(app)
    p = Patient(client, token)
    p.open()
    p.start()
    fr = client.get("/q/PAIN_VAS.PAIN_VAS")
    assert "Question 1 sur" in text(fr.text)
    client.post("/q/language", data={"csrf_token": csrf(fr.text), "lang": "en", "next": "/q/PAIN_VAS.PAIN_VAS"})
    en = client.get("/q/PAIN_VAS.PAIN_VAS")
    assert "Question 1 of" in text(en.text) and 'lang="en"' in en.text
    # The ulcer diary grows a screen per new ulcer: the total on the pain page follows it.
    total_before = int(re.search(r"Question 1 of (\d+)", text(en.text)).group(1))
    p.page = en
    p.path = "/q/PAIN_VAS.PAIN_VAS"
    p.answer(PAIN_VAS="20")
    p.answer(DU_NEW="Y")
    pain_again = text(client.get("/q/PAIN_VAS.PAIN_VAS").text)
    assert int(re.search(r"Question 1 of (\d+)", pain_again).group(1)) > total_before


def test_the_page_cache_is_bounded_and_drops_the_least_recently_used():
    cache = PageCache(size=2)
    renders = []

    def render(name):
        renders.append(name)
        return f"<p>{name}</p>"

    cache.get(("a",), lambda: render("a"))
    cache.get(("b",), lambda: render("b"))
    cache.get(("a",), lambda: render("a"))      # kept: not rendered again, and now the most recent
    cache.get(("c",), lambda: render("c"))      # drops b, the least recently used
    cache.get(("a",), lambda: render("a"))
    cache.get(("b",), lambda: render("b"))
    assert renders == ["a", "b", "c", "b"]
    assert len(cache) == 2
