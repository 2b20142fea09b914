"""The audit trail at the size of a trial: one patient's certified copy with 1,000 and then 1,000,000 entries in
the trail (goal: both under 200 ms, within 1.5x of each other: a copy costs that patient's history), and
``verify`` of the whole trail (goal on PostgreSQL: 1,000,000 entries in under 30 s), in flat memory.

The trail is written as proapp writes it: entries in per-patient chains and a ``system`` chain, each hashed with
HMAC-SHA-256 under the app's key, the chain heads moved; the patient of the copy has 40 entries.

Run: .venv/bin/python -m tests.benchmarks.bench_audit [--entries 1000000] [--requests 20]
     [--database-url postgresql://postgres@127.0.0.1:5432/test]
Default database: SQLite in a temporary folder; on PostgreSQL a schema of its own, dropped at the end.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.benchmarks._setup import bench_database

PATIENT_ENTRIES = 40
JUDGED_FROM = 100_000       # smaller trails are smoke runs: their figures are printed, not judged
OTHER_PATIENTS = 5000


def seed(app, start: int, count: int, patient_id: int | None) -> None:
    """``count`` more entries: the first PATIENT_ENTRIES (once) to ``patient_id``'s chain, the rest spread over
    other patients' chains and the system chain, hashed and chained as proapp does."""
    from sqlalchemy import insert, select

    from proapp import db
    from proapp.audit.models import AuditChainHead, AuditEvent
    from proapp.audit.trail import GENESIS, chain_of, head_mac, keyed_hash
    from tests.conftest import owner_engine

    keys = app.extensions["proapp.audit_keys"]
    secret = keys.secret(keys.newest)
    at = datetime(2026, 1, 1, tzinfo=UTC)
    with app.app_context():
        s = db.session()
        heads = {h.chain: [h.last_seq, h.last_hash] for h in s.scalars(select(AuditChainHead))}
        rows = []
        next_id = (s.scalar(select(AuditEvent.id).order_by(AuditEvent.id.desc()).limit(1)) or 0) + 1
        for n in range(start, start + count):
            if n < PATIENT_ENTRIES and patient_id is not None:
                pid = patient_id
            else:
                pid = None if n % 10 == 0 else 100_000 + n % OTHER_PATIENTS
            chain = chain_of(pid)
            seq, prev = heads.get(chain, [0, GENESIS])
            entry = {"id": next_id, "at": at + timedelta(seconds=n), "actor": "bench", "action": "answer.saved",
                     "entity": "answer", "entity_id": str(n), "patient_id": pid, "old": None,
                     "new": {"value": str(n % 101)}, "reason": None, "chain": chain, "seq": seq + 1,
                     "key_id": keys.newest, "prev_hash": prev}
            entry["hash"] = keyed_hash(secret, prev, entry)
            heads[chain] = [seq + 1, entry["hash"]]
            rows.append(entry)
            next_id += 1
            if len(rows) == 10_000:
                s.execute(insert(AuditEvent), rows)
                rows = []
        if rows:
            s.execute(insert(AuditEvent), rows)
        s.commit()
        with owner_engine(app.config["DATABASE_URL"]).begin() as conn:     # the app's role may not delete heads
            conn.execute(AuditChainHead.__table__.delete())
            conn.execute(insert(AuditChainHead), [{"chain": c, "last_seq": v[0], "last_hash": v[1],
                                                   "key_id": keys.newest, "mac": head_mac(secret, c, *v)}
                                                  for c, v in heads.items()])
        if s.get_bind().dialect.name == "postgresql":
            from sqlalchemy import text

            s.execute(text("SELECT setval('audit_event_id_seq', :n)"), {"n": next_id})
            s.commit()


def copy_times(client, patient_id: int, requests: int) -> list[float]:
    times = []
    for _ in range(requests):
        t = time.perf_counter()
        resp = client.get(f"/staff/patients/{patient_id}/audit.csv")
        times.append((time.perf_counter() - t) * 1000)
        assert resp.status_code == 200 and resp.headers["X-Audit-Chain"].startswith("intact"), resp.headers
    return times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="proapp-bench-audit-"))
    with bench_database(args.database_url, folder) as url:
        run(args, url, folder)


def run(args: argparse.Namespace, url: str, folder: Path) -> None:
    import os

    os.environ["PROAPP_INSTANCE_PATH"] = str(folder)
    from proapp import create_app, db
    from proapp.audit.trail import verify
    from proapp.migrate import upgrade
    from tests.dashboard.conftest import PASSWORD, Staff
    from tests.questionnaire.helpers import enrol_with_open_window

    upgrade(url)
    app = create_app({"DATABASE_URL": url, "WTF_CSRF_ENABLED": True, "RATE_LOGIN_PER_IP": 0})
    runner = app.test_cli_runner()
    assert runner.invoke(args=["proapp", "init"]).exit_code == 0
    created = runner.invoke(args=["proapp", "user", "create", "--email", "admin@chu.test", "--role", "admin"],
                            input=PASSWORD + "\n")
    assert created.exit_code == 0, created.output
    patient_id, _token = enrol_with_open_window(app, "ADUSE", "W1", subject="ADU-TLS-001")
    staff = Staff(app, None)
    staff.login("admin@chu.test", PASSWORD, expect=303)
    small = min(1_000, args.entries)
    seed(app, 0, small, patient_id)
    first = copy_times(staff.client, patient_id, args.requests)
    t = time.perf_counter()
    seed(app, small, args.entries - small, patient_id)
    seeded = time.perf_counter() - t
    second = copy_times(staff.client, patient_id, args.requests)
    processes = os.cpu_count() or 1
    with app.app_context():
        t = time.perf_counter()
        count, findings = verify(db.session())
        verified_one = time.perf_counter() - t
        t = time.perf_counter()
        count, findings = verify(db.session(), processes=processes)    # as `proapp audit verify` does
        verified = time.perf_counter() - t
    assert not findings, findings[:3]
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    app.extensions["proapp.engine"].dispose()
    db_name = "PostgreSQL" if url.startswith("postgresql") else "SQLite"
    p50 = [statistics.median(first), statistics.median(second)]
    print(f"database: {db_name}; seeded {args.entries - small:,} more entries in {seeded:.1f} s")
    print(f"certified copy of one patient ({PATIENT_ENTRIES} entries of theirs): p50 {p50[0]:.1f} ms with "
          f"{small:,} entries in the trail, {p50[1]:.1f} ms with {args.entries:,} (ratio {p50[1] / p50[0]:.2f}; "
          "goal: both < 200 ms, ratio <= 1.5)")
    print(f"verify of the whole trail, one process: {count:,} entries in {verified_one:.1f} s = "
          f"{count / verified_one:,.0f} entries/s; process peak memory {peak:.0f} MB")
    print(f"verify of the whole trail, {processes} processes (proapp audit verify): {verified:.1f} s = "
          f"{count / verified:,.0f} entries/s (goal on PostgreSQL: 1,000,000 in < 30 s)")
    if args.entries < JUDGED_FROM:        # a few milliseconds on a busy machine: the ratio is noise
        print(f"(goals judged from {JUDGED_FROM:,} entries on)")
    elif max(p50) >= 200 or p50[1] / p50[0] > 1.5:
        raise SystemExit("the certified copy does not cost one patient's history")


if __name__ == "__main__":
    main()
