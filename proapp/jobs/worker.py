"""The worker: ``proapp worker`` (APScheduler, its own process) and ``proapp tick`` (one pass, then exit).

Its jobs only call the features' services: the SMS outbox (proapp/sms/delivery.py), the alerts' notifications
(proapp/alerts/notify.py), the EDC pushes (proapp/export/push.py), the audit checkpoints and the purge of spent
rate-limit counters. Never started by the web app, ``wsgi.py`` or gunicorn. Several workers may run at once:
claims are atomic and the send rate is shared through the database.
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import socket
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, is_dataclass
from datetime import timedelta
from typing import Any

import requests
from flask import Flask

from proapp import db, mail, outbox, ratelimit, runtime
from proapp.accounts import invitations
from proapp.alerts import notify
from proapp.audit.checkpoints import write
from proapp.db import dialect_insert, utcnow
from proapp.export import push
from proapp.jobs.models import WorkerHeartbeat
from proapp.patients import occurrences
from proapp.remote import sms_replies
from proapp.sms import delivery as sms
from proapp.sms.gateways import Gateway, Outgoing, from_config

log = logging.getLogger("proapp.sms")
BATCH = 50
SLOT_ATTEMPTS = 3
MAX_SLOT_WAIT = 30.0      # seconds; a slot further away than this means the clock or the rate is wrong


STOP_CHECK_SECONDS = 0.2          # how soon the worker notices SIGTERM / SIGINT
HEARTBEAT_SECONDS = 15            # /readyz wants a beat within PROAPP_READY_HEARTBEAT_SECONDS
FAILING_RUNS = 3                  # runs in a row with failures only before a WARNING


class Worker:
    def __init__(self, app: Flask, *, worker_id: str | None = None, gateway: Gateway | None = None):
        self.app = app
        self.id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self.gateway = gateway or from_config(app.config, app.instance_path)
        self.mailer = mail.from_config(app.config, app.instance_path)
        self.settings = sms.SmsSettings.from_config(app.config)
        self.sender = self.settings.sender(app.config)
        warm = getattr(self.gateway, "_client", None)
        if callable(warm):
            warm()
        self._pool = ThreadPoolExecutor(self.settings.threads, thread_name_prefix="sms-send")
        self._http = requests.Session()          # the EDC pushes' connections, kept between passes

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self._http.close()

    # Jobs -------------------------------------------------------------------------------------------------

    def queue(self) -> dict[str, int]:
        """Windows closed -> missed; waiting SMS that must not go -> cancelled; due invitations and reminders; the
        SMS about a new information sheet."""
        with self.app.app_context(), db.transaction() as s:
            now = runtime.now()
            return {"missed": occurrences.mark_missed(s, now), "cancelled": sms.cancel_unsendable(s, now),
                    "invitations": sms.queue_invitations(s, now, self.settings),
                    "reminders": sms.queue_reminders(s, runtime.studies(), now, self.settings),
                    "information": sms.queue_information(s, runtime.studies(), now, self.settings)}

    def send_due(self, max_batches: int | None = None) -> outbox.Report:
        """Send every due SMS, a batch at a time, until none is left (or ``max_batches``)."""
        report = outbox.Report()
        batches = 0
        while max_batches is None or batches < max_batches:
            batches += 1
            with self.app.app_context():
                with db.transaction() as s:
                    ids = sms.claim(s, self.id, runtime.now(), self._batch_size())
                if not ids:
                    break
                report.claimed += len(ids)
                with db.transaction() as s:
                    ready = sms.prepare(s, ids, worker=self.id, now=runtime.now(), settings=self.settings,
                                        vault=runtime.phone_vault(), gateway=self.gateway.name,
                                        catalog=runtime.studies())
                report.cancelled += ready.cancelled
                report.postponed += ready.postponed
                outcomes = list(self._pool.map(self._send_one, ready.outgoing))
                with db.transaction() as s:
                    now = runtime.now()
                    for out, outcome in zip(ready.outgoing, outcomes, strict=True):
                        if outcome is None:          # the claim was given up before the request left
                            report.released += 1
                            continue
                        sms.apply_outcome(s, out.message_id, self.id, outcome, now, self.settings)
                        report.count(outcome.kind)
        return report

    def conversations(self) -> dict[str, int]:
        """SMS conversations without a reply for too long end: the web link is sent (proapp/remote/sms_replies.py)."""
        with self.app.app_context(), db.transaction() as s:
            timeout = timedelta(minutes=self.app.config["SMS_REPLY_TIMEOUT_MINUTES"])
            return {"conversations_timed_out": sms_replies.time_out(s, runtime.now(), timeout, self.settings.quiet)}

    def reconcile(self) -> sms.Reconciled:
        with self.app.app_context(), db.transaction() as s:
            return sms.reconcile(s, self.gateway, runtime.phone_vault(), runtime.now(), self.settings)

    def push(self) -> outbox.Report:
        """Completed responses to the EDC endpoints named in the study files (see proapp/export/push.py)."""
        cfg = self.app.config
        with self.app.app_context():
            with db.transaction() as s:
                queued = push.queue(s, runtime.studies(), runtime.now())
            report = self._drain(
                "EDC push", push.claim,
                lambda s, ids, now: [push.prepare(s, i, runtime.studies(), runtime.instruments(), now, os.environ)
                                     for i in ids],
                lambda ready: push.send(ready, self._http),
                lambda s, ready, outcome, now: push.apply_outcome(s, ready.id, self.id, outcome, now,
                                                                  cfg["PUSH_MAX_ATTEMPTS"]))
        report.queued = queued
        return report

    def alerts(self) -> dict[str, int]:
        """Notify the study team of new alerts, escalate the ones left unacknowledged, send what is due."""
        cfg = self.app.config

        def send(out: notify.Ready) -> outbox.Outcome:
            if out.channel == "sms":          # the on-call SMS take their turn in the patients' SMS rate
                self._wait_for_slot(db.engine())
            return notify.send(out, self.mailer, self.gateway)

        with self.app.app_context():
            with db.transaction() as s:
                planned = notify.plan(s, runtime.studies(), runtime.now())
            report = self._drain(
                "alert notification", notify.claim,
                lambda s, ids, now: notify.prepare(s, ids, public_url=cfg["PUBLIC_URL"],
                                                   sender_name=cfg["SMS_SENDER_NAME"]),
                send,
                lambda s, out, outcome, now: notify.apply_outcome(s, out, self.id, outcome, now,
                                                                  cfg["MAIL_MAX_ATTEMPTS"]))
        return {**planned, **asdict(report)}

    def account_mails(self) -> dict[str, int]:
        """Staff invitations and password resets (proapp/accounts/invitations.py)."""
        cfg = self.app.config
        with self.app.app_context():
            report = self._drain(
                "account mail", invitations.claim,
                lambda s, ids, now: [(i, mail) for i in ids
                                     if (mail := invitations.prepare(s, i, now, cfg["PUBLIC_URL"])) is not None],
                lambda ready: self.mailer.send(ready[1]),
                lambda s, ready, outcome, now: invitations.apply_outcome(s, ready[0], self.id, outcome, now,
                                                                         cfg["MAIL_MAX_ATTEMPTS"]))
        return asdict(report)

    def _drain(self, what: str, claim: Callable[[Any, str, Any], list[int]],
               prepare: Callable[[Any, list[int], Any], list[Any]], send: Callable[[Any], outbox.Outcome],
               settle: Callable[[Any, Any, outbox.Outcome, Any], str]) -> outbox.Report:
        """One pass over one outbox (proapp/outbox), the same for every channel but the patients' SMS (batched,
        threaded, rate-limited: ``send_due``): claim the due rows, make their messages, send each and record what
        the channel answered. Each step commits on its own: a row is claimed, and its message made (a link's
        hash, a body), before anything leaves, and settled once the answer is back. ``prepare`` leaves out the
        rows it settled itself (an account disabled meanwhile)."""
        report = outbox.Report()
        with db.transaction() as s:
            ids = claim(s, self.id, runtime.now())
        report.claimed = len(ids)
        if not ids:
            return report
        with db.transaction() as s:
            ready = prepare(s, ids, runtime.now())
        report.cancelled = len(ids) - len(ready)
        for message in ready:
            try:
                outcome = send(message)
            except Exception as exc:       # it may have gone: recorded as unknown, never resent blindly
                log.exception("%s: unexpected error while sending", what)
                outcome = outbox.Outcome("unknown", f"unexpected error: {type(exc).__name__}")
            with db.transaction() as s:
                report.count(settle(s, message, outcome, runtime.now()))
        return report

    def checkpoint(self) -> dict[str, int]:
        """A signed checkpoint of every audit chain's end, when anything was appended since the last one."""
        with self.app.app_context(), db.transaction() as s:
            written = write(s, self.app.extensions["proapp.audit_keys"], runtime.now())
            return {"checkpoint": written.id if written is not None else 0}

    def rate_counters(self) -> dict[str, int]:
        """Rate-limit counters whose window has passed are deleted (proapp/ratelimit.py)."""
        with self.app.app_context(), db.transaction() as s:
            return {"rate_counters_purged": ratelimit.purge(s, runtime.now().timestamp())}

    def beat(self) -> None:
        """Tell ``/readyz`` and ``/metrics`` this worker is alive (one row per worker, its last beat)."""
        with self.app.app_context(), db.transaction() as s:
            now = runtime.now()
            insert = dialect_insert(s.get_bind().dialect.name)
            stmt = insert(WorkerHeartbeat).values(worker=self.id[:80], started_at=now, beat_at=now)
            s.execute(stmt.on_conflict_do_update(index_elements=["worker"], set_={"beat_at": now}))

    def tick(self) -> dict[str, Any]:
        """One pass of every job, as the scheduler would run them."""
        self.beat()
        queued = self.queue()
        conversations = self.conversations()
        reconciled = self.reconcile()
        sent = self.send_due()
        alerted = self.alerts()
        mailed = self.account_mails()
        pushed = self.push()
        purged = self.rate_counters()
        checkpointed = self.checkpoint()        # last: it refuses (raises) while a chain's head is not signed
        return {**queued, **conversations, **checkpointed, **purged, **{f"alerts_{k}": v for k, v in alerted.items()},
                **{f"account_mails_{k}": v for k, v in mailed.items()},
                **asdict(reconciled), **{f"sms_{k}": v for k, v in asdict(sent).items()},
                **{f"push_{k}": v for k, v in asdict(pushed).items()}}

    # Sending ----------------------------------------------------------------------------------------------

    def _batch_size(self) -> int:
        """Claim no more than two seconds' worth of sending when the rate is limited."""
        rate = self.settings.rate_per_second
        return BATCH if rate <= 0 else max(1, min(BATCH, 2 * rate))

    def _send_one(self, out: Outgoing) -> outbox.Outcome | None:
        try:
            with self.app.app_context():
                engine = db.engine()
                now = runtime.now()
            with engine.begin() as conn:
                if not sms.renew_claim(conn, out.message_id, self.id, now):
                    return None
            self._wait_for_slot(engine)       # nothing but the sleep between the slot and the request
            return self.gateway.send(out)
        except Exception as exc:  # an unexpected error may come after the request left: look it up, never resend
            log.exception("SMS %s: unexpected error while sending", out.message_id)
            return outbox.Outcome("unknown", f"unexpected error: {type(exc).__name__}")

    def _wait_for_slot(self, engine: Any) -> None:
        """Sleep until this send's reserved instant. A thread that wakes more than one step late (a busy machine)
        takes a new slot rather than leave together with the sends reserved after it (a few times at most)."""
        rate = self.settings.rate_per_second
        if rate <= 0:
            return
        for _attempt in range(SLOT_ATTEMPTS):
            with engine.begin() as conn:
                slot_us = sms.reserve_slot(conn, self.sender, rate, time.time_ns() // 1000)
            wait = slot_us / 1e6 - time.time()
            if wait > 0:
                time.sleep(min(wait, MAX_SLOT_WAIT))
            if time.time() - slot_us / 1e6 <= 1 / rate:
                return

    # The long-running process -----------------------------------------------------------------------------

    def run_forever(self, send_every: float = 5, queue_every: float = 60, reconcile_every: float = 60) -> None:
        """Run the jobs on their intervals until SIGTERM or SIGINT; the jobs in progress then finish."""
        from apscheduler.schedulers.background import BackgroundScheduler

        scheduler = BackgroundScheduler(timezone="UTC", job_defaults={"coalesce": True, "max_instances": 1,
                                                                      "misfire_grace_time": 30})
        first = utcnow()
        scheduler.add_job(self._logged(self.queue), "interval", seconds=queue_every, id="queue", next_run_time=first)
        scheduler.add_job(self._logged(self.send_due), "interval", seconds=send_every, id="send",
                          next_run_time=first)
        scheduler.add_job(self._logged(self.conversations), "interval", seconds=queue_every, id="conversations",
                          next_run_time=first)
        scheduler.add_job(self._logged(self.reconcile), "interval", seconds=reconcile_every, id="reconcile",
                          next_run_time=first)
        scheduler.add_job(self._logged(self.alerts), "interval", seconds=send_every, id="alerts",
                          next_run_time=first)
        scheduler.add_job(self._logged(self.account_mails), "interval", seconds=send_every, id="account_mails",
                          next_run_time=first)
        scheduler.add_job(self._logged(self.push), "interval", seconds=send_every, id="push", next_run_time=first)
        scheduler.add_job(self._logged(self.checkpoint), "interval", id="checkpoint", next_run_time=first,
                          seconds=self.app.config["AUDIT_CHECKPOINT_SECONDS"])
        scheduler.add_job(self._logged(self.rate_counters), "interval", seconds=300, id="rate_counters",
                          next_run_time=first)
        scheduler.add_job(self._logged(self.beat), "interval", seconds=HEARTBEAT_SECONDS, id="beat",
                          next_run_time=first)

        stopping: list[int] = []

        def stop(signum: int, _frame: Any) -> None:
            # Only a flag: a signal handler runs in the middle of whatever the main thread was doing, so it must
            # not take locks (the scheduler's shutdown does). The main thread below sees the flag and stops.
            if stopping:                    # a second Ctrl-C or SIGTERM while stopping: already on its way out
                log.info("worker %s: signal %s, already stopping", self.id, signum)
                return
            stopping.append(signum)
            log.info("worker %s: signal %s, finishing the jobs in progress", self.id, signum)

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        try:
            scheduler.start()               # its loop runs in a thread of this process; this thread only waits
            log.info("worker %s started (gateway %s)", self.id, self.gateway.name)
            while not stopping:
                time.sleep(STOP_CHECK_SECONDS)
        finally:
            if scheduler.running:
                scheduler.shutdown(wait=True)   # the jobs in progress finish; no new one starts
            self.close()
            log.info("worker %s stopped", self.id)

    def _logged(self, job):
        failing = [0]                   # runs in a row in which the job's channel only failed

        def run() -> None:
            try:
                result = job()
            except Exception:
                log.exception("worker %s: job %s failed; it runs again at its next turn", self.id, job.__name__)
                return
            if result is None:
                return
            values = asdict(result) if is_dataclass(result) else dict(result)
            if any(values.values()):
                log.info("worker %s: %s %s", self.id, job.__name__, result)
            went = values.get("sent", 0) + values.get("delivered", 0)
            failed = sum(values.get(k, 0) for k in ("retry", "failed", "unknown", "retried"))
            failing[0] = failing[0] + 1 if failed and not went else 0 if went or not failed else failing[0]
            if failing[0] >= FAILING_RUNS:          # a channel down (SMTP, Twilio, the EDC): someone must look
                log.warning("worker %s: %s keeps failing (%d runs in a row without a success): %s", self.id,
                            job.__name__, failing[0], result)
        run.__name__ = job.__name__
        return run
