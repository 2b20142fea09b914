"""The role x route matrix, generated from the app's URL map: a new route cannot be forgotten.

Every route of the app is either a dashboard route (declared with its access level) or listed below with what
protects it instead. Each dashboard route is then requested by every role against a patient of site PSL."""

from __future__ import annotations

import pytest

from proapp.accounts.access import ACCESS
from tests.dashboard.conftest import Staff, enrol
from tests.dashboard.helpers import complete

pytestmark = pytest.mark.requirement("ACCESS")

# Routes outside the dashboard and what protects them.
OTHER_ROUTES = {
    "static": "public files",
    "core.index": "public home page",
    "core.healthz": "health check, no data",
    "core.switch_language": "language switch, no data",
    "questionnaire.open_link": "the patient's SMS token",
    "questionnaire.welcome": "the patient session from the token",
    "questionnaire.screen": "the patient session from the token",
    "questionnaire.review": "the patient session from the token",
    "questionnaire.submit": "the patient session from the token",
    "questionnaire.done": "the patient session from the token",
    "questionnaire.language": "the patient session from the token",
    "questionnaire.sms_stop": "the patient session from the token",
    "questionnaire.patient_information": "the patient session from the token",
    "questionnaire.answer_channel": "the patient session from the token",
    "questionnaire.information": "a study's public information sheet, nothing personal",
    "questionnaire.call": "the patient session from the token",
    "mail.dev_mail": "development with the console mail gateway only",
    "sms.status_callback": "Twilio's signature",
    "sms.dev_outbox": "development with the console gateway only",
    "voice.answer": "Twilio's signature (tests/remote/test_voice)",
    "voice.step": "Twilio's signature (tests/remote/test_voice)",
    "voice.status": "Twilio's signature (tests/remote/test_voice)",
    "voice.dev_call": "development with the console gateway only",
    "sms_replies.inbound": "Twilio's signature (tests/remote/test_sms_replies)",
    "api.openapi": "public API description, no data",
    "api.metadata": "an API key of the study (tests/export)",
    "api.questionnaire": "an API key of the study (tests/export)",
    "api.canonical_questionnaire": "an API key of a study using the instrument (tests/export)",
    "api.responses": "an API key of the study (tests/export)",
    **{f"api.responses_{fmt}": "an API key of the study (tests/export, the generated client)"
       for fmt in ("csv", "odm", "fhir", "redcap")},
    "api.acknowledgements": "an API key of the study (tests/export)",
    "api.alerts": "an API key of the study (tests/export)",
    "api.ulcers": "an API key of the study (tests/export)",
    "metrics.metrics": "PROAPP_METRICS_ALLOW's addresses only, 404 elsewhere (tests/ops/test_metrics)",
    "metrics.readyz": "PROAPP_METRICS_ALLOW's addresses only, 404 elsewhere (tests/ops/test_metrics)",
}
ROLES = (None, "admin", "coord_psl", "coord_bsa", "monitor")


def raise_alert(app, patient_id: int, visit: str) -> int:
    """An open alert on the patient's visit, as the study's DLQI rule would raise it."""
    from datetime import UTC, datetime

    from sqlalchemy import select

    from proapp import db
    from proapp.alerts.models import Alert
    from proapp.patients.models import Occurrence, Patient

    with app.app_context():
        s = db.session()
        patient = s.get(Patient, patient_id)
        occ = s.scalar(select(Occurrence).where(Occurrence.patient_id == patient_id, Occurrence.visit_code == visit))
        alert = Alert(study_id=patient.study_id, site_id=patient.site_id, patient_id=patient_id,
                      occurrence_id=occ.id, rule_code="DLQI_EXTREME", rule_label={"en": "DLQI 21+", "fr": "DLQI 21+"},
                      severity="review", source="completed", evidence=[{"ref": "DLQI.DLQI_TOTAL", "kind": "score",
                                                                         "value": 24}],
                      raised_at=datetime.now(UTC))
        s.add(alert)
        s.commit()
        return alert.id


def test_every_route_is_accounted_for(dash_app):
    endpoints = {rule.endpoint for rule in dash_app.url_map.iter_rules()}
    unknown = endpoints - set(ACCESS) - set(OTHER_ROUTES)
    assert unknown == set(), f"routes without a declared access rule: {sorted(unknown)}"
    assert set(ACCESS) <= endpoints and set(OTHER_ROUTES) <= endpoints


def _requests(dash_app, patient_id: int, response_id: int = 0, alert_id: int = 0, user_id: int = 0):
    values = {"patient_id": patient_id, "action": "pause", "code": "IMATINIB-SSC", "response_id": response_id,
              "alert_id": alert_id, "user_id": user_id, "token": "x" * 43}
    rules = sorted((r for r in dash_app.url_map.iter_rules() if r.endpoint in ACCESS),
                   key=lambda r: (r.endpoint == "accounts.logout", r.rule))
    for rule in rules:
        url = rule.build({k: v for k, v in values.items() if k in rule.arguments})[1]
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            yield rule.endpoint, method, url


def _expected(role: str | None, endpoint: str, url: str) -> str:
    access = ACCESS[endpoint]
    if endpoint in ("accounts.welcome", "accounts.reset"):
        return "not_found"                     # a made-up link: "this link does not work any more"
    if access == "public":
        return "ok"
    if role is None:
        return "login"
    if access == "change" and role == "monitor":
        return "forbidden"
    if access == "admin" and role != "admin":
        return "forbidden"
    if access == "audit" and role not in ("admin", "monitor"):
        return "forbidden"
    if endpoint in ("staff.note_ulcer", "staff.decide_ulcer"):
        return "not_found"                     # the matrix's patient is in IMATINIB-SSC: no ulcer registry
    if role == "coord_bsa" and ("/patients/" in url or "/alerts/" in url) and not url.endswith("/new"):
        return "not_found"                     # a patient of another site does not exist for them
    return "ok"


@pytest.mark.parametrize("role", ROLES)
def test_role_by_route_matrix(dash_app, role):
    pid = enrol(dash_app, "IMA-PSL-001")
    complete(dash_app, pid, "M1", {"HAQ": {"haq_di": 1.0}})
    with dash_app.app_context():
        from sqlalchemy import select

        from proapp import db
        from proapp.questionnaire.models import Response

        response_id = db.session().scalar(select(Response.id).order_by(Response.id))
        from proapp.accounts.models import User

        monitor_id = db.session().scalar(select(User.id).where(User.email == "monitor@cro.test"))
    alert_id = raise_alert(dash_app, pid, "M1")
    staff = Staff(dash_app, role)
    seen = []
    for endpoint, method, url in _requests(dash_app, pid, response_id, alert_id, monitor_id):
        data = {"reason": "matrix test"} if method == "POST" else None
        resp = staff.post(url, data) if method == "POST" else staff.get(url)
        expected = _expected(role, endpoint, url)
        got = resp.status_code
        where = f"{role} {method} {url}: {got}"
        if expected == "login":
            assert got == 303 and "/staff/login" in resp.headers["Location"], where
        elif expected == "forbidden":
            assert got == 403, where
        elif expected == "not_found":
            assert got == 404, where
        else:
            assert got in (200, 303, 422), where
        seen.append(endpoint)
    assert set(seen) == set(ACCESS)


def test_a_patient_of_another_study_or_site_is_never_shown(dash_app):
    other = enrol(dash_app, "ADU-TLS-001", study="ADUSE", site="TLS", days_ago=7)
    bsa = enrol(dash_app, "IMA-BSA-001", site="BSA")
    for role in ("coord_psl", "monitor"):
        staff = Staff(dash_app, role)
        assert staff.get(f"/staff/patients/{other}").status_code == 404
        assert staff.get("/staff/studies/ADUSE/completion.csv").status_code == 404
        listing = staff.get("/staff/patients").get_data(as_text=True)
        assert "ADU-TLS-001" not in listing
    coord = Staff(dash_app, "coord_psl")
    assert coord.get(f"/staff/patients/{bsa}").status_code == 404
    assert "IMA-BSA-001" not in coord.get("/staff/patients").get_data(as_text=True)
    assert "IMA-BSA-001" not in coord.get("/staff/studies/IMATINIB-SSC/completion.csv").get_data(as_text=True)
    assert coord.get("/staff/studies/IMATINIB-SSC/completion.csv?site=BSA").get_data(as_text=True).count("\n") == 1
    monitor = Staff(dash_app, "monitor")
    assert monitor.get(f"/staff/patients/{bsa}").status_code == 200   # a monitor sees the whole study
    assert Staff(dash_app, "admin").get("/staff/patients/999999").status_code == 404


def test_a_monitor_sees_no_action_buttons(dash_app):
    pid = enrol(dash_app, "IMA-PSL-001")
    page = Staff(dash_app, "monitor").get(f"/staff/patients/{pid}").get_data(as_text=True)
    assert "/actions/" not in page and "on-site" not in page and "/staff/patients/new" not in page


def test_a_coordinator_of_two_sites_sees_both_and_no_other(dash_app):
    runner = dash_app.test_cli_runner()
    result = runner.invoke(args=["proapp", "user", "create", "--email", "two@chu.test", "--role", "coordinator",
                                 "--study", "IMATINIB-SSC", "--site", "PSL", "--site", "BSA", "--language", "en"],
                           input="correct horse battery\n")
    assert result.exit_code == 0, result.output
    bad = runner.invoke(args=["proapp", "user", "create", "--email", "x@chu.test", "--role", "coordinator",
                              "--study", "IMATINIB-SSC", "--site", "ZZZ"], input="correct horse battery\n")
    assert bad.exit_code == 2 and "unknown site ZZZ" in bad.output
    ids = {site: enrol(dash_app, f"IMA-{site}-001", site=site) for site in ("PSL", "BSA", "LIM")}
    staff = Staff(dash_app, None)
    staff.login("two@chu.test", "correct horse battery", expect=303)
    assert staff.get(f"/staff/patients/{ids['PSL']}").status_code == 200
    assert staff.get(f"/staff/patients/{ids['BSA']}").status_code == 200
    assert staff.get(f"/staff/patients/{ids['LIM']}").status_code == 404
    listing = staff.get("/staff/patients").get_data(as_text=True)
    assert "IMA-PSL-001" in listing and "IMA-BSA-001" in listing and "IMA-LIM-001" not in listing
