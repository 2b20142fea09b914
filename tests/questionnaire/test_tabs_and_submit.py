"""An answer saved in one tab while the questionnaire is submitted in another: whichever commits first, the
completed response never changes afterwards and its scores are those of the answers stored."""

import pytest
from sqlalchemy import select

from proapp import db, runtime
from proapp.models import AccessLink, Answer, Response
from proapp.questionnaire import answering as answering
from tests.questionnaire.helpers import Patient, csrf, enrol_with_open_window
from tests.questionnaire.test_flow import finish_diary


def _tab(app, link: AccessLink):
    """Another tab's request, stopped after it read the visit and answers (nothing written yet)."""
    s = db.session()
    visit, responses, answers = answering.visit_of_live_link(s.connection(), link.id, link.occurrence_id)
    return s, answering.load(visit, responses, answers, app.extensions["proapp.instruments"],
                      app.extensions["proapp.studies"])


def _pain(visit_q):
    return next(scr for scr in visit_q.flow() if scr.key == "PAIN_VAS.PAIN_VAS")


def test_a_save_that_read_before_a_submit_committed_stores_nothing(app, client, session):
    _pid, token = enrol_with_open_window(app)
    p = Patient(client, token)
    finish_diary(p)                                   # PAIN_VAS = 10, every question answered
    link = session.scalars(select(AccessLink)).one()
    with app.app_context():
        s, other_tab = _tab(app, link)
        assert p.submit().status_code == 200          # this tab submits and commits first
        with pytest.raises(answering.AlreadyCompleted):
            answering.save_screen(s, other_tab, _pain(other_tab), {"PAIN_VAS": "77"}, language="fr",
                           now=runtime.now(), actor="test:other-tab")
        s.rollback()
    session.rollback()               # a fresh snapshot of the database
    assert session.scalar(select(Answer.value).where(Answer.item_code == "PAIN_VAS")) == "10"
    pain = session.scalars(select(Response).where(Response.instrument_code == "PAIN_VAS")).one()
    assert pain.status.value == "completed" and pain.scores["pain"] == 10


@pytest.mark.requirement("ANSWER-KEPT")
def test_a_submit_that_read_before_a_save_committed_scores_the_saved_answer(app, client, session):
    _pid, token = enrol_with_open_window(app)
    p = Patient(client, token)
    finish_diary(p)
    link = session.scalars(select(AccessLink)).one()
    with app.app_context():
        s, submitting_tab = _tab(app, link)            # the submit read the answers (PAIN_VAS = 10) ...
        page = client.get("/q/PAIN_VAS.PAIN_VAS")      # ... then this tab changed the pain to 90 and committed
        changed = client.post("/q/PAIN_VAS.PAIN_VAS", data={"csrf_token": csrf(page.text), "PAIN_VAS": "90"})
        assert changed.status_code == 303
        assert answering.complete(s, submitting_tab, language="fr", now=runtime.now(), actor="test:submitting-tab")
        s.commit()
    session.rollback()               # a fresh snapshot of the database
    pain = session.scalars(select(Response).where(Response.instrument_code == "PAIN_VAS")).one()
    assert pain.status.value == "completed"
    assert pain.scores["pain"] == 90                   # the answer stored, not the one read before
    assert session.scalar(select(Answer.value).where(Answer.item_code == "PAIN_VAS")) == "90"


def test_a_first_answer_rolled_back_leaves_no_response_behind(app, session):
    """The response is created in the answer's own transaction: a save that fails after it (or a rollback for
    any reason) leaves neither the answer nor an empty response (on SQLite a savepoint there used to commit the
    new response on its own)."""
    _pid, _token = enrol_with_open_window(app)
    link = session.scalars(select(AccessLink)).one()
    with app.app_context():
        s, tab = _tab(app, link)
        assert answering.save_screen(s, tab, _pain(tab), {"PAIN_VAS": "35"}, language="fr", now=runtime.now(),
                              actor="test") == {}
        s.rollback()
    session.rollback()               # a fresh snapshot of the database
    assert session.scalars(select(Response)).all() == []
    assert session.scalars(select(Answer)).all() == []


def test_two_tabs_starting_the_same_questionnaire_share_one_response(app, session):
    """Both tabs read the visit before either had answered; each first answer lands on the same response."""
    _pid, _token = enrol_with_open_window(app)
    link = session.scalars(select(AccessLink)).one()
    with app.app_context():
        s, first_tab = _tab(app, link)
        assert answering.save_screen(s, first_tab, _pain(first_tab), {"PAIN_VAS": "35"}, language="fr",
                              now=runtime.now(), actor="test:first-tab") == {}
        s.commit()
        db.session().close()
    with app.app_context():
        s, second_tab = _tab(app, link)
        second_tab.responses.clear()                  # as read before the first tab's commit
        second_tab.answers = {code: {} for code in second_tab.answers}
        assert answering.save_screen(s, second_tab, _pain(second_tab), {"PAIN_VAS": "60"}, language="fr",
                              now=runtime.now(), actor="test:second-tab") == {}
        s.commit()
    session.rollback()               # a fresh snapshot of the database
    pain = session.scalars(select(Response).where(Response.instrument_code == "PAIN_VAS")).one()
    assert session.scalars(select(Answer.value).where(Answer.response_id == pain.id)).all() == ["60"]
