"""The ulcer registry through the patient's pages and the team's patient page: the team notes the treated ulcer,
the patient confirms it and adds one before the injection, then each week says whether each is closed."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime

import pytest
from flask import Flask
from sqlalchemy import select

from proapp import db
from proapp.accounts.models import Role
from proapp.accounts.staff import create_user
from proapp.models import Occurrence, Response
from proapp.patients.enrolment import EnrolmentRequest, enroll_patient
from proapp.questionnaire.answering import issue_link
from tests.conftest import fresh_app
from tests.dashboard.conftest import PASSWORD, Staff
from tests.helpers import agreed
from tests.questionnaire.helpers import Patient, text
from tests.questionnaire.test_flow import answer_dlqi, answer_haq

INJECTION = date(2026, 3, 2)
W0_TIME = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)      # the day before the injection, 10:00 in Paris
DLQI_NONE = {**{f"DLQI{n:02d}": "0" for n in range(1, 7)}, "DLQI07A": "N", "DLQI07B": "0",
             **{f"DLQI{n:02d}": "0" for n in range(8, 11)}}


@pytest.fixture
def reg_app(database_url, instance_dir) -> Iterator[Flask]:
    app = fresh_app(database_url, NOW=W0_TIME)
    with app.app_context():
        s = db.session()
        create_user(s, email="tls@chu.test", password=PASSWORD, role=Role.COORDINATOR, now=W0_TIME,
                    study_code="ADUSE", site_code="TLS", language="fr")
        s.commit()
    yield app
    app.extensions["proapp.engine"].dispose()


def nurse(app: Flask) -> Staff:
    staff = Staff(app, None)
    staff.login("tls@chu.test", PASSWORD, expect=303)
    return staff


def enrol(app: Flask) -> int:
    with app.app_context():
        s = db.session()
        p = enroll_patient(s, app.extensions["proapp.studies"], app.extensions["proapp.phones"],
                           EnrolmentRequest("ADUSE", "TLS", "ADU-TLS-201", "+33612345678", "fr", INJECTION,
                                            "Europe/Paris", agreed_on=agreed(W0_TIME)), now=W0_TIME)
        s.commit()
        return p.id


def link(app: Flask, pid: int, visit: str) -> str:
    with app.app_context():
        s = db.session()
        occ = s.scalar(select(Occurrence).where(Occurrence.patient_id == pid, Occurrence.visit_code == visit))
        token = issue_link(s, occ, app.extensions["proapp.clock"].now())
        s.commit()
        return token


def scores(app: Flask, pid: int, visit: str, code: str) -> dict:
    with app.app_context():
        return db.session().scalar(select(Response.scores).join(Occurrence).where(
            Occurrence.patient_id == pid, Occurrence.visit_code == visit, Response.instrument_code == code))


def test_the_registry_from_the_team_note_to_healing(reg_app):
    pid = enrol(reg_app)
    staff = nurse(reg_app)
    page = staff.get(f"/staff/patients/{pid}")
    assert "Ulcères des doigts" in text(page.get_data(as_text=True))
    # The nurse records the treated ulcer; a place the instrument does not know is refused in her language.
    bad = staff.post(f"/staff/patients/{pid}/ulcers", {"hand": "L", "finger": "9", "site": "TIP",
                                                      "noted_on": "2026-03-01", "treated": "Y"})
    assert bad.status_code == 422 and "Choisissez la main, le doigt et l'endroit" in text(bad.get_data(as_text=True))
    done = staff.post(f"/staff/patients/{pid}/ulcers", {"hand": "L", "finger": "2", "site": "TIP",
                                                       "noted_on": "2026-03-01", "treated": "Y"})
    assert done.status_code == 303
    again = staff.post(f"/staff/patients/{pid}/ulcers", {"hand": "L", "finger": "2", "site": "TIP",
                                                        "noted_on": "2026-03-01", "treated": "Y"})
    assert again.status_code == 422 and "déjà enregistré" in text(again.get_data(as_text=True))
    listed = text(staff.get(f"/staff/patients/{pid}").get_data(as_text=True))
    assert "Main gauche · Index · Bout du doigt" in listed and "pas encore confirmé" in listed

    # W0, before the injection: the patient confirms it (named as the team noted it), then adds one.
    p = Patient(reg_app.test_client(), link(reg_app, pid, "W0"))
    p.open()
    p.start()
    assert p.screen_key == "DU_BASELINE.DU_CONFIRM.1.DU_CONFIRM_OK"
    assert "Ulcère noté par votre équipe : Main gauche · Index · Bout du doigt" in text(p.page.text)
    p.answer(DU_CONFIRM_OK="Y")
    assert "En dehors des ulcères notés par votre équipe" in text(p.page.text)
    p.answer(DU_BL_ANY="Y", DU_HAND="R", DU_FINGER="3", DU_SITE="TIP")
    assert p.screen_key == "DU_BASELINE.DU_ULCER-more.1"
    p.answer(more="N", PAIN_VAS="60")
    answer_dlqi(p, DLQI_NONE)
    answer_haq(p, activity="0")
    assert p.path == "/q/review"
    p.submit()
    assert scores(reg_app, pid, "W0", "DU_BASELINE")["baseline_ulcer_count"] == 2

    # W1: each open ulcer by name; a closing day before it was last reported open is refused.
    reg_app.extensions["proapp.clock"].set(datetime(2026, 3, 9, 9, 0, tzinfo=UTC))
    p = Patient(reg_app.test_client(), link(reg_app, pid, "W1"))
    p.open()
    p.start()
    assert p.screen_key == "DU_DIARY.DU_KNOWN.1.DU_KNOWN_CLOSED"
    assert "Votre ulcère : Main gauche · Index · Bout du doigt" in text(p.page.text)
    p.answer(DU_KNOWN_CLOSED="N")
    assert "Votre ulcère : Main droite · Majeur · Bout du doigt" in text(p.page.text)
    p.answer(DU_KNOWN_CLOSED="Y")
    assert p.screen_key == "DU_DIARY.DU_KNOWN.2.DU_KNOWN_CLOSED_ON"
    refused = p.answer(follow=False, DU_KNOWN_CLOSED_ON="2026-02-27")
    assert refused.status_code == 422 and "encore ouvert" in text(refused.text)
    p.answer(DU_KNOWN_CLOSED_ON="2026-03-07")
    # The first diary after the injection asks since the questionnaire before it (W0).
    assert "Depuis votre questionnaire d'avant l'injection, un nouvel ulcère" in text(p.page.text)
    p.diary(pain="30", today="2026-03-08")
    assert p.path == "/q/review"
    p.submit()
    w1 = scores(reg_app, pid, "W1", "DU_DIARY")
    assert w1["groups"]["DU_KNOWN"] == {"2": {"days_to_healing": 5}}          # 7 March - 2 March
    assert (w1["active_ulcer_count"], w1["treated_active_count"], w1["healed_ulcer_count"]) == (1, 1, 1)

    # W2 asks only about the ulcer still open; the team's page shows each ulcer's state.
    reg_app.extensions["proapp.clock"].set(datetime(2026, 3, 16, 9, 0, tzinfo=UTC))
    p = Patient(reg_app.test_client(), link(reg_app, pid, "W2"))
    p.open()
    p.start()
    assert "Main gauche · Index" in text(p.page.text)
    p.answer(DU_KNOWN_CLOSED="Y", DU_KNOWN_CLOSED_ON="2026-03-14")
    assert p.screen_key == "DU_DIARY.DU_NEW"
    assert "Depuis votre dernière saisie, un nouvel ulcère" in text(p.page.text)        # from the second diary on
    listed = text(nurse(reg_app).get(f"/staff/patients/{pid}").get_data(as_text=True))
    assert "Main droite · Majeur · Bout du doigt" in listed and "Guéri" in listed and "Ouvert" in listed
