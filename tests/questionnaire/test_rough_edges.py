"""What a patient noticed first, fixed and checked without JavaScript: progress that never jumps back, fewer
screens for the HAQ, an error summary at the top, a change from the review page that is never dropped silently,
and a review page grouped by questionnaire and section that lists only what was answered."""

from __future__ import annotations

import re

from sqlalchemy import select

from proapp.models import Answer
from tests.questionnaire.helpers import Patient, csrf, enrol_with_open_window, text
from tests.questionnaire.test_flow import DLQI_EN, answer_dlqi, answer_haq

WHERE = re.compile(r"(?:Partie|Part) (\d+) (?:sur|of) (\d+) · Question (\d+) (?:sur|of) (\d+)")


def where(page: str) -> tuple[int, int, int, int, int]:
    found = WHERE.search(text(page))
    assert found, text(page)[:300]
    percent = int(re.search(r'<progress class="bar" value="(\d+)" max="100"', page).group(1))
    return (*map(int, found.groups()), percent)


def in_repeat(page: str) -> str | None:
    found = re.search(r'<p class="progress" id="progress">[^<]*?· [^·<]*?· ([^<]+)</p>', page)
    return text(found.group(1)).strip() if found else None


def test_progress_never_goes_back_and_its_totals_never_change(app, client):
    _pid, token = enrol_with_open_window(app)
    p = Patient(client, token)
    p.open()
    p.start()
    seen = [where(p.page.text)]
    repeats: list[str | None] = []
    steps = [{"DU_NEW": "Y"}, {"DU_HAND": "L"}, {"DU_FINGER": "2"}, {"DU_SITE": "TIP"}, {"DU_ONSET": None},
             {"more": "Y"}, {"DU_HAND": "R"}, {"DU_FINGER": "3"}, {"DU_SITE": "TIP"}, {"DU_ONSET": None},
             {"more": "N"}, {"DU_INFECT": "N"}, {"DU_ANTIBIO": "N"}, {"DU_ISCHAEMIA": "N"}, {"DU_NECROSIS": "N"},
             {"DU_BONE": "N"}, {"DU_HOSPITAL": "N"}, {"DU_SURGERY": "N"}, {"DU_AMPUTATION": "N"}, {"DU_INJECTED": "N"},
             {"DU_INJ_ULCER": "N"}, {"DU_HARVEST": "N"}]
    from datetime import UTC, datetime

    for values in steps:
        values = {k: v or datetime.now(UTC).date().isoformat() for k, v in values.items()}
        p.answer(**values)
        seen.append(where(p.page.text))
        repeats.append(in_repeat(p.page.text))
    # 14 questions, the grade of a problem at an injected finger the step of the question it follows.
    assert {(part, parts, total) for part, parts, _n, total, _pc in seen} == {(1, 2, 13), (2, 2, 1)}
    numbers = [(part, n) for part, _parts, n, _t, _pc in seen]
    assert numbers == sorted(numbers)                               # never back, whatever was reported
    assert [pc for *_rest, pc in seen] == sorted(pc for *_rest, pc in seen)
    assert [n for part, n in numbers if part == 1][:7] == [1, 2, 2, 2, 2, 2, 2]   # the two ulcers: one step
    # ... within which each screen says which ulcer and which of its questions it is.
    assert repeats == [*(f"Nouvel ulcère {n}, question {q} sur 5" for n in (1, 2) for q in range(1, 6)),
                       *[None] * 12]


def test_dlqi_and_haq_take_fewer_screens_with_each_categorys_aids_on_its_last_question(app, client, session):
    """Screens as the paper forms group them: the DLQI by its subscales, the HAQ a category a screen with its aids and
    help, the scales by their paper pages."""
    _pid, token = enrol_with_open_window(app, study="IMATINIB-SSC", visit="M1", language="en")
    p = Patient(client, token)
    p.open()
    p.start()
    keys = []
    answer_dlqi(p, DLQI_EN)
    while p.screen_key.startswith("HAQ."):
        keys.append(p.screen_key)
        if p.screen_key == "HAQ.walking":
            assert 'name="HAQ_WALK1"' in p.page.text and 'name="HAQ_WALK2"' in p.page.text
            assert 'name="HAQ_AID_CANE"' in p.page.text and 'name="HAQ_HELP_WALK"' in p.page.text
        answer_haq_step(p)
    # The HAQ: 8 categories, each with its questions, aids and help; its pain and global scales on one screen, as on
    # its last page, and the five scleroderma scales on another, as on the SSc-HAQ's page.
    assert len(keys) == 8 + 2 and keys[-2:] == ["HAQ.pain_global", "HAQ.scleroderma_vas"]
    ticked = session.scalars(select(Answer.item_code).where(Answer.item_code.like("HAQ_AID_%"))).all()
    assert ticked == ["HAQ_AID_CANE"]


def answer_haq_step(p: Patient) -> None:
    html = p.page.text
    values = dict.fromkeys(re.findall(r'<input type="radio" name="([^"]+)"', html), "1")
    values.update(dict.fromkeys(re.findall(r'name="([^"]+)" type="number"', html), "30"))
    if 'name="HAQ_AID_CANE"' in html:
        values["HAQ_AID_CANE"] = "Y"
    p.answer(**values)


def test_a_study_may_keep_one_question_per_screen(app):
    """instruments.<code>.one_item_per_screen: the screens as before the groups (a category's boxes with its last
    question), the same items in the same order."""
    from proapp.questionnaire.flow import Context, instrument_screens

    registry = app.extensions["proapp.instruments"]
    for code, version, grouped_count, single_count in (("DLQI", "1.0", 6, 11), ("HAQ", "1.1", 10, 27),
                                                       ("TOLERANCE", "1.0", 4, 9)):
        inst = registry.get(code, version)
        grouped = instrument_screens(inst, {}, None, Context())
        single = instrument_screens(inst, {}, None, Context(grouped=False))
        # Before any answer: every follow-up beside its condition shows on a grouped screen (7B, the rash's
        # severity); one question a screen, it waits for its answer.
        assert len(grouped) == grouped_count and len(single) == single_count - (code != "HAQ"), code
        assert [i.code for s in grouped for i in s.items] == [i.code for i in inst.items], code
        assert all(len([i for i in s.items if i.type != "check"]) == 1 for s in single), code
    haq = registry.get("HAQ", "1.1")
    walk = next(s for s in instrument_screens(haq, {}, None, Context(grouped=False)) if s.key == "HAQ.HAQ_WALK2")
    assert [i.code for i in walk.items][:2] == ["HAQ_WALK2", "HAQ_AID_CANE"]


def test_an_error_is_summed_up_at_the_top_with_a_link_to_its_question(app, client):
    _pid, token = enrol_with_open_window(app)
    p = Patient(client, token)
    p.open()
    p.start()
    p.answer(DU_NEW="Y")
    resp = p.answer(follow=False, DU_HAND="X")
    assert resp.status_code == 422
    summary = re.search(r'<div class="error-summary" id="error-summary" role="alert" tabindex="-1".*?</div>',
                        resp.text, re.S)
    assert summary and summary.start() < resp.text.index('id="q-DU_HAND"')        # above the question
    [target] = re.findall(r'<a href="#(q-[A-Z_]+)">', summary.group(0))
    assert f'id="{target}"' in resp.text and target == "q-DU_HAND"
    assert "Il y a un problème" in text(summary.group(0))


def _to_review(app, client) -> Patient:
    _pid, token = enrol_with_open_window(app)
    p = Patient(client, token)
    p.open()
    p.start()
    p.diary([("L", "2", "TIP")], pain="35")
    assert p.path == "/q/review"
    return p


def test_a_change_from_the_review_is_saved_or_asked_about_never_dropped(app, client, session):
    p = _to_review(app, client)
    p.get("/q/PAIN_VAS.PAIN_VAS?from=review")
    assert ">Enregistrer</button>" in p.page.text                        # "Save", and it goes back to the review
    assert 'name="leave" value="1">Retour à mes réponses</button>' in p.page.text
    action = re.search(r'<form method="post" action="([^"]+)"', p.page.text).group(1)
    # Back to the review with nothing changed: no question.
    same = client.post(action, data={"csrf_token": csrf(p.page.text), "from": "review", "leave": "1",
                                     "PAIN_VAS": "35"})
    assert same.status_code == 303 and same.headers["Location"].endswith("/q/review?open=PAIN_VAS")
    # The line moved, then "back to my answers": the patient is asked, nothing is saved yet.
    asked = client.post(action, data={"csrf_token": csrf(p.page.text), "from": "review", "leave": "1",
                                      "PAIN_VAS": "70"})
    assert asked.status_code == 200
    assert "Vous avez changé votre réponse sans l'enregistrer" in text(asked.text)
    assert 'value="70"' in asked.text and "Garder ma réponse d'avant" in asked.text
    assert session.scalar(select(Answer.value).where(Answer.item_code == "PAIN_VAS")) == "35"
    saved = client.post(action, data={"csrf_token": csrf(asked.text), "from": "review", "PAIN_VAS": "70"})
    assert saved.status_code == 303 and saved.headers["Location"].endswith("/q/review?open=PAIN_VAS")
    session.rollback()
    assert session.scalar(select(Answer.value).where(Answer.item_code == "PAIN_VAS")) == "70"


def test_the_review_page_is_grouped_and_lists_what_was_answered(app, client):
    _pid, token = enrol_with_open_window(app, study="IMATINIB-SSC", visit="M1")
    p = Patient(client, token)
    p.open()
    p.start()
    answer_dlqi(p, DLQI_EN)
    answer_haq(p, aids=("HAQ_AID_CANE",))
    from tests.questionnaire.helpers import answer_tolerance

    answer_tolerance(p)
    assert p.path == "/q/review"
    page = p.page.text.replace("&#39;", "'")
    assert "Non coché" not in page                                       # no line per unticked box
    assert "<h3>Marcher</h3>" in page and "<h3>S'habiller et se préparer</h3>" in page
    walking = text(page.split("<h3>Marcher</h3>")[1].split("<h3>")[0])
    assert "Canne" in walking                                            # what was ticked, on one line
    dressing = text(page.split("<h3>S'habiller et se préparer</h3>")[1].split("<h3>")[0])
    assert "Cochez" not in dressing                                       # nothing ticked there: no line
    changes = re.findall(r'href="/q/([^"?]+)\?from=review"', page)
    lines = re.findall(r"<dt>", page)
    assert len(changes) == len(lines) and "HAQ.walking" in changes    # a "Change" link on every line


def test_a_skipped_follow_up_leaves_no_gap_in_the_count(app):
    """DLQI 7B (asked after "No" to 7A) is part of question 7: skipped, the count goes from 7 to 8 of 10, never 7 to
    9 of 11; on the paper page's screens (7B beside 7A) the DLQI is 6 steps."""
    from proapp.questionnaire.flow import Context, instrument_screens, progress_steps

    dlqi = app.extensions["proapp.instruments"].get("DLQI", "1.0")
    for grouped, total in ((False, 10), (True, 6)):
        context = Context(grouped=grouped)
        steps = progress_steps(dlqi, None, context)
        assert len(steps.keys) == total
        for seven_a in ("Y", "N"):
            answers = {(code, 0): value for code, value in DLQI_EN.items()} | {("DLQI07A", 0): seven_a}
            if seven_a == "Y":
                del answers[("DLQI07B", 0)]
            screens = instrument_screens(dlqi, answers, None, context)
            numbers = [steps.number(s) for s in screens]
            if grouped or seven_a == "Y":
                assert numbers == list(range(1, total + 1)), (grouped, seven_a)
            else:                                                      # 7B on its own screen: still question 7
                assert numbers == [1, 2, 3, 4, 5, 6, 7, 7, 8, 9, 10]
