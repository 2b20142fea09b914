"""The patient's questionnaire end to end, through the Flask test client (no JavaScript)."""

import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from proapp.models import AccessLink, Answer, Occurrence, Response
from tests.questionnaire.helpers import Patient, answer_tolerance, csrf, enrol_with_open_window, text, weekly_screens

DLQI_EN = {"DLQI01": "2", "DLQI02": "1", "DLQI03": "NR", "DLQI04": "0", "DLQI05": "3", "DLQI06": "0",
           "DLQI07A": "N", "DLQI07B": "1", "DLQI08": "0", "DLQI09": "NR", "DLQI10": "1"}


DLQI_SCREENS = [("symptoms_feelings", ("DLQI01", "DLQI02")), ("daily_activities", ("DLQI03", "DLQI04")),
                ("leisure", ("DLQI05", "DLQI06")), ("work_school", ("DLQI07A", "DLQI07B")),
                ("personal_relationships", ("DLQI08", "DLQI09")), ("DLQI10", ("DLQI10",))]


def answer_dlqi(p: Patient, answers: dict) -> None:
    """The DLQI by its six screens (its subscales, 7B beside 7A)."""
    for key, codes in DLQI_SCREENS:
        if not any(code in answers for code in codes):
            continue
        assert p.screen_key == f"DLQI.{key}", (p.screen_key, key)
        p.answer(**{code: answers[code] for code in codes if code in answers})


def answer_haq(p: Patient, activity="1", aids=(), helps=(), vas="40"):
    """The HAQ screen by screen: a category's questions with its aids and help, then each scale alone."""
    while p.screen_key.startswith("HAQ."):
        html = p.page.text
        ticks = {c: "Y" for c in (*aids, *helps) if f'name="{c}"' in html}
        choices = dict.fromkeys(re.findall(r'<input type="radio" name="([^"]+)"', html), activity)
        lines = dict.fromkeys(re.findall(r'name="([^"]+)" type="number"', html), vas)
        p.answer(**choices, **lines, **ticks)


def test_link_is_exchanged_for_a_cookie_and_a_url_without_the_token(app, client):
    _pid, token = enrol_with_open_window(app)
    resp = client.get(f"/s/{token}")
    assert resp.status_code == 303
    assert resp.headers["Location"] == "/q"
    assert token not in resp.headers["Location"]
    cookie = resp.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert resp.headers["Referrer-Policy"] == "no-referrer"
    assert resp.headers["Cache-Control"] == "no-store"
    welcome = client.get("/q")
    assert welcome.status_code == 200
    assert welcome.headers["Cache-Control"] == "no-store"
    assert "Échelle de douleur" in welcome.text and "Journal des ulcères des doigts" in welcome.text


def test_only_the_token_hash_is_stored(app, session):
    _pid, token = enrol_with_open_window(app)
    link = session.scalar(select(AccessLink))
    assert link.token_sha256 != token and len(link.token_sha256) == 64
    assert len(token) >= 22      # 128 bits in URL-safe base64


def test_ulcer_diary_and_pain_in_french_with_two_ulcers(app, client, session):
    _pid, token = enrol_with_open_window(app)
    p = Patient(client, token)
    p.open()
    p.start()
    # The first weekly entry: no ulcer known yet (no baseline), worded "since your questionnaire before the injection".
    assert p.screen_key == "DU_DIARY.DU_NEW"
    assert "Partie 1 sur 2 · Question 1 sur 13" in text(p.page.text)    # the new ulcers count as one step
    assert "Depuis votre questionnaire d'avant l'injection, un nouvel ulcère est-il apparu" in text(p.page.text)
    assert "Un ulcère du doigt est une plaie où la peau a disparu" in text(p.page.text)    # the definition, on screen
    p.answer(DU_NEW="Y")
    assert p.screen_key == "DU_DIARY.DU_ULCER.1.DU_HAND"          # one question per screen
    assert "Nouvel ulcère 1" in text(p.page.text)
    today = datetime.now(UTC).date()
    p.answer(DU_HAND="R")
    assert p.screen_key == "DU_DIARY.DU_ULCER.1.DU_FINGER"
    p.answer(DU_FINGER="3", DU_SITE="TIP", DU_ONSET=(today - timedelta(days=2)).isoformat())
    assert p.screen_key == "DU_DIARY.DU_ULCER-more.1"
    assert "Avez-vous remarqué un autre nouvel ulcère ?" in p.page.text
    p.answer(more="Y")
    assert p.screen_key == "DU_DIARY.DU_ULCER.2.DU_HAND"
    p.answer(DU_HAND="L", DU_FINGER="2", DU_SITE="CALC", DU_ONSET=today.isoformat())
    assert "Sur une boule dure sous la peau (calcinose)" not in p.page.text    # past the place screen
    p.answer(more="N")
    assert p.screen_key == "DU_DIARY.DU_INFECT"
    p.answer(DU_INFECT="Y")
    # The infection answer meets a same-day alert rule: the patient is told at once whom to call.
    assert p.path.startswith("/q/call")
    call = text(p.page.text)
    assert "Appelez votre équipe d'étude aujourd'hui" in call
    assert "Vous nous avez indiqué que de nouveaux signes d'infection sont apparus autour d'un ulcère du doigt." in call
    assert 'href="tel:+33199000101"' in p.page.text and "01 99 00 01 01" in call and "15 ou 112" in call
    p.get(re.search(r'class="button" href="([^"]+)"', p.page.text).group(1))
    assert p.screen_key == "DU_DIARY.DU_ANTIBIO"
    assert "Avez-vous commencé des antibiotiques depuis l'injection ?" in text(p.page.text)
    p.answer(DU_ANTIBIO="N", DU_ISCHAEMIA="N", DU_NECROSIS="N", DU_BONE="N", DU_HOSPITAL="N", DU_SURGERY="N",
             DU_AMPUTATION="N", DU_INJECTED="N", DU_INJ_ULCER="N")
    assert p.screen_key == "DU_DIARY.DU_HARVEST"     # ADUSE's cells are autologous: the harvest site is asked
    assert "Complications" in p.page.text
    p.answer(DU_HARVEST="N")
    # One pain scale, after the diary: about the finger ulcers, over the last 24 hours.
    assert p.screen_key == "PAIN_VAS.PAIN_VAS"
    assert "Quelle douleur vos ulcères des doigts vous ont-ils causée" in p.page.text
    p.answer(PAIN_VAS="35")
    assert p.path == "/q/review"
    review = text(p.page.text)
    assert "Main droite" in review and "Majeur" in review and "Index" in review and "35 sur 100" in review
    done = p.submit()
    assert "Merci, vos réponses ont été envoyées." in text(done.text)
    assert "Appelez votre équipe d'étude aujourd'hui" in text(done.text)
    assert 'href="tel:+33199000101"' in done.text
    du = session.scalar(select(Response).where(Response.instrument_code == "DU_DIARY"))
    # The second is over a calcinosis: followed (open), but not a new digital ulcer as the protocol counts them.
    assert du.scores["new_ulcer_count"] == 1 and du.scores["active_ulcer_count"] == 2
    assert du.scores["fingers_affected"] == ["R3"]
    assert du.scores["groups"]["DU_ULCER"] == {"1": {"ulcer_number": 1, "report_kind": "new"},
                                               "2": {"ulcer_number": 2, "report_kind": "new"}}
    assert du.flow_state["wording"]["DU_NEW"] == "first_entry"       # the exports say what was read
    assert (du.status.value, du.language, du.instrument_version, du.completed_on_site) == (
        "completed", "fr", "2.3", False)
    assert du.completed_at is not None and du.completed_at.tzinfo is not None
    pain = session.scalar(select(Response).where(Response.instrument_code == "PAIN_VAS"))
    assert pain.scores == {"status": "scored", "pain": 35}
    assert session.scalar(select(Occurrence.status).where(Occurrence.id == du.occurrence_id)).value == "completed"


def test_dlqi_and_haq_in_english_with_question_7_branching_aids_and_help(app, client, session):
    _pid, token = enrol_with_open_window(app, study="IMATINIB-SSC", visit="M1", language="en")
    p = Patient(client, token)
    p.open()
    assert "It takes about 13 minutes." in text(p.page.text)
    p.start()
    assert "Question 1 of" in text(p.page.text)
    assert "© Dermatology Life Quality Index" in p.page.text
    answer_dlqi(p, DLQI_EN)
    assert p.screen_key == "HAQ.dressing"
    assert "Are you able to:" in p.page.text
    answer_haq(p, activity="1", aids=("HAQ_AID_CANE",), helps=("HAQ_HELP_GRIP",), vas="50")
    # The tolerance checklist last: PRO-CTCAE's wording in English.
    assert p.screen_key == "TOLERANCE.EYES"
    answer_tolerance(p)
    assert p.path == "/q/review"
    p.submit()
    dlqi = session.scalar(select(Response).where(Response.instrument_code == "DLQI"))
    # 2+1+0+0+3+0+1+0+0+1 = 8
    assert (dlqi.scores["total"], dlqi.scores["band"], dlqi.language) == (8, "moderate", "en")
    haq = session.scalar(select(Response).where(Response.instrument_code == "HAQ"))
    # walking (cane) and grip (help) raised from 1 to 2: (6*1 + 2*2) / 8 = 1.25
    assert (haq.scores["haq_di"], haq.scores["haq_di_without_aids"]) == (1.25, 1.0)
    assert haq.scores["vas"]["SHAQ_DU"] == {"mm": 50, "scale_0_3": 1.5}


def test_question_7b_beside_7a_asked_only_after_a_no_and_dropped_when_7a_changes(app, client, session):
    _pid, token = enrol_with_open_window(app, study="IMATINIB-SSC", visit="M1", language="en")
    p = Patient(client, token)
    p.open()
    p.start()
    answer_dlqi(p, {k: v for k, v in DLQI_EN.items() if k < "DLQI07A"})
    assert p.screen_key == "DLQI.work_school"
    assert 'name="DLQI07A"' in p.page.text and 'name="DLQI07B"' in p.page.text     # as on the paper page
    # "No" to 7A and nothing for 7B: 7B is asked, nothing stored.
    refused = p.answer(DLQI07A="N")
    assert refused.status_code == 422 and "err-DLQI07B" in refused.text and "err-DLQI07A" not in refused.text
    assert session.scalar(select(func.count()).select_from(Answer).where(Answer.item_code == "DLQI07A")) == 0
    p.answer(DLQI07A="N", DLQI07B="2")
    assert p.screen_key == "DLQI.personal_relationships"
    assert session.scalar(select(func.count()).select_from(Answer).where(Answer.item_code == "DLQI07B")) == 1
    # 7A turned "Yes" with 7B's answer still ticked on the screen: 7B is no longer asked, its answer dropped.
    p.get("/q/DLQI.work_school")
    p.answer(DLQI07A="Y", DLQI07B="2")
    assert p.screen_key == "DLQI.personal_relationships"
    session.rollback()               # a fresh snapshot of the database
    assert session.scalar(select(func.count()).select_from(Answer).where(Answer.item_code == "DLQI07B")) == 0
    # "Yes" with nothing for 7B is complete: the next screen, and no 7B line on the review.
    p.get("/q/DLQI.work_school")
    p.answer(DLQI07A="Y")
    assert p.screen_key == "DLQI.personal_relationships"
    answer_dlqi(p, {k: v for k, v in DLQI_EN.items() if k > "DLQI07B"})
    answer_haq(p)
    answer_tolerance(p)
    assert p.path == "/q/review" and "at work or studying" not in p.page.text


def test_resume_at_first_unanswered_question_after_closing(app, client):
    _pid, token = enrol_with_open_window(app)
    p = Patient(client, token)
    p.open()
    p.start()
    p.answer(DU_NEW="N")
    p.answer(DU_INFECT="N")
    client.delete_cookie("session")
    fresh = Patient(client, token)
    welcome = fresh.open()
    assert "Continuer" in welcome.text
    fresh.start()
    assert fresh.screen_key == "DU_DIARY.DU_ANTIBIO"
    assert "Question 4 sur 13" in text(fresh.page.text)    # the new-ulcer step was passed over (No)


def test_back_navigation_shows_the_saved_answer(app, client):
    _pid, token = enrol_with_open_window(app)
    p = Patient(client, token)
    p.open()
    p.start()
    for values in weekly_screens("42"):
        p.answer(**values)
    p.get("/q/PAIN_VAS.PAIN_VAS")
    back = re.search(r'<a class="button" href="([^"]+)">Retour</a>', p.page.text).group(1)
    p.get(back)
    assert p.screen_key == "DU_DIARY.DU_HARVEST"
    assert 'value="N" checked' in p.page.text
    p.get("/q/PAIN_VAS.PAIN_VAS")
    assert 'value="42"' in p.page.text


def finish_diary(p: Patient):
    p.open()
    p.start()
    for values in weekly_screens("10"):
        p.answer(**values)
    assert p.path == "/q/review"


def test_double_submit_gives_one_completion_and_later_answers_are_refused(app, client, session):
    _pid, token = enrol_with_open_window(app)
    p = Patient(client, token)
    finish_diary(p)
    token_field = csrf(p.page.text)
    first = client.post("/q/submit", data={"csrf_token": token_field})
    second = client.post("/q/submit", data={"csrf_token": token_field})
    assert first.status_code == second.status_code == 303
    assert session.scalar(select(func.count()).select_from(Response)) == 2
    completed_at = session.scalar(select(Response.completed_at).where(Response.instrument_code == "PAIN_VAS"))
    # the back button after submit, then an attempt to change an answer
    back = client.get("/q/PAIN_VAS.PAIN_VAS")
    assert "Vous avez déjà rempli ce questionnaire." in text(back.text)
    client.post("/q/PAIN_VAS.PAIN_VAS", data={"csrf_token": token_field, "PAIN_VAS": "99"})
    session.rollback()               # a fresh snapshot of the database
    assert session.scalar(select(Answer.value).where(Answer.item_code == "PAIN_VAS")) == "10"
    assert session.scalar(select(Response.completed_at).where(Response.instrument_code == "PAIN_VAS")) == completed_at
    again = client.get(f"/s/{token}", follow_redirects=True)
    assert "Vous avez déjà rempli ce questionnaire." in text(again.text)


def test_two_tabs_never_create_two_responses(app):
    _pid, token = enrol_with_open_window(app)
    tab1, tab2 = Patient(app.test_client(), token), Patient(app.test_client(), token)
    tab1.open()
    tab2.open()
    tab1.start()
    tab2.start()
    tab1.answer(DU_NEW="N")
    tab2.answer(DU_NEW="Y")        # same question from the other tab: one answer, the latest
    with app.app_context():
        from proapp import db

        s = db.session()
        assert s.scalar(select(func.count()).select_from(Response).where(Response.instrument_code == "DU_DIARY")) == 1
        assert list(s.scalars(select(Answer.value).where(Answer.item_code == "DU_NEW"))) == ["Y"]


@pytest.mark.parametrize("bad", ["101", "-1", "abc", "", "50.5"])
def test_out_of_range_vas_reshows_the_question_with_an_error_and_stores_nothing(app, client, session, bad):
    _pid, token = enrol_with_open_window(app)
    p = Patient(client, token)
    p.open()
    p.start()
    for values in weekly_screens()[:-1]:
        p.answer(**values)
    before = session.scalar(select(func.count()).select_from(Answer))
    resp = p.answer(follow=False, PAIN_VAS=bad)
    assert resp.status_code == 422
    assert "Partie 2 sur 2 · Question 1 sur 1" in text(resp.text)
    assert ("Veuillez saisir un nombre entier de 0 à 100." in text(resp.text)
            or "Veuillez marquer la ligne ou saisir un nombre de 0 à 100." in text(resp.text))
    assert session.scalar(select(func.count()).select_from(Answer)) == before == 11


def test_unknown_choice_value_is_refused_in_english(app, client, session):
    _pid, token = enrol_with_open_window(app, language="en")
    p = Patient(client, token)
    p.open()
    p.start()
    resp = p.answer(follow=False, DU_NEW="MAYBE")
    assert resp.status_code == 422
    assert "Please choose one of the answers shown." in resp.text
    assert session.scalar(select(func.count()).select_from(Answer).where(Answer.item_code == "DU_NEW")) == 0


def test_future_onset_date_is_refused(app, client, session):
    _pid, token = enrol_with_open_window(app, language="en")
    p = Patient(client, token)
    p.open()
    p.start()
    p.answer(DU_NEW="Y", DU_HAND="L", DU_FINGER="1", DU_SITE="TIP")
    future = (datetime.now(UTC).date() + timedelta(days=3)).isoformat()
    resp = p.answer(follow=False, DU_ONSET=future)
    assert resp.status_code == 422 and "This date is in the future." in resp.text
    assert f'value="{future}"' in resp.text      # what the patient entered is kept on the page
    assert session.scalar(select(func.count()).select_from(Answer).where(Answer.item_code == "DU_ONSET")) == 0


@pytest.mark.parametrize("token_kind", ["unknown", "tampered", "resent", "short"])
def test_bad_tokens_get_the_same_friendly_page(app, client, token_kind):
    _pid, token = enrol_with_open_window(app)
    if token_kind == "unknown":
        token = "A" * 22
    elif token_kind == "tampered":
        token = token[:-1] + ("A" if token[-1] != "A" else "B")
    elif token_kind == "short":
        token = "x"
    elif token_kind == "resent":
        from proapp import db
        from proapp.questionnaire.answering import issue_link

        with app.app_context():
            s = db.session()
            issue_link(s, s.scalar(select(AccessLink)).occurrence, datetime.now(UTC))
            s.commit()
    resp = client.get(f"/s/{token}")
    if token_kind == "resent":            # a newer link went by SMS: the page says so
        assert resp.status_code == 410 and "Un nouveau lien vous a été envoyé." in text(resp.text)
    else:
        assert resp.status_code == 404
        assert "Ce lien ne fonctionne pas." in text(resp.text)
    assert client.get("/q").status_code == 404


def test_resend_kills_an_open_session_on_the_old_link(app, client):
    _pid, token = enrol_with_open_window(app)
    p = Patient(client, token)
    p.open()
    from proapp import db
    from proapp.questionnaire.answering import new_link

    with app.app_context():
        s = db.session()
        new_link(s, s.scalar(select(AccessLink)).occurrence, datetime.now(UTC), revoke_previous=True)
        s.commit()
    page = client.get("/q")
    assert page.status_code == 410                    # not "this link does not work": a newer one was sent
    assert "Un nouveau lien vous a été envoyé." in text(page.text) and "le plus récent" in text(page.text)
    assert "Un nouveau lien vous a été envoyé." in text(app.test_client().get(f"/s/{token}").text)


def test_expired_window_token_gets_the_same_page(app, client, session):
    _pid, token = enrol_with_open_window(app)
    occ = session.scalar(select(Occurrence).where(Occurrence.visit_code == "W1"))
    occ.window_closes_at = datetime.now(UTC) - timedelta(minutes=1)
    session.commit()
    resp = client.get(f"/s/{token}")
    assert resp.status_code == 404
    assert "Ce lien ne fonctionne pas." in text(resp.text)


def test_window_closing_mid_way_stores_nothing_and_says_so_kindly(app, client, session):
    _pid, token = enrol_with_open_window(app)
    p = Patient(client, token)
    p.open()
    p.start()
    occ = session.scalar(select(Occurrence).where(Occurrence.visit_code == "W1"))
    occ.window_closes_at = datetime.now(UTC) - timedelta(seconds=1)
    session.commit()
    resp = p.answer(follow=False, PAIN_VAS="50")
    assert resp.status_code == 410
    assert "Ce questionnaire est clos." in text(resp.text)
    session.rollback()               # a fresh snapshot of the database
    assert session.scalar(select(func.count()).select_from(Answer)) == 0


def test_stale_csrf_token_reshows_the_page(app, client, session):
    _pid, token = enrol_with_open_window(app)
    p = Patient(client, token)
    p.open()
    p.start()
    resp = client.post("/q/PAIN_VAS.PAIN_VAS", data={"csrf_token": "stale", "PAIN_VAS": "50"})
    assert resp.status_code == 303
    page = client.get(resp.headers["Location"])
    assert page.status_code == 200
    assert "Cette page avait expiré. Rien n'est perdu" in text(page.text)
    assert session.scalar(select(func.count()).select_from(Answer)) == 0


def test_oversized_body_is_413(app, client):
    _pid, token = enrol_with_open_window(app)
    Patient(client, token).open()
    resp = client.post("/q/PAIN_VAS.PAIN_VAS", data={"PAIN_VAS": "1" * 200_000})
    assert resp.status_code == 413


def test_language_switch_changes_the_pages_and_asks_before_changing_the_sms(app, client, session):
    pid, token = enrol_with_open_window(app)
    p = Patient(client, token)
    p.open()
    from proapp.models import AuditEvent, PatientEvent
    from proapp.models import Patient as PatientRow

    resp = client.post("/q/language", data={"csrf_token": csrf(p.page.text), "lang": "en", "next": "/q"})
    assert resp.status_code == 303
    # The pages at once, the SMS not yet: the next page asks, once.
    asked = client.get("/q").text
    assert "Your questionnaires" in asked and "Your SMS are still sent in French." in text(asked)
    assert 'name="sms" value="1"' in asked
    again = client.get("/q").text
    assert "Your questionnaires" in again and 'name="sms"' not in again
    session.rollback()
    assert session.get(PatientRow, pid).language == "fr"
    assert session.scalars(select(PatientEvent).where(PatientEvent.action == "language_changed")).all() == []
    # Answers given now are given in English.
    p.get("/q")
    p.start()
    p.answer(DU_NEW="N")
    session.rollback()
    assert session.scalar(select(Response.language).where(Response.instrument_code == "DU_DIARY")) == "en"
    # "Send my SMS in English too": the patient's language from now on, recorded like any change, by the patient.
    changed = client.post("/q/language", data={"csrf_token": csrf(asked), "lang": "en", "sms": "1", "next": "/q"})
    assert changed.status_code == 303
    assert "Your SMS will be sent in English from now on." in text(client.get("/q").text)
    session.rollback()               # a fresh snapshot of the database
    assert session.get(PatientRow, pid).language == "en"
    event = session.scalars(select(PatientEvent).where(PatientEvent.patient_id == pid,
                                                       PatientEvent.action == "language_changed")).one()
    assert event.actor.startswith("patient:link:") and event.details == {"old": "fr", "new": "en"}
    audit = session.scalars(select(AuditEvent).where(AuditEvent.action == "patient.language_changed")).one()
    assert audit.patient_id == pid and audit.old == {"value": "fr"} and audit.new == {"value": "en"}
    # Pressing the language already in use changes nothing and records nothing.
    client.post("/q/language", data={"csrf_token": csrf(asked), "lang": "en", "sms": "1", "next": "/q"})
    assert len(session.scalars(select(PatientEvent).where(PatientEvent.action == "language_changed")).all()) == 1
    # Back to French on the pages: asked again, the other way round.
    client.post("/q/language", data={"csrf_token": csrf(asked), "lang": "fr", "next": "/q"})
    assert "Vos SMS sont toujours envoyés en anglais." in text(client.get("/q").text)


def test_made_up_screen_key_sends_the_patient_to_the_right_place(app, client):
    _pid, token = enrol_with_open_window(app)
    Patient(client, token).open()
    resp = client.get("/q/NOPE.NOPE")
    assert resp.status_code == 303
    assert resp.headers["Location"] == "/q/DU_DIARY.DU_NEW"


def test_submit_before_the_end_goes_back_to_the_missing_question(app, client, session):
    _pid, token = enrol_with_open_window(app)
    p = Patient(client, token)
    p.open()
    resp = client.post("/q/submit", data={"csrf_token": csrf(p.page.text)})
    assert resp.status_code == 303
    assert session.scalar(select(Occurrence.status).where(Occurrence.visit_code == "W1")).value == "scheduled"


def test_each_instrument_shows_its_instructions_and_the_sections_their_titles(app, client):
    """The recall period and the stems come from the instrument files: in full on an instrument's first screen,
    a click away on the others; the HAQ's category is named on its screens."""
    _pid, token = enrol_with_open_window(app, study="IMATINIB-SSC", visit="M1", language="fr")
    p = Patient(client, token)
    p.open()
    p.start()
    first = text(p.page.text)
    assert "AU COURS DES 7 DERNIERS JOURS" in first and "Consignes" not in first
    p.answer(DLQI01="1", DLQI02="1")
    later = text(p.page.text)
    assert "Consignes" in later and "AU COURS DES 7 DERNIERS JOURS" in later       # inside <details>
    haq = client.get("/q/HAQ.dressing")
    assert "AU COURS DE LA SEMAINE PASSÉE" in text(haq.text)
    assert "S'habiller et se préparer" in text(haq.text) and "Êtes-vous capable de :" in text(haq.text)
    _pid, token = enrol_with_open_window(app, "ADUSE", "W1", subject="ADU-TLS-777")
    diary = Patient(app.test_client(), token)
    diary.open()
    diary.start()
    diary.answer(PAIN_VAS="10")
    assert "Un ulcère du doigt est une plaie où la peau a disparu" in text(diary.page.text)


def test_patients_see_one_product_name_on_the_pages_and_in_the_sms(app, client):
    _pid, token = enrol_with_open_window(app)
    p = Patient(client, token)
    p.open()
    assert '<span class="brand">SuiviPRO</span>' in p.page.text        # the SMS's name, not "proapp"
