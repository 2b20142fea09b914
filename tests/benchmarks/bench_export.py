"""Export API throughput and memory: about 40,000 HAQ responses (1,000,000 answers) pulled through the JSON API
to the end, following the cursor, from the app under gunicorn (one sync worker); the worker's peak memory
(VmHWM) is read from /proc. A second, smaller pull shows whether memory depends on the size. Then one ODM
page of 10,000 forms.

Run: .venv/bin/python -m tests.benchmarks.bench_export [--responses 40000] [--answers-per-response 25]
     [--limit 10000] [--database-url postgresql://postgres@127.0.0.1:5432/test]
Loopback only. Default database: SQLite in a temporary folder; on PostgreSQL a schema of its own, dropped at the end.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import requests
from cryptography.fernet import Fernet
from sqlalchemy import insert, select, update

from tests.benchmarks._setup import bench_database, free_port, start_gunicorn
from tests.benchmarks.bench_dashboard import STUDY

VISITS = 20


def seed(app, responses: int, per_response: int) -> tuple[str, int]:
    """Patients with 20 occurrences each, one completed HAQ response per occurrence; returns (API key, answers)."""
    from proapp import db
    from proapp.export.keys import create_key
    from proapp.export.models import ExportFeed
    from proapp.patients.models import Occurrence, OccurrenceStatus, Patient, PatientStatus
    from proapp.questionnaire.models import Answer, Response, ResponseStatus
    from proapp.studies.models import Site, Study

    rng = random.Random(1)
    inst = app.extensions["proapp.instruments"].get("HAQ", "1.0")
    items = [i for i in inst.items if i.type in ("choice", "vas")][:per_response]
    now = datetime.now(UTC).replace(microsecond=0)
    with app.app_context(), db.transaction() as s:
        study_id = s.scalar(select(Study.id).where(Study.code == "BENCH"))
        site_ids = list(s.scalars(select(Site.id).where(Site.study_id == study_id)))
        _row, key = create_key(s, study_code="BENCH", name="bench", now=now, created_by="bench")
        patients = (responses + VISITS - 1) // VISITS
        answers_total = 0
        rid = 0
        for start in range(0, patients, 200):
            prows, orows, rrows, arows = [], [], [], []
            for p in range(start + 1, min(start + 200, patients) + 1):
                anchor = (now - timedelta(days=200)).date()
                prows.append({"id": p, "study_id": study_id, "site_id": site_ids[p % len(site_ids)],
                              "subject_id": f"BEN-X-{p:05d}", "language": "fr", "timezone": "Europe/Paris",
                              "anchor_date": anchor, "sms_hour": 10, "status": PatientStatus.ACTIVE,
                              "schedule_version": "1", "enrolled_at": now, "updated_at": now})
                for v in range(VISITS):
                    oid = p * VISITS + v
                    if rid >= responses:
                        break
                    day = anchor + timedelta(days=7 * v)
                    opened = now - timedelta(days=200 - 7 * v)
                    orows.append({"id": oid, "patient_id": p, "visit_code": f"W{v}", "visit_day": 7 * v,
                                  "instruments": ["HAQ"], "due_on": day, "window_opens_on": day,
                                  "window_closes_on": day + timedelta(days=3), "window_opens_at": opened,
                                  "window_closes_at": opened + timedelta(days=4),
                                  "status": OccurrenceStatus.COMPLETED, "completed_at": opened + timedelta(hours=5),
                                  "completed_on_site": False})
                    rid += 1
                    done = opened + timedelta(hours=5)
                    rrows.append({"id": rid, "occurrence_id": oid, "instrument_code": "HAQ",
                                  "instrument_version": "1.0", "language": "fr", "status": ResponseStatus.COMPLETED,
                                  "started_at": done, "last_saved_at": done, "completed_at": done,
                                  "completed_on_site": False, "scores": {"haq_di": 1.25, "status": "computed"},
                                  "export_seq": rid})
                    for item in items:
                        value = str(rng.randrange(101)) if item.type == "vas" else rng.choice(item.allowed_values())
                        arows.append({"response_id": rid, "item_code": item.code, "repeat_index": 0,
                                      "value": value, "answered_at": done})
            for model, rows in ((Patient, prows), (Occurrence, orows), (Response, rrows), (Answer, arows)):
                if rows:
                    s.execute(insert(model), rows)
            answers_total += len(arows)
        s.execute(update(ExportFeed).where(ExportFeed.id == 1).values(last_seq=rid))
    return key, answers_total


def worker_hwm_mb(master: subprocess.Popen) -> float:
    children = Path(f"/proc/{master.pid}/task/{master.pid}/children").read_text().split()
    status = Path(f"/proc/{children[0]}/status").read_text()
    kb = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM"))
    return kb / 1024


def pull(base: str, key: str, limit: int, max_items: int | None = None) -> tuple[int, int, float]:
    """Follow the cursor to the end (or past max_items); return (responses, answers, seconds)."""
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {key}"
    cursor, responses, answers = None, 0, 0
    t0 = time.perf_counter()
    while True:
        params = {"limit": limit} | ({"cursor": cursor} if cursor else {})
        resp = session.get(f"{base}/api/v1/studies/BENCH/responses", params=params, timeout=600)
        resp.raise_for_status()
        body = resp.json()
        responses += len(body["data"])
        answers += sum(len(item["answers"]) for item in body["data"])
        cursor = body["next_cursor"]
        if not body["has_more"] or (max_items and responses >= max_items):
            return responses, answers, time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--responses", type=int, default=40_000)
    parser.add_argument("--answers-per-response", type=int, default=25)
    parser.add_argument("--limit", type=int, default=10_000)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="proapp-bench-export-"))
    (folder / "studies").mkdir()
    (folder / "studies" / "BENCH.yaml").write_text(STUDY)
    with bench_database(args.database_url, folder) as url:
        run(args, folder, url)


def run(args, folder: Path, url: str) -> None:
    from proapp import create_app, db
    from proapp.migrate import upgrade
    from proapp.studies.sync import sync_studies

    os.environ["PROAPP_INSTANCE_PATH"] = str(folder)
    upgrade(url)
    env = {"PROAPP_ENV": "testing", "PROAPP_DATABASE_URL": url, "PROAPP_SECRET_KEY": "e" * 40,
           "PROAPP_STUDIES_DIR": str(folder / "studies"), "PROAPP_PHONE_KEYS": Fernet.generate_key().decode(),
           "PROAPP_INSTANCE_PATH": str(folder)}
    app = create_app({k.removeprefix("PROAPP_"): v for k, v in env.items() if k != "PROAPP_INSTANCE_PATH"})
    with app.app_context(), db.transaction() as s:
        sync_studies(s, app.extensions["proapp.studies"], datetime.now(UTC))
    t0 = time.perf_counter()
    key, answers = seed(app, args.responses, args.answers_per_response)
    print(f"seeded {args.responses:,} responses, {answers:,} answers in {time.perf_counter() - t0:.0f} s "
          f"({app.extensions['proapp.engine'].dialect.name})")
    app.extensions["proapp.engine"].dispose()
    port = free_port()
    server = start_gunicorn("wsgi:app", port, {**os.environ, **env}, workers=1, extra=("--timeout", "600"))
    base = f"http://127.0.0.1:{port}"
    try:
        small = pull(base, key, 1000, max_items=2000)
        hwm_small = worker_hwm_mb(server)
        got, answers_got, seconds = pull(base, key, args.limit)
        hwm_full = worker_hwm_mb(server)
        assert got == args.responses and answers_got == answers, (got, answers_got)
        print(f"small pull ({small[0]:,} responses): worker peak memory {hwm_small:.0f} MB")
        print(f"full pull: {got:,} responses, {answers_got:,} answers in {seconds:.1f} s = "
              f"{answers_got / seconds:,.0f} answers/s (limit {args.limit:,}); worker peak memory {hwm_full:.0f} MB")
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {key}"
        t1 = time.perf_counter()
        resp = session.get(f"{base}/api/v1/studies/BENCH/responses", params={"limit": 10000, "format": "odm"},
                           timeout=600)
        odm_seconds = time.perf_counter() - t1
        resp.raise_for_status()
        forms = resp.text.count("<FormData ")
        print(f"ODM: {forms:,} forms, {len(resp.content) / 1e6:.1f} MB in {odm_seconds:.1f} s; "
              f"worker peak memory {worker_hwm_mb(server):.0f} MB")
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
