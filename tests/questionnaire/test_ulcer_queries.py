"""Issue 30: the treated ulcer is required before W0, and a patient's "no, that is not right" on a noted ulcer
becomes a query the team resolves (never a silent drop); closing an ulcer is the team's audited decision."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select

from proapp import db
from proapp.models import AuditEvent, Occurrence
from tests.questionnaire.helpers import Patient, text
from tests.questionnaire.test_flow import answer_dlqi, answer_haq
from tests.questionnaire.test_ulcer_flow import DLQI_NONE, enrol, link, nurse, reg_app  # noqa: F401  (fixture)


def audit(app, action: str) -> list[AuditEvent]:
    with app.app_context():
        return list(db.session().scalars(select(AuditEvent).where(AuditEvent.action == action)))


def test_the_treated_ulcer_task_and_a_dispute_resolved_then_closed(reg_app):  # noqa: F811
    pid = enrol(reg_app)                             # the W0 window opened on 27 February: the task is overdue
    staff = nurse(reg_app)
    page = text(staff.get(f"/staff/patients/{pid}").get_data(as_text=True))
    assert "Aucun ulcère traité (injecté) n'est noté" in page
    assert "1 patient sans ulcère traité noté" in text(staff.get("/staff/").get_data(as_text=True))
    flagged = 'class="flag warn">Ulcère traité à noter'
    assert flagged in staff.get("/staff/patients").get_data(as_text=True)
    assert "ADU-TLS-201" in staff.get("/staff/patients?flag=treated_missing").get_data(as_text=True)
    # Starting W0 on the site's device is the moment to note it: refused, explained, the nurse still signed in.
    with reg_app.app_context():
        w0 = db.session().scalar(select(Occurrence.id).where(Occurrence.patient_id == pid,
                                                             Occurrence.visit_code == "W0"))
    refused = staff.post(f"/staff/patients/{pid}/on-site", {"occurrence": str(w0), "confirm": "yes"})
    assert refused.status_code == 422
    assert "Enregistrez d'abord l'ulcère traité (injecté)" in text(refused.get_data(as_text=True))
    assert staff.post(f"/staff/patients/{pid}/ulcers", {"hand": "L", "finger": "2", "site": "TIP",
                                                       "noted_on": "2026-03-01", "treated": "Y"}).status_code == 303
    page = text(staff.get(f"/staff/patients/{pid}").get_data(as_text=True))
    assert "Aucun ulcère traité (injecté) n'est noté" not in page
    assert flagged not in staff.get("/staff/patients").get_data(as_text=True)
    assert "ADU-TLS-201" not in staff.get("/staff/patients?flag=treated_missing").get_data(as_text=True)

    # W0: the patient says the team's note is not right.
    p = Patient(reg_app.test_client(), link(reg_app, pid, "W0"))
    p.open()
    p.start()
    p.answer(DU_CONFIRM_OK="N")
    p.answer(DU_BL_ANY="Y", DU_HAND="R", DU_FINGER="5", DU_SITE="DORSAL")     # another one, in their words
    p.answer(more="N", PAIN_VAS="60")
    answer_dlqi(p, DLQI_NONE)
    answer_haq(p, activity="0")
    p.submit()
    page = text(staff.get(f"/staff/patients/{pid}").get_data(as_text=True))
    assert "requête ouverte : le patient a dit que ce n'est pas juste (W0" in page
    overview = text(staff.get("/staff/").get_data(as_text=True))
    assert "Tous les ulcères traités sont notés" in overview
    assert "1 patient avec une requête ouverte sur un ulcère" in overview
    query_flag = 'class="flag warn">Requête ouverte sur un ulcère'
    assert query_flag in staff.get("/staff/patients").get_data(as_text=True)
    assert "ADU-TLS-201" in staff.get("/staff/patients?flag=ulcer_query").get_data(as_text=True)
    assert "Main gauche · Index · Bout du doigt" in page
    assert "Dans la même saisie, le patient a signalé : Main droite · Auriculaire · Sur une articulation" in page

    # W1: the ulcer is still followed (not dropped).
    reg_app.extensions["proapp.clock"].set(datetime(2026, 3, 9, 9, 0, tzinfo=UTC))
    p = Patient(reg_app.test_client(), link(reg_app, pid, "W1"))
    p.open()
    p.start()
    assert p.screen_key == "DU_DIARY.DU_KNOWN.1.DU_KNOWN_CLOSED"
    p.diary(known=["N", "N"], pain="30", today="2026-03-09")
    p.submit()

    # The nurse resolves the query: a corrected place must be a place; a reason is required; in her language.
    staff = nurse(reg_app)                           # signed in again on the day
    bad = staff.post(f"/staff/patients/{pid}/ulcers/decision", {"number": "1", "action": "relocated",
                                                               "hand": "L", "finger": "", "site": "PERI",
                                                               "reason": "Vu en consultation"})
    assert bad.status_code == 422 and "Choisissez la main, le doigt et l'endroit" in text(bad.get_data(as_text=True))
    no_reason = staff.post(f"/staff/patients/{pid}/ulcers/decision", {"number": "1", "action": "confirmed",
                                                                     "reason": " "})
    assert no_reason.status_code == 422 and "Veuillez indiquer un motif" in text(no_reason.get_data(as_text=True))
    assert audit(reg_app, "ulcer.query_resolved") == []
    done = staff.post(f"/staff/patients/{pid}/ulcers/decision", {"number": "1", "action": "relocated", "hand": "L",
                                                                "finger": "3", "site": "PERI",
                                                                "reason": "Vu en consultation"})
    assert done.status_code == 303
    [event] = audit(reg_app, "ulcer.query_resolved")
    assert event.actor == "user:tls@chu.test" and event.reason == "Vu en consultation"
    assert (event.old["finger"], event.new["finger"], event.new["action"]) == ("2", "3", "relocated")
    assert query_flag not in staff.get("/staff/patients").get_data(as_text=True)
    assert "Aucune requête ouverte sur un ulcère" in text(staff.get("/staff/").get_data(as_text=True))
    page = text(staff.get(f"/staff/patients/{pid}").get_data(as_text=True))
    assert "requête résolue : endroit corrigé" in page and "Main gauche · Majeur · Autour de l'ongle" in page
    again = staff.post(f"/staff/patients/{pid}/ulcers/decision", {"number": "1", "action": "confirmed",
                                                                 "reason": "Encore"})
    assert again.status_code == 422 and "n'a pas de requête ouverte" in text(again.get_data(as_text=True))

    # The team closes it: followed no more, audited; a closing day in the future is refused.
    future = staff.post(f"/staff/patients/{pid}/ulcers/decision", {"number": "1", "action": "closed",
                                                                  "closed_on": "2026-04-01", "reason": "Cicatrisé"})
    assert future.status_code == 422 and "dans le futur" in text(future.get_data(as_text=True))
    assert staff.post(f"/staff/patients/{pid}/ulcers/decision", {
        "number": "1", "action": "closed", "closed_on": "2026-03-09", "reason": "Cicatrisé à l'examen"},
    ).status_code == 303
    [closed] = audit(reg_app, "ulcer.closed")
    assert closed.new["closed_on"] == "2026-03-09" and closed.reason == "Cicatrisé à l'examen"
    assert "Fermé par l'équipe" in text(staff.get(f"/staff/patients/{pid}").get_data(as_text=True))
    reg_app.extensions["proapp.clock"].set(datetime(2026, 3, 16, 9, 0, tzinfo=UTC))
    p = Patient(reg_app.test_client(), link(reg_app, pid, "W2"))
    p.open()
    p.start()
    assert p.screen_key == "DU_DIARY.DU_KNOWN.2.DU_KNOWN_CLOSED"    # ulcer 1 is followed no more
