"""Database outages: requests get 503 with Retry-After (never a 500), service resumes by itself, nothing that
was acknowledged is lost, and the worker survives."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from proapp import db
from proapp.questionnaire.models import Answer
from tests.conftest import make_app
from tests.faults import Relay
from tests.questionnaire.helpers import Patient, csrf, enrol_with_open_window


def test_an_unreachable_database_gives_503_with_retry_after(database_url, instance_dir):
    app = make_app("postgresql+psycopg://nobody@127.0.0.1:1/none")
    client = app.test_client()
    try:
        for method, path, kwargs in (("GET", "/s/" + "x" * 22, {}), ("GET", "/healthz", {}),
                                     ("GET", "/api/v1/studies/ADUSE/responses",
                                      {"headers": {"Authorization": "Bearer pk_x.y"}})):
            resp = client.open(path, method=method, **kwargs)
            assert resp.status_code == 503, (path, resp.status_code)
        page = client.get("/s/" + "x" * 22)
        assert page.headers["Retry-After"] == "5" and "momentanément indisponible" in page.get_data(as_text=True)
        api = client.get("/api/v1/studies/ADUSE/metadata", headers={"Authorization": "Bearer pk_x.y"})
        assert api.mimetype == "application/problem+json" and api.get_json()["status"] == 503
    finally:
        app.extensions["proapp.engine"].dispose()


@pytest.mark.postgres
def test_a_database_outage_during_answers_loses_nothing(app, database_url):
    url = make_url(database_url)
    relay = Relay(url.host or "127.0.0.1", url.port or 5432)
    via_relay = url.set(host="127.0.0.1", port=relay.port).render_as_string(hide_password=False)
    _pid, token = enrol_with_open_window(app, "ADUSE", "W1", subject="ADU-TLS-001")
    outage_app = make_app(via_relay)
    try:
        client = outage_app.test_client()
        p = Patient(client, token)
        p.open()
        p.start()
        form = {"csrf_token": csrf(p.page.text), "PAIN_VAS": "42"}
        relay.cut()
        down = client.post("/q/PAIN_VAS.PAIN_VAS", data=form)
        assert down.status_code == 503 and down.headers["Retry-After"] == "5"
        relay.restore()
        started = time.monotonic()
        while True:                        # the client retries, as the page tells the patient to
            up = client.post("/q/PAIN_VAS.PAIN_VAS", data=form)
            if up.status_code == 303 or time.monotonic() - started > 5:
                break
            time.sleep(0.2)
        assert up.status_code == 303, "service did not resume within 5 s"
        client.post("/q/PAIN_VAS.PAIN_VAS", data=form)          # a double submit after the retry
        with app.app_context():
            assert db.session().scalar(select(func.count()).select_from(Answer)) == 1
            assert db.session().scalar(select(Answer.value)) == "42"
    finally:
        outage_app.extensions["proapp.engine"].dispose()
        relay.close()


@pytest.mark.postgres
def test_the_worker_survives_a_database_outage(app, database_url):
    from proapp.jobs.worker import Worker

    url = make_url(database_url)
    relay = Relay(url.host or "127.0.0.1", url.port or 5432)
    worker_app = make_app(url.set(host="127.0.0.1", port=relay.port).render_as_string(hide_password=False))
    worker = Worker(worker_app)
    try:
        queue = worker._logged(worker.queue)
        relay.cut()
        queue()                                   # logged, not raised: the scheduler keeps running
        relay.restore()
        enrol_with_open_window(app, "ADUSE", "W1", subject="ADU-TLS-002")
        queue()
        with app.app_context():
            from proapp.sms.models import SmsMessage

            assert db.session().scalar(select(func.count()).select_from(SmsMessage)) == 1
    finally:
        worker.close()
        worker_app.extensions["proapp.engine"].dispose()
        relay.close()
