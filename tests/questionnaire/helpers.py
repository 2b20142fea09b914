"""A patient driving the questionnaire through the Flask test client, as a browser without JavaScript would."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from html import unescape
from zoneinfo import ZoneInfo

from proapp import db
from proapp.patients.enrolment import EnrolmentRequest, enroll_patient
from proapp.questionnaire.answering import issue_link, open_occurrence_for
from tests.helpers import agreed

# Days after the anchor at which a window is open: ADUSE W1 (PAIN_VAS, DU_DIARY) or W0 (DLQI, HAQ; the day before),
# IMATINIB-SSC M1 (DLQI, HAQ).
OPEN_AT = {("ADUSE", "W1"): 7, ("ADUSE", "W0"): -1, ("IMATINIB-SSC", "M1"): 30, ("IMATINIB-SSC", "M0"): 0}


def enrol_with_open_window(app, study="ADUSE", visit="W1", subject=None, language="fr", tz="Europe/Paris"):
    """Enrol a patient whose `visit` window is open now; return (patient id, link token)."""
    site = "TLS"
    prefix = "ADU" if study == "ADUSE" else "IMA"
    subject = subject or f"{prefix}-{site}-{len(visit):01d}{abs(hash((visit, language, tz))) % 100:02d}"
    now = datetime.now(UTC)
    anchor = now.astimezone(ZoneInfo(tz)).date() - timedelta(days=OPEN_AT[(study, visit)])
    with app.app_context():
        s = db.session()
        patient = enroll_patient(s, app.extensions["proapp.studies"], app.extensions["proapp.phones"],
                                 EnrolmentRequest(study, site, subject, "+33612345678", language, anchor, tz,
                                                  agreed_on=agreed(now)), now=now)
        occ = open_occurrence_for(s, patient, now, visit)
        assert occ is not None
        token = issue_link(s, occ, now)
        s.commit()
        return patient.id, token


def csrf(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def text(html: str) -> str:
    return unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)))


class Patient:
    def __init__(self, client, token: str):
        self.client = client
        self.token = token
        self.page = None
        self.path = None

    def open(self):
        resp = self.client.get(f"/s/{self.token}")
        self.first = resp
        if resp.status_code == 303:
            return self.get(resp.headers["Location"])
        self.page = resp
        return resp

    def get(self, path):
        resp = self.client.get(path)
        self.path, self.page = path, resp
        return resp

    def start(self):
        link = re.search(r'class="button primary" href="([^"]+)"', self.page.text).group(1)
        return self.get(link)

    @property
    def screen_key(self):
        return self.path.rsplit("/", 1)[-1].split("?")[0]

    def answer(self, follow=True, **values):
        """Answer the current screen; values for the next screens too (an ulcer's hand, then its finger...) are
        given screen after screen, as long as the next screen asks for some of them."""
        remaining = dict(values)
        while True:
            asked = {k: v for k, v in remaining.items() if f'name="{k}"' in self.page.text} or dict(remaining)
            for k in asked:
                remaining.pop(k)
            action = re.search(r'<form method="post" action="([^"]+)"', self.page.text).group(1)
            resp = self.client.post(action, data={"csrf_token": csrf(self.page.text), **asked})
            if resp.status_code == 303 and follow:
                self.get(resp.headers["Location"])
                if remaining and any(f'name="{k}"' in self.page.text for k in remaining):
                    continue
                return self.page
            self.page = resp
            return resp

    def diary(self, ulcers=(), *, known=(), complications="N", pain="35", today=None):
        """The ADUSE weekly entry (diary 2.0, then the pain scale): ``known`` answers each followed ulcer
        ("N", or a date it closed), ``ulcers`` are new reports (hand, finger, place)."""
        from datetime import UTC, datetime

        day = today or datetime.now(UTC).date().isoformat()
        for answer in known:
            if answer == "N":
                self.answer(DU_KNOWN_CLOSED="N")
            else:
                self.answer(DU_KNOWN_CLOSED="Y", DU_KNOWN_CLOSED_ON=answer)
        self.answer(DU_NEW="Y" if ulcers else "N")
        for n, (hand, finger, site) in enumerate(ulcers):
            self.answer(DU_HAND=hand, DU_FINGER=finger, DU_SITE=site, DU_ONSET=day)
            self.answer(more="Y" if n < len(ulcers) - 1 else "N")
        self.answer(DU_INFECT="N", DU_ANTIBIO="N", DU_ISCHAEMIA="N", DU_NECROSIS=complications, DU_BONE="N",
                    DU_HOSPITAL="N", DU_SURGERY="N", DU_AMPUTATION="N", DU_INJECTED="N",
                    **({"DU_INJ_ULCER": "N"} if ulcers else {}), DU_HARVEST="N")
        if pain is not None:
            self.answer(PAIN_VAS=pain)

    def submit(self):
        resp = self.client.post("/q/submit", data={"csrf_token": csrf(self.page.text)})
        assert resp.status_code == 303, resp.text
        return self.get(resp.headers["Location"])


# An ADUSE weekly entry with no ulcer, screen by screen (diary 2.1 then the pain scale).
COMPLICATIONS = ("DU_ISCHAEMIA", "DU_NECROSIS", "DU_BONE", "DU_HOSPITAL", "DU_SURGERY", "DU_AMPUTATION", "DU_INJECTED",
                 "DU_HARVEST")


def weekly_screens(pain: str = "10", **overrides: str) -> list[dict[str, str]]:
    """One dict per screen; a problem at an injected finger is followed by its grade (DU_INJ_REACTION, 1 unless
    given)."""
    values = {"DU_NEW": "N", "DU_INFECT": "N", "DU_ANTIBIO": "N", **dict.fromkeys(COMPLICATIONS, "N"),
              "PAIN_VAS": pain}
    values.update({k: v for k, v in overrides.items() if k != "DU_INJ_REACTION"})
    screens = []
    for k, v in values.items():
        screens.append({k: v})
        if k == "DU_INJECTED" and v == "Y":
            screens.append({"DU_INJ_REACTION": overrides.get("DU_INJ_REACTION", "1")})
    return screens


TOLERANCE_YES_NO = ("TOL_RASH", "TOL_WEIGHT_GAIN", "TOL_BRUISE", "TOL_BLEEDING", "TOL_FEVER")


def answer_tolerance(p: Patient, grade: str = "0", rash: str = "N", **answers: str) -> list[str]:
    """The IMATINIB-SSC tolerance checklist screen by screen: every grade ``grade``, every yes/no ``rash``, except
    the items given in ``answers``. Returns the text of each "call your team" page met (and followed)."""
    calls = []
    while p.screen_key.startswith("TOLERANCE.") or p.path.startswith("/q/call"):
        if p.path.startswith("/q/call"):
            calls.append(text(p.page.text))
            p.get(re.search(r'class="button" href="([^"]+)"', p.page.text).group(1))
            continue
        names = dict.fromkeys(re.findall(r'name="(TOL_[A-Z_]+)"', p.page.text))
        p.answer(**{n: answers.get(n, rash if n in TOLERANCE_YES_NO else grade) for n in names})
    return calls


def answer_every_screen(p: Patient, *, vas: str = "50", stop_at: str = "/q/review") -> int:
    """Answer each screen until ``stop_at`` with its first choice (no other ulcer, nothing ticked, the line at
    ``vas``, today's date), whatever the screens group, going on past a "call your team" page (a first choice may
    meet a same-day rule: the tolerance checklist's "Yes"); returns the page views it took."""
    from datetime import UTC, datetime

    views = 0
    while p.path != stop_at:
        assert p.page.status_code == 200 and p.path.startswith("/q/"), (p.path, p.page.status_code)
        html = p.page.text
        if p.path.startswith("/q/call"):
            p.get(re.search(r'class="button" href="([^"]+)"', html).group(1))
            views += 1
            continue
        values: dict[str, str] = {}
        for name, value in re.findall(r'<input type="radio" name="([^"]+)" value="([^"]+)"', html):
            values.setdefault(name, "N" if name == "more" else value)
        for name in re.findall(r'name="([^"]+)" type="number"', html):
            values[name] = vas
        for name in re.findall(r'name="([^"]+)" type="date"', html):
            values[name] = datetime.now(UTC).date().isoformat()
        p.answer(**values)
        views += 1
    return views
