"""Issue 30: the liposuction date reaches the EDC where the injection (anchor) date does: beside ``anchor_date`` in
the JSON ulcer registry (null while the team has not recorded it). No other format carries the anchor date, so none
carries the liposuction date either."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from proapp import db
from proapp.patients.enrolment import EnrolmentRequest, enroll_patient
from tests.export.conftest import auth
from tests.helpers import agreed

URL = "/api/v1/studies/ADUSE/ulcers"


def _enrol(app, subject: str, harvest: date | None) -> date:
    now = datetime.now(UTC)
    anchor = now.date() - timedelta(days=7)
    with app.app_context():
        s = db.session()
        enroll_patient(s, app.extensions["proapp.studies"], app.extensions["proapp.phones"],
                       EnrolmentRequest("ADUSE", "TLS", subject, "+33612345678", "en", anchor, "Europe/Paris",
                                        agreed_on=agreed(now), harvest_date=harvest), now=now)
        s.commit()
    return anchor


def test_the_json_registry_carries_the_liposuction_date_beside_the_anchor_date(app, client, key):
    harvest = datetime.now(UTC).date() - timedelta(days=30)
    anchor = _enrol(app, "ADU-TLS-401", harvest)
    _enrol(app, "ADU-TLS-402", None)
    doc = client.get(URL, headers=auth(key)).get_json()
    by_subject = {s["subject_id"]: s for s in doc["subjects"]}
    assert by_subject["ADU-TLS-401"]["anchor_date"] == anchor.isoformat()
    assert by_subject["ADU-TLS-401"]["harvest_date"] == harvest.isoformat()
    assert by_subject["ADU-TLS-402"]["harvest_date"] is None
    spec = client.get("/api/v1/openapi.json").get_json()
    subject = spec["components"]["schemas"]["UlcerRegistry"]["properties"]["subjects"]["items"]
    assert subject["properties"]["harvest_date"]["type"] == ["string", "null"]
    # The registry's other formats carry no anchor date (nor the responses': their visits' windows), so no
    # liposuction date either.
    for fmt in ("csv", "odm", "fhir", "redcap"):
        body = client.get(f"{URL}?format={fmt}", headers=auth(key)).get_data(as_text=True)
        assert harvest.isoformat() not in body and "anchor_date" not in body.lower(), fmt
