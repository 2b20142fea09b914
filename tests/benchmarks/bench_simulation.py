"""A whole trial simulated at a size of its own (``tests/simulation.py``; the suite runs it with 2 + 2 patients):
ADUSE and IMATINIB-SSC patients walk their schedules through the real patient pages, then every export format is
pulled to the end and the protocols' endpoints computed from each are compared with the simulation's truth.
Prints the size, the time of each phase and a table of endpoints x formats (equal or not).

Run: .venv/bin/python -m tests.benchmarks.bench_simulation [--aduse 8] [--imatinib 8] [--seed 30]
     [--database-url postgresql://postgres@127.0.0.1:5432/test]
Loopback only (the Flask test client, no network). Default database: SQLite in a temporary folder; on PostgreSQL a
schema of its own, dropped at the end.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import func, select

from tests.benchmarks._setup import bench_database


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--aduse", type=int, default=8)
    parser.add_argument("--imatinib", type=int, default=8)
    parser.add_argument("--seed", type=int, default=30)
    parser.add_argument("--database-url")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="proapp-sim-"))
    os.environ["PROAPP_INSTANCE_PATH"] = str(folder)
    from proapp import db
    from proapp.accounts.models import Role
    from proapp.accounts.staff import create_user
    from proapp.migrate import upgrade
    from proapp.models import Answer, Response
    from tests.conftest import fresh_app
    from tests.dashboard.conftest import PASSWORD, Staff
    from tests.simulation import simulate

    with bench_database(args.database_url, folder) as url:
        if url.startswith("sqlite"):
            upgrade(url)
        start = datetime(2026, 2, 27, 9, 0, tzinfo=UTC)
        app = fresh_app(url, NOW=start)
        with app.app_context():
            s = db.session()
            create_user(s, email="tls@chu.test", password=PASSWORD, role=Role.COORDINATOR, now=start,
                        study_code="ADUSE", site_code="TLS", language="fr")
            s.commit()

        def staff() -> Staff:
            nurse = Staff(app, None)
            nurse.login("tls@chu.test", PASSWORD, expect=303)
            return nurse

        began = time.perf_counter()
        truth, found = simulate(app, staff, args.seed, args.aduse, args.imatinib)
        took = time.perf_counter() - began
        with app.app_context():
            s = db.session()
            responses, answers = s.scalar(select(func.count(Response.id))), s.scalar(select(func.count(Answer.id)))
        app.extensions["proapp.engine"].dispose()
    names = sorted({k for e in truth.endpoints.values() for k in e})
    print(f"patients: ADUSE {args.aduse}, IMATINIB-SSC {args.imatinib}; responses {responses}, answers {answers}; "
          f"{took:.0f} s in all (walking the pages and pulling every format)")
    print("| endpoint | " + " | ".join(found) + " |")
    print("|---|" + "---|" * len(found))
    wrong = 0
    for name in names:
        cells = []
        for fmt in found:
            subjects = [s for s, e in truth.endpoints.items() if name in e]
            equal = sum(found[fmt][s].get(name) == truth.endpoints[s][name] for s in subjects)
            wrong += len(subjects) - equal
            cells.append(f"{equal}/{len(subjects)}")
        print(f"| {name} | " + " | ".join(cells) + " |")
    return 1 if wrong else 0


if __name__ == "__main__":
    raise SystemExit(main())
