"""Being told when it breaks: ``/metrics`` (Prometheus' text format, ``prometheus_client``) and ``/readyz``.

Requests are counted per route and status in each web process (gunicorn's processes share them through
``PROMETHEUS_MULTIPROC_DIR``, set by ``proapp/deploy/gunicorn.conf.py``). The outboxes, sends by outcome, alerts,
the workers' heartbeats and the audit checkpoint's age are read from the database at each scrape, so every web
host answers the same whatever worker did the work. Both pages answer only the addresses of
``PROAPP_METRICS_ALLOW`` (default: this host); the shipped nginx site file also closes them to the public.

``/readyz`` answers 503, with the reasons, when no worker has beaten for ``PROAPP_READY_HEARTBEAT_SECONDS`` or an
outbox holds a message due for longer than ``PROAPP_READY_STUCK_SECONDS``: what a load balancer or a monitoring
probe should watch (``/healthz`` only says the web process and its database answer).
"""

from __future__ import annotations

import ipaddress
import logging
import os
import secrets
import time
from datetime import datetime
from typing import Any

from flask import Blueprint, Flask, Response, abort, current_app, g, request
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from proapp import db, runtime
from proapp.accounts.models import AccountMail
from proapp.alerts.models import Alert, AlertNotification, AlertState
from proapp.audit.models import AuditCheckpoint
from proapp.export.models import PushDelivery
from proapp.jobs.models import WorkerHeartbeat
from proapp.sms.models import SmsMessage

bp = Blueprint("metrics", __name__)
log = logging.getLogger("proapp.metrics")

_REQUESTS: Any = None
_LATENCY: Any = None


def _request_metrics() -> tuple[Any, Any]:
    global _REQUESTS, _LATENCY
    if _REQUESTS is None:
        from prometheus_client import Counter, Histogram

        _REQUESTS = Counter("proapp_http_requests", "HTTP requests answered, by route and status",
                            ["route", "method", "status"])
        _LATENCY = Histogram("proapp_http_request_seconds", "Time to answer a request, by route", ["route"],
                             buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
    return _REQUESTS, _LATENCY


def _allowed() -> bool:
    addr = request.remote_addr or ""
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        return False
    return any(ip in net for net in current_app.config["METRICS_NETWORKS"])


def _outboxes(s: Session, now: datetime) -> dict[str, dict[str, Any]]:
    """Per channel: rows by status, how many wait past their due time, the oldest due age in seconds."""
    channels = {"sms": (SmsMessage, SmsMessage.due_at), "alert_notification": (AlertNotification,
                                                                               AlertNotification.due_at),
                "account_mail": (AccountMail, AccountMail.due_at), "push": (PushDelivery, PushDelivery.due_at)}
    out = {}
    for name, (model, due) in channels.items():
        by_status = {str(getattr(status, "value", status)): n for status, n in
                     s.execute(select(model.status, func.count()).group_by(model.status))}
        oldest = s.scalar(select(func.min(due)).where(model.status == "pending", due <= now))
        out[name] = {"by_status": by_status, "oldest_due_seconds": (now - oldest).total_seconds() if oldest else 0.0}
    return out


def _alerts(s: Session) -> tuple[int, int]:
    """(open alerts, open alerts left unacknowledged past their delay: escalated at least once)."""
    open_ = s.scalar(select(func.count()).select_from(Alert).where(Alert.state == AlertState.OPEN)) or 0
    overdue = s.scalar(select(func.count()).select_from(Alert).where(Alert.state == AlertState.OPEN,
                                                                     Alert.escalation_level > 0)) or 0
    return open_, overdue


def readiness(s: Session, now: datetime) -> list[str]:
    """Why this deployment is not ready, one sentence each; empty when it is."""
    cfg = current_app.config
    problems = []
    beat = s.scalar(select(func.max(WorkerHeartbeat.beat_at)))
    if beat is None or (now - beat).total_seconds() > cfg["READY_HEARTBEAT_SECONDS"]:
        problems.append("no worker has beaten recently" if beat is not None else "no worker has ever run")
    for channel, state in _outboxes(s, now).items():
        if state["oldest_due_seconds"] > cfg["READY_STUCK_SECONDS"]:
            problems.append(f"the {channel} outbox is stuck: a message due {int(state['oldest_due_seconds'])} s ago "
                            "waits")
    return problems


@bp.get("/readyz")
@db.read_only
def readyz() -> tuple[dict[str, Any], int]:
    if not _allowed():
        abort(404)
    try:
        problems = readiness(db.session(), runtime.now())
    except Exception:
        return {"status": "database unavailable"}, 503
    return ({"status": "not ready", "problems": problems}, 503) if problems else ({"status": "ready"}, 200)


@bp.get("/metrics")
@db.read_only
def metrics() -> Response:
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Gauge, generate_latest

    if not _allowed():
        abort(404)
    s = db.session()
    now = runtime.now()
    registry = CollectorRegistry()
    depth = Gauge("proapp_outbox_messages", "Outbox rows by channel and status (sends by outcome)",
                  ["channel", "status"], registry=registry)
    oldest = Gauge("proapp_outbox_oldest_due_seconds", "Age of the oldest message due and still waiting",
                   ["channel"], registry=registry)
    for channel, state in _outboxes(s, now).items():
        for status, n in state["by_status"].items():
            depth.labels(channel, status).set(n)
        oldest.labels(channel).set(state["oldest_due_seconds"])
    open_, overdue = _alerts(s)
    Gauge("proapp_alerts_open", "Safety-signal alerts open", registry=registry).set(open_)
    Gauge("proapp_alerts_unacknowledged_overdue", "Open alerts unacknowledged past their delay",
          registry=registry).set(overdue)

    beats = Gauge("proapp_worker_heartbeat_age_seconds", "Seconds since each worker's last heartbeat", ["worker"],
                  registry=registry)
    for worker, beat_at in s.execute(select(WorkerHeartbeat.worker, WorkerHeartbeat.beat_at)):
        beats.labels(worker).set((now - beat_at).total_seconds())
    last = s.scalar(select(func.max(AuditCheckpoint.at)))
    Gauge("proapp_audit_checkpoint_age_seconds", "Seconds since the newest audit checkpoint (-1: none yet)",
          registry=registry).set((now - last).total_seconds() if last else -1)
    Gauge("proapp_ready", "1 when /readyz would answer 200", registry=registry).set(0 if readiness(s, now) else 1)
    body = generate_latest(registry) + _process_metrics()
    return Response(body, mimetype=CONTENT_TYPE_LATEST.split(";")[0], content_type=CONTENT_TYPE_LATEST)


def _process_metrics() -> bytes:
    """The request counters: of every gunicorn process when they share a folder, else of this one.

    A ``PROMETHEUS_MULTIPROC_DIR`` that is not (or no longer) a folder, or unreadable counters, never turn the
    scrape into a 500: the database's metrics above are still worth reading; the problem goes to the log."""
    from prometheus_client import REGISTRY, CollectorRegistry, generate_latest

    try:
        _request_metrics()
        folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        if folder and os.path.isdir(folder):
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry, path=folder)
            return generate_latest(registry)
        if folder:
            log.warning("PROMETHEUS_MULTIPROC_DIR=%s is not a folder: /metrics counts this process's requests only",
                        folder)
        return generate_latest(REGISTRY)
    except (OSError, ValueError):
        log.exception("/metrics: the request counters cannot be read")
        return b""


def _before() -> None:
    g.request_started = time.perf_counter()
    g.request_id = (request.headers.get("X-Request-ID") or "")[:64] or secrets.token_hex(8)


def _after(response: Response) -> Response:
    rule = request.url_rule.rule if request.url_rule is not None else "(unmatched)"   # /s/<token>: no token
    try:
        requests_, latency = _request_metrics()
        requests_.labels(rule, request.method, str(response.status_code)).inc()
        started = g.get("request_started")
        if started is not None:
            latency.labels(rule).observe(time.perf_counter() - started)
    except OSError:                    # multiprocess mode with its folder gone: counting never costs the answer
        log.exception("request counters: cannot count %s %s", request.method, rule)
    response.headers["X-Request-ID"] = g.get("request_id", "")
    return response


def init_app(app: Flask) -> None:
    nets = []
    for part in str(app.config["METRICS_ALLOW"]).split(","):
        if part.strip():
            nets.append(ipaddress.ip_network(part.strip(), strict=False))
    app.config["METRICS_NETWORKS"] = nets
    app.before_request(_before)
    app.after_request(_after)
    app.register_blueprint(bp)
