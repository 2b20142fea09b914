"""Being told when it breaks: /readyz, /metrics (Prometheus' text format, closed to the public) and a WARNING
when a channel keeps failing."""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, timedelta

from prometheus_client.parser import text_string_to_metric_families

from proapp.jobs.worker import Worker
from tests.sms.conftest import at, enrol

ENROLLED = datetime(2026, 3, 16, 6, tzinfo=UTC)
DUE = datetime(2026, 3, 16, 9, tzinfo=UTC)                 # 10:00 in Paris: the W0 invitation


def samples(body: str) -> dict[tuple[str, tuple], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(body) for s in family.samples}


def test_readyz_wants_a_recent_worker_and_no_stuck_outbox(sms_app, fake_twilio):
    client = sms_app.test_client()
    at(sms_app, ENROLLED)
    answer = client.get("/readyz")
    assert answer.status_code == 503 and "no worker has ever run" in answer.json["problems"]
    assert client.get("/healthz").status_code == 200           # the web process alone is fine
    enrol(sms_app, "ADU-TLS-001", date(2026, 3, 17))
    worker = Worker(sms_app, worker_id="w1")
    try:
        worker.tick()
        assert client.get("/readyz").status_code == 200
        at(sms_app, ENROLLED + timedelta(seconds=121))          # the worker stopped beating
        answer = client.get("/readyz")
        assert answer.status_code == 503 and answer.json["problems"] == ["no worker has beaten recently"]
        # Twilio refuses everything for a while: the worker beats, the invitation waits past its due time.
        fake_twilio.inject("500", count=50)
        at(sms_app, DUE + timedelta(minutes=16))
        worker.beat()
        answer = client.get("/readyz")
        assert answer.status_code == 503
        assert answer.json["problems"][0].startswith("the sms outbox is stuck: a message due 960 s ago")
    finally:
        worker.close()


def test_metrics_tell_outboxes_requests_heartbeats_and_are_closed_to_the_public(sms_app, fake_twilio):
    client = sms_app.test_client()
    at(sms_app, ENROLLED)
    enrol(sms_app, "ADU-TLS-001", date(2026, 3, 17))
    worker = Worker(sms_app, worker_id="w1")
    try:
        worker.tick()
        at(sms_app, DUE + timedelta(minutes=5))
        worker.beat()
        client.get("/s/not-a-token")
        answer = client.get("/metrics")
    finally:
        worker.close()
    assert answer.status_code == 200 and answer.content_type.startswith("text/plain")
    assert "not-a-token" not in answer.text
    got = samples(answer.text)
    assert got[("proapp_outbox_messages", (("channel", "sms"), ("status", "pending")))] == 1
    assert got[("proapp_outbox_oldest_due_seconds", (("channel", "sms"),))] == 300
    assert got[("proapp_worker_heartbeat_age_seconds", (("worker", "w1"),))] == 0
    assert got[("proapp_alerts_open", ())] == 0
    assert got[("proapp_audit_checkpoint_age_seconds", ())] >= 0
    assert got[("proapp_http_requests_total", (("method", "GET"), ("route", "/s/<token>"), ("status", "404")))] >= 1
    outsider = {"REMOTE_ADDR": "203.0.113.9"}
    assert client.get("/metrics", environ_base=outsider).status_code == 404
    assert client.get("/readyz", environ_base=outsider).status_code == 404


def test_metrics_answer_when_the_shared_counters_folder_is_missing(sms_app, monkeypatch, tmp_path, caplog):
    """PROMETHEUS_MULTIPROC_DIR naming no folder (removed under gunicorn, or set for another process): the
    scrape still answers, with this process's counters, and says why in the log; no request answers 500."""
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "gone"))
    client = sms_app.test_client()
    assert client.get("/healthz").status_code == 200
    with caplog.at_level(logging.WARNING, logger="proapp.metrics"):
        answer = client.get("/metrics")
    assert answer.status_code == 200
    assert ("proapp_ready", ()) in samples(answer.text)
    assert "is not a folder" in caplog.text


def test_a_channel_that_keeps_failing_is_a_warning(sms_app, fake_twilio, caplog):
    at(sms_app, ENROLLED)
    enrol(sms_app, "ADU-TLS-001", date(2026, 3, 17))
    worker = Worker(sms_app, worker_id="w1")
    send = worker._logged(worker.send_due)
    fake_twilio.inject("500", count=10)
    try:
        worker.queue()
        caplog.set_level(logging.INFO, logger="proapp")
        for when in (DUE, DUE + timedelta(seconds=31), DUE + timedelta(seconds=92)):   # the retries' backoff
            at(sms_app, when)
            send()
    finally:
        worker.close()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "send_due keeps failing (3 runs in a row" in warnings[0].getMessage()
