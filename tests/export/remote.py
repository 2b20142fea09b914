"""A visit answered without the web page, as the voice and SMS conversations store it: the study's remote plan
(the diary, and the 0-10 pain rating instead of the VAS), each screen saved with ``save_screen(..., mode=...)``,
completed, and the remote wording recorded on each response."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update

from proapp import db
from proapp.questionnaire import answering
from proapp.questionnaire import flow as flowmod
from proapp.questionnaire.models import Response


def answer_remotely(app, token: str, modes: dict[str, str], *, default: str = "voice_dtmf", channel: str = "voice",
                    pain: str = "6", language: str = "fr", now: datetime | None = None) -> list[int]:
    """Answer the visit behind ``token`` one screen at a time: "N" to every yes/no question (no new ulcer),
    ``pain`` to the pain rating; each item's screen saved in ``modes.get(item, default)``. Returns the responses'
    ids."""
    now = now or datetime.now(UTC)
    with app.app_context():
        s = db.session()
        registry, studies = app.extensions["proapp.instruments"], app.extensions["proapp.studies"]
        _state, link = answering.resolve_link(s, token, now)
        assert link is not None
        visit, responses, answers = answering.visit_of_live_link(s.connection(), link.id, link.occurrence_id,
                                                                 for_writing=True)
        plan = studies.get(visit.study_code).remote_plan(list(visit.instruments), channel)
        assert plan is not None, "the study does not allow this visit by " + channel
        visit = dataclasses.replace(visit, instruments=tuple(plan))
        q = answering.load(visit, responses, {code: answers.get(code, {}) for code in plan}, registry, studies,
                           s.connection())
        for n in range(60):
            screen = flowmod.first_unanswered(q.flow(), q.answers, q.states)
            if screen is None:
                break
            if screen.asks_more:
                form, mode = {"more": "N"}, modes.get(f"{screen.group.code}.more", default)
            else:
                form = {}
                for item in screen.items:
                    values = item.allowed_values() if item.type == "choice" else set()
                    form[item.code] = pain if item.code == "PAIN_NRS" else ("N" if "N" in values else
                                                                          sorted(values)[0])
                mode = modes.get(screen.items[0].code, default)
            errors = answering.save_screen(s, q, screen, form, language=language, now=now + timedelta(seconds=n),
                                           mode=mode)
            assert not errors, (screen.key, errors)
        assert answering.complete(s, q, language=language, now=now + timedelta(minutes=2))
        ids = []
        for code in plan:
            inst = registry.get(code, q.responses[code].instrument_version)
            r = s.scalar(select(Response).where(Response.id == q.responses[code].id))
            s.execute(update(Response).where(Response.id == r.id).values(
                flow_state={**(r.flow_state or {}), "mode_wording": inst.remote.version}))
            ids.append(r.id)
        s.commit()
        return ids
