"""The review page a patient reads on a phone (one folded block per questionnaire with its answered count, the send
button at the top and at the bottom) and the welcome page that says how far a returning patient got."""

from __future__ import annotations

import re

from tests.questionnaire.helpers import Patient, answer_every_screen, enrol_with_open_window, text


def test_the_review_folds_each_questionnaire_with_its_count_and_sends_from_the_top(app, client):
    _pid, token = enrol_with_open_window(app, study="IMATINIB-SSC", visit="M1", language="en")
    p = Patient(client, token)
    p.open()
    p.start()
    answer_every_screen(p)
    page = p.page.text
    blocks = re.findall(r'<details class="part" id="part-([A-Z_]+)"( open)?>', page)
    assert [code for code, _open in blocks] == ["DLQI", "HAQ", "TOLERANCE"] and not any(o for _c, o in blocks)
    dlqi = text(page.split('id="part-DLQI"')[1].split("</summary>")[0])
    # DLQI 7B is asked only after a "No" to 7A: the first choice ("Yes") skips it, so 10 questions were asked.
    assert "10 of 10 questions answered" in dlqi, dlqi
    sends = [m.start() for m in re.finditer(r'action="/q/submit"', page)]
    assert len(sends) == 2
    assert sends[0] < page.index('id="part-DLQI"') and sends[1] > page.rindex("</details>")
    # Back from a change, the questionnaire changed is the one unfolded.
    change = re.search(r'href="(/q/DLQI\.[^"]+\?from=review)"', page).group(1)
    p.get(change)
    saved = p.answer(follow=False, DLQI01="0", DLQI02="0", **{"from": "review"})
    assert saved.headers["Location"].endswith("/q/review?open=DLQI")
    opened = client.get(saved.headers["Location"]).text
    assert re.findall(r'id="part-([A-Z_]+)" open>', opened) == ["DLQI"]


def test_a_returning_patient_is_told_how_far_they_got(app, client):
    _pid, token = enrol_with_open_window(app, study="IMATINIB-SSC", visit="M1", language="fr")
    p = Patient(client, token)
    first = text(p.open().text)
    assert "Commencer" in first and "Vous en avez fait" not in first
    p.start()
    p.answer(DLQI01="1", DLQI02="0")
    again = text(Patient(client, token).open().text)
    assert "Continuer" in again
    assert re.search(r"Vous en avez fait \d+ %\. Vous reprenez « Indice de qualité de vie en dermatologie \(DLQI\) "
                     r"», question 2 sur 6\.", again), again


def test_without_javascript_the_pain_scale_says_type_a_number_and_the_script_says_touch_the_line(app, client):
    _pid, token = enrol_with_open_window(app, study="ADUSE", visit="W1", language="fr")
    p = Patient(client, token)
    p.open()
    p.get("/q/PAIN_VAS.PAIN_VAS")
    page = p.page.text
    shown = text(re.search(r'<div class="instructions">(.*?)</div>', page, re.S).group(1))
    assert "Saisissez le nombre de 0 à 100" in shown and "Touchez" not in shown      # above a number box
    assert re.search(r'data-line="Touchez la ligne', page)                          # for vas.js, once the line is drawn
