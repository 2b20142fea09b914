"""SMS throughput: 10,000 due invitations through the `twilio` gateway (the real SDK) to the fake Twilio on
127.0.0.1, with two `proapp worker` processes on PostgreSQL, one of them killed (SIGKILL) mid-run and restarted.
Reports duration, messages per second, duplicates and lost messages; then the same with the send rate limit on
(default 10 per second per sender), where the measured rate must be the configured one.

Run: .venv/bin/python -m tests.benchmarks.bench_sms [--count 10000] [--rate-count 200]
     [--database-url postgresql://postgres@127.0.0.1:5432/test]
Loopback only; bounded (each phase gives up after --timeout seconds). Works in a schema of its own, dropped at
the end."""

from __future__ import annotations

import argparse
import bisect
import itertools
import os
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from cryptography.fernet import Fernet
from sqlalchemy import create_engine, func, insert, select, text

from tests.benchmarks._setup import drop_schema, schema_url
from tests.sms.fake_twilio import ACCOUNT_SID, AUTH_TOKEN, FakeTwilio

ROOT = Path(__file__).resolve().parents[2]
DONE = ("accepted", "sent", "delivered")


def seed(app, count: int, first: int, study_code: str = "IMATINIB-SSC", visit: str = "M1") -> None:
    """`count` patients (IMATINIB-SSC: 10 sites x 1,000 subject IDs; ADUSE: 1,000), each with `visit` open now."""
    from proapp import db
    from proapp.patients.models import Occurrence, Patient, PatientContact, PatientStatus
    from proapp.studies.models import Site, Study

    vault = app.extensions["proapp.phones"]
    now = datetime.now(UTC)
    paris_today = now.astimezone(ZoneInfo("Europe/Paris")).date()
    with app.app_context(), db.transaction() as s:
        study = s.scalar(select(Study).where(Study.code == study_code))
        prefix = "IMA" if study_code == "IMATINIB-SSC" else "ADU"
        sites = list(s.scalars(select(Site).where(Site.study_id == study.id).order_by(Site.code)))
        base_id = (s.scalar(select(func.max(Patient.id))) or 0) + 1
        patients, contacts, occurrences = [], [], []
        for i in range(count):
            n = first + i
            pid = base_id + i
            site = sites[n // 1000]
            phone = f"+336{1 if study_code == 'IMATINIB-SSC' else 2}{n:07d}"
            patients.append({"id": pid, "study_id": study.id, "site_id": site.id,
                             "subject_id": f"{prefix}-{site.code}-{n % 1000:03d}", "language": "fr" if n % 3 else "en",
                             "timezone": "Europe/Paris", "anchor_date": paris_today - timedelta(days=30),
                             "sms_hour": 10, "status": PatientStatus.ACTIVE, "schedule_version": "1",
                             "enrolled_at": now, "updated_at": now})
            contacts.append({"patient_id": pid, "phone_ciphertext": vault.encrypt(phone),
                             "phone_lookup": vault.lookup(phone), "usable": True, "updated_at": now})
            occurrences.append({"patient_id": pid, "visit_code": visit, "visit_day": 30, "instruments": ["DLQI", "HAQ"],
                                "due_on": paris_today, "window_opens_on": paris_today - timedelta(days=7),
                                "window_closes_on": paris_today + timedelta(days=7),
                                "window_opens_at": now - timedelta(days=7), "window_closes_at": now + timedelta(days=7),
                                "status": "scheduled"})
        s.execute(insert(Patient), patients)
        s.execute(insert(PatientContact), contacts)
        s.execute(insert(Occurrence), occurrences)


def quiet_window() -> tuple[int, int]:
    """A one-hour quiet window twelve hours away, so that the run is never held by the real quiet hours."""
    paris_hour = datetime.now(ZoneInfo("Europe/Paris")).hour
    return (paris_hour + 12) % 24, (paris_hour + 13) % 24


def worker_env(url: str, instance: Path, keys: str, fake: FakeTwilio, rate: int) -> dict[str, str]:
    quiet_start, quiet_end = quiet_window()
    env = {**os.environ, "PROAPP_ENV": "development", "PROAPP_DATABASE_URL": url, "PROAPP_INSTANCE_PATH": str(instance),
           "PROAPP_PHONE_KEYS": keys, "PROAPP_PUBLIC_URL": "https://pro.example.test",
           "PROAPP_SMS_GATEWAY": "twilio", "PROAPP_TWILIO_ACCOUNT_SID": ACCOUNT_SID,
           "PROAPP_TWILIO_AUTH_TOKEN": AUTH_TOKEN, "PROAPP_TWILIO_API_BASE": fake.base_url,
           "PROAPP_SMS_RATE_PER_SECOND": str(rate),
           "PROAPP_SMS_QUIET_START": str(quiet_start), "PROAPP_SMS_QUIET_END": str(quiet_end),
           "PROAPP_TWILIO_TIMEOUT": "3", "PROAPP_SMS_CLAIM_LEASE_SECONDS": "8", "PROAPP_SMS_UNKNOWN_GRACE_SECONDS": "2",
           "PROAPP_SMS_RECONCILE_SECONDS": "2"}
    env.pop("PROAPP_TEST_DATABASE_URL", None)
    return env


def start_worker(env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([str(ROOT / ".venv/bin/proapp"), "worker"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def done_count(engine) -> int:
    with engine.connect() as conn:
        return conn.scalar(text("SELECT count(*) FROM sms_message WHERE status IN ('accepted','sent','delivered')"))


def run_phase(app, engine, fake, env, count: int, kill_after: int | None, timeout: float) -> dict:
    from proapp.jobs.worker import Worker

    before_fake = len(fake.messages)
    before_done = done_count(engine)
    queuer = Worker(app)
    t0 = time.perf_counter()
    queued = queuer.queue()["invitations"]
    queue_seconds = time.perf_counter() - t0
    queuer.close()
    assert queued == count, queued
    workers = [start_worker(env), start_worker(env)]
    start = time.perf_counter()
    killed_at = None
    deadline = start + timeout
    while time.perf_counter() < deadline:
        sent = len(fake.messages) - before_fake
        if kill_after is not None and killed_at is None and sent >= kill_after:
            workers[0].send_signal(signal.SIGKILL)
            workers[0].wait()
            killed_at = sent
            workers[0] = start_worker(env)            # restarted, as systemd would
        if done_count(engine) - before_done >= count:
            break
        time.sleep(0.05)
    duration = time.perf_counter() - start
    for w in workers:
        w.send_signal(signal.SIGTERM)
    for w in workers:
        try:
            w.wait(30)
        except subprocess.TimeoutExpired:
            w.kill()
    new = sorted(fake.messages.values(), key=lambda m: m.created)[before_fake:]
    stamps = sorted(m.created.timestamp() for m in new)
    with engine.connect() as conn:
        not_done = conn.scalar(text("SELECT count(*) FROM sms_message WHERE status NOT IN "
                                    "('accepted','sent','delivered')"))
    return {"count": count, "queue_seconds": queue_seconds, "duration": duration, "per_second": count / duration,
            "at_fake": len(new), "duplicates": len(fake.duplicates()), "lost": not_done, "killed_at": killed_at,
            "gaps_ms": sorted(round((b - a) * 1000) for a, b in itertools.pairwise(stamps))[:8],
            "fake_rate": (len(stamps) - 1) / (stamps[-1] - stamps[0]) if len(stamps) > 1 else 0.0,
            "busiest_second": max((bisect.bisect_left(stamps, t + 1) - i for i, t in enumerate(stamps)), default=0)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--rate-count", type=int, default=200)
    parser.add_argument("--rate", type=int, default=10)
    parser.add_argument("--timeout", type=float, default=600)
    args = parser.parse_args()
    if args.count > 10_000 or args.rate_count > 1_000:
        sys.exit("at most 10,000 patients for the first run and 1,000 for the second (subject ID patterns)")

    url, schema = schema_url(args.database_url)
    instance = Path(tempfile.mkdtemp(prefix="proapp-bench-sms-"))
    keys = Fernet.generate_key().decode()
    os.environ.update({"PROAPP_INSTANCE_PATH": str(instance)})
    try:
        from proapp import create_app, db
        from proapp.migrate import upgrade
        from proapp.studies.sync import sync_studies

        upgrade(url)
        with FakeTwilio() as fake:
            fake.deliver_on_lookup = True
            app = create_app({"ENV": "development", "DATABASE_URL": url, "PHONE_KEYS": keys,
                              "PUBLIC_URL": "https://pro.example.test", "SMS_GATEWAY": "twilio",
                              "TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
                              "TWILIO_API_BASE": fake.base_url, "SMS_QUIET_START": quiet_window()[0],
                              "SMS_QUIET_END": quiet_window()[1]})
            with app.app_context(), db.transaction() as s:
                sync_studies(s, app.extensions["proapp.studies"], datetime.now(UTC))
            engine = create_engine(url)
            t = time.perf_counter()
            seed(app, args.count, 0)
            print(f"seeded {args.count} patients in {time.perf_counter() - t:.1f} s", flush=True)
            free = run_phase(app, engine, fake, worker_env(url, instance, keys, fake, 0), args.count,
                             kill_after=args.count * 3 // 10, timeout=args.timeout)
            seed(app, args.rate_count, 0, "ADUSE", "W1")
            limited = run_phase(app, engine, fake, worker_env(url, instance, keys, fake, args.rate), args.rate_count,
                                kill_after=None, timeout=args.timeout)
            engine.dispose()
            app.extensions["proapp.engine"].dispose()
    finally:
        drop_schema(args.database_url, schema)

    print()
    print("| Run | SMS | Duration | SMS/s | Measured send rate | Busiest second | Duplicates | Lost |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    print(f"| rate limit off, 2 workers, one killed at {free['killed_at']} and restarted | {free['count']:,} "
          f"| {free['duration']:.1f} s | {free['per_second']:.0f} | {free['fake_rate']:.0f}/s "
          f"| {free['busiest_second']} | {free['duplicates']} | {free['lost']} |")
    print(f"| rate limit {args.rate}/s, 2 workers | {limited['count']:,} | {limited['duration']:.1f} s "
          f"| {limited['per_second']:.1f} | {limited['fake_rate']:.2f}/s | {limited['busiest_second']} "
          f"| {limited['duplicates']} | {limited['lost']} |")
    print(f"\nsmallest gaps between two SMS with the limit on (ms): {limited['gaps_ms']}")
    print(f"\nqueueing {args.count:,} invitations took {free['queue_seconds']:.2f} s")
    for run in (free, limited):
        if run["duplicates"] or run["lost"] or run["at_fake"] < run["count"]:
            sys.exit(f"SMS sent twice or lost: {run}")
    if limited["busiest_second"] > args.rate + 1:
        sys.exit(f"the send rate was exceeded: {limited['busiest_second']} in one second")


if __name__ == "__main__":
    main()
