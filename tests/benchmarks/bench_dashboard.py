"""Dashboard server time with 5,000 patients and 100,000 occurrences.

A 12-site benchmark study with 20 visits (inclusion + 19 weekly questionnaires) is seeded with 5,000 patients
enrolled over the past 200 days: closed windows completed (70%) or missed, open ones invited by SMS (3% of the
SMS failed). Signed in as an admin (who sees everything: the largest pages), each page is requested --requests
times after a warm-up, through the Flask test client (server time, no network). Reports p50 and p95 per page
and the SQL statements each page ran, measured again after adding 1,000 patients (the count must not change).

Run: .venv/bin/python -m tests.benchmarks.bench_dashboard [--patients 5000] [--requests 30]
     [--database-url postgresql://postgres@127.0.0.1:5432/test]
Default database: SQLite in a temporary folder. On PostgreSQL it works in a schema of its own, dropped at the end.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography.fernet import Fernet
from sqlalchemy import event, insert, select

from tests.benchmarks._setup import bench_database

SITES = ("TLS", "BSA", "BPE", "PES", "LIB", "PGX", "LIM", "NCY", "PSL", "STR", "MRS", "LYO")
STUDY = f"""
code: BENCH
version: "1"
title: "Benchmark study: 12 sites, 20 visits"
subject_id_pattern: "BEN-{{site}}-[0-9]{{4}}"
anchor: {{en: Inclusion date, fr: Date d'inclusion}}
default_timezone: Europe/Paris
sites:
{chr(10).join(f'  - {{code: {s}, name: "Site {s}"}}' for s in SITES)}
instruments:
  DLQI: {{version: "1.0"}}
  HAQ: {{version: "1.0"}}
  PAIN_VAS: {{version: "1.0", variant: digital_ulcers_24h}}
  DU_DIARY: {{version: "1.0"}}
visits:
  - {{code: W0, day: 0, window: {{before: 3, after: 0}}, instruments: [DLQI, HAQ],
     label: {{en: Inclusion, fr: Inclusion}}}}
  - series:
      code: "W{{n}}"
      label: {{en: "Week {{n}}", fr: "Semaine {{n}}"}}
      from: 1
      to: 19
      every_days: 7
      window: {{before: 0, after: 3}}
      instruments: [PAIN_VAS, DU_DIARY]
"""
PAGES = {
    "studies overview (completion matrix)": "/staff/",
    "patients list, page 1": "/staff/patients",
    "patients list, page 50": "/staff/patients?page=50",
    "patients list, filter overdue": "/staff/patients?flag=overdue",
    "patients list, filter SMS problem": "/staff/patients?flag=sms_problem",
    "patients list, search": "/staff/patients?q=BEN-LYO-00",
    "patient page": "/staff/patients/1",
}


def seed(app, count: int, first: int, now: datetime) -> int:
    from proapp import db
    from proapp.patients.models import Occurrence, OccurrenceStatus, Patient, PatientContact, PatientStatus
    from proapp.sms.models import SmsMessage, SmsStatus
    from proapp.studies.models import Site, Study
    from proapp.studies.schedule import compute_schedule

    rng = random.Random(first)
    vault = app.extensions["proapp.phones"]
    study_def = app.extensions["proapp.studies"].get("BENCH")
    phone = vault.encrypt("+33612345678")
    with app.app_context(), db.transaction() as s:
        study_id = s.scalar(select(Study.id).where(Study.code == "BENCH"))
        sites = dict(s.execute(select(Site.code, Site.id).where(Site.study_id == study_id)).all())
        patients, contacts, occurrences, sms = [], [], [], []
        occ_id = first * 20
        schedules = {}
        for i in range(count):
            pid = first + i
            site = SITES[pid % len(SITES)]
            enrolled = now - timedelta(days=rng.randrange(0, 200), hours=rng.randrange(0, 24))
            anchor = enrolled.date()
            patients.append({"id": pid, "study_id": study_id, "site_id": sites[site],
                             "subject_id": f"BEN-{site}-{pid:04d}", "language": "fr" if pid % 5 else "en",
                             "timezone": "Europe/Paris", "anchor_date": anchor, "sms_hour": 10,
                             "status": PatientStatus.ACTIVE, "schedule_version": "1", "enrolled_at": enrolled,
                             "updated_at": enrolled})
            contacts.append({"patient_id": pid, "phone_ciphertext": phone, "phone_lookup": vault.lookup("+336"),
                             "usable": rng.random() > 0.01, "updated_at": enrolled})
            if anchor not in schedules:
                schedules[anchor] = compute_schedule(study_def, anchor, "Europe/Paris")
            for p in schedules[anchor]:
                occ_id += 1
                status, completed_at = OccurrenceStatus.SCHEDULED, None
                if p.closes_at <= enrolled:
                    status = OccurrenceStatus.CANCELLED
                elif p.closes_at <= now:
                    if rng.random() < 0.7:
                        status, completed_at = OccurrenceStatus.COMPLETED, p.opens_at + timedelta(hours=30)
                    else:
                        status = OccurrenceStatus.MISSED
                occurrences.append({"id": occ_id, "patient_id": pid, "visit_code": p.visit_code, "visit_day": p.day,
                                    "instruments": list(p.instruments), "due_on": p.due_on,
                                    "window_opens_on": p.opens_on, "window_closes_on": p.closes_on,
                                    "window_opens_at": p.opens_at, "window_closes_at": p.closes_at,
                                    "status": status, "completed_at": completed_at,
                                    "completed_on_site": False if completed_at else None})
                if status != OccurrenceStatus.CANCELLED and p.opens_at <= now:
                    sent = p.opens_at + timedelta(hours=9)
                    sms.append({"occurrence_id": occ_id, "patient_id": pid, "kind": "invitation",
                                "status": SmsStatus.FAILED if rng.random() < 0.03 else SmsStatus.DELIVERED,
                                "created_at": sent, "due_at": sent, "status_at": sent, "attempts": 1})
        for model, rows in ((Patient, patients), (PatientContact, contacts), (Occurrence, occurrences),
                            (SmsMessage, sms)):
            for start in range(0, len(rows), 5000):
                s.execute(insert(model), rows[start:start + 5000])
    return len(occurrences)


def measure(client, engine, path: str, requests: int) -> tuple[float, float, int]:
    count = [0]

    def on_execute(*_args):
        count[0] += 1

    for _ in range(3):
        assert client.get(path).status_code == 200, path
    times = []
    for _ in range(requests):
        t0 = time.perf_counter()
        resp = client.get(path)
        times.append((time.perf_counter() - t0) * 1000)
        assert resp.status_code == 200
    event.listen(engine, "before_cursor_execute", on_execute)
    try:
        client.get(path)
    finally:
        event.remove(engine, "before_cursor_execute", on_execute)
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.95) - 1], count[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patients", type=int, default=5000)
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="proapp-bench-dash-"))
    (folder / "studies").mkdir()
    (folder / "studies" / "BENCH.yaml").write_text(STUDY)
    os.environ["PROAPP_INSTANCE_PATH"] = str(folder)
    with bench_database(args.database_url, folder) as url:
        run(args, folder, url)


def run(args, folder: Path, url: str) -> None:
    from proapp import create_app, db
    from proapp.accounts.models import Role
    from proapp.accounts.staff import create_user
    from proapp.migrate import upgrade
    from proapp.studies.sync import sync_studies

    upgrade(url)
    now = datetime.now(UTC).replace(microsecond=0)
    app = create_app({"ENV": "testing", "DATABASE_URL": url, "SECRET_KEY": "b" * 40,
                      "STUDIES_DIR": str(folder / "studies"), "PHONE_KEYS": Fernet.generate_key().decode(),
                      "NOW": now, "WTF_CSRF_ENABLED": False})
    with app.app_context(), db.transaction() as s:
        sync_studies(s, app.extensions["proapp.studies"], now)
        create_user(s, email="admin@bench.test", password="benchmark password", role=Role.ADMIN, now=now,
                    language="en")
    t0 = time.perf_counter()
    occurrences = seed(app, args.patients, 1, now)
    print(f"seeded {args.patients:,} patients and {occurrences:,} occurrences in {time.perf_counter() - t0:.1f} s "
          f"({app.extensions['proapp.engine'].dialect.name})")
    engine = app.extensions["proapp.engine"]
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE")
    client = app.test_client()
    resp = client.post("/staff/login", data={"email": "admin@bench.test", "password": "benchmark password"})
    assert resp.status_code == 303, resp.get_data(as_text=True)[:300]
    results = {name: measure(client, engine, path, args.requests) for name, path in PAGES.items()}
    seed(app, 1000, args.patients + 1, now)
    statements_after = {name: measure(client, engine, path, 3)[2] for name, path in PAGES.items()}
    print(f"| page | p50 ms | p95 ms | SQL statements ({args.patients:,} patients) | after +1,000 patients |")
    print("|---|---:|---:|---:|---:|")
    for name, (p50, p95, statements) in results.items():
        print(f"| {name} | {p50:.1f} | {p95:.1f} | {statements} | {statements_after[name]} |")
    engine.dispose()


if __name__ == "__main__":
    main()
