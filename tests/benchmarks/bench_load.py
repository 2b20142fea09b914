"""Load and soak: simulated patients completing questionnaires at once against gunicorn and PostgreSQL, with
requests dropped (the client hangs up before the answer) and retried, and double submits; then proof that every
acknowledged answer is stored exactly once and every completed response is exportable through the API.

Run: .venv/bin/python -m tests.benchmarks.bench_load [--users 200] [--seconds 300] [--patients 3000]
     [--drop 0.10] [--double 0.05] [--workers 4] [--database-url postgresql://postgres@127.0.0.1:5432/test]
Loopback only, bounded by --seconds. PostgreSQL in a schema of its own, dropped at the end (SQLite without a URL).
"""

from __future__ import annotations

import argparse
import http.client
import os
import random
import re
import statistics
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from cryptography.fernet import Fernet

from tests.benchmarks._setup import bench_database, free_port, start_gunicorn
from tests.helpers import agreed

# An ADUSE weekly entry with no ulcer, screen by screen: the diary 2.1, then the pain scale.
ANSWERS = {**{f"DU_DIARY.{code}": {code: "N"} for code in (
    "DU_NEW", "DU_INFECT", "DU_ANTIBIO", "DU_ISCHAEMIA", "DU_NECROSIS", "DU_BONE", "DU_HOSPITAL", "DU_SURGERY",
    "DU_AMPUTATION", "DU_INJECTED", "DU_HARVEST")},
    "PAIN_VAS.PAIN_VAS": {"PAIN_VAS": "42"}}


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.latencies: list[float] = []
        self.dropped = self.retried = self.double_submits = self.completed = self.errors = 0
        self.unavailable = self.server_errors = 0
        self.acknowledged: dict[tuple[str, str], str] = {}       # (token, item) -> value the server confirmed
        self.submitted: set[str] = set()                          # tokens whose submit got its 303


class Client:
    """One patient's browser: keeps its cookie; may hang up before an answer, then tries again."""

    def __init__(self, port: int, stats: Stats, rng: random.Random, drop: float):
        self.port, self.stats, self.rng, self.drop = port, stats, rng, drop
        self.cookie = ""

    def request(self, method: str, path: str, form: dict[str, str] | None = None) -> tuple[int, str, str]:
        body = urlencode(form) if form else None
        headers = {"Cookie": self.cookie} if self.cookie else {}
        if body:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        give_up = time.monotonic() + 30
        while time.monotonic() < give_up:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            t0 = time.perf_counter()
            try:
                conn.request(method, path, body=body, headers=headers)
                if self.rng.random() < self.drop:         # the signal is lost: no answer reaches the phone
                    conn.close()
                    with self.stats.lock:
                        self.stats.dropped += 1
                        self.stats.retried += 1
                    time.sleep(0.05)
                    continue
                resp = conn.getresponse()
                text = resp.read().decode()
                cookie = resp.getheader("Set-Cookie")
                if cookie:
                    self.cookie = cookie.split(";", 1)[0]
                with self.stats.lock:
                    self.stats.latencies.append(time.perf_counter() - t0)
                if resp.status == 503:                    # the database is away: wait as Retry-After says
                    with self.stats.lock:
                        self.stats.unavailable += 1
                    time.sleep(0.5)
                    continue
                if resp.status >= 500:
                    with self.stats.lock:
                        self.stats.server_errors += 1
                return resp.status, resp.getheader("Location") or "", text
            except OSError:
                with self.stats.lock:
                    self.stats.retried += 1
                time.sleep(0.1)
            finally:
                conn.close()
        with self.stats.lock:
            self.stats.errors += 1
        return 0, "", ""


def complete(port: int, token: str, stats: Stats, rng: random.Random, drop: float, double: float,
             deadline: float) -> None:
    c = Client(port, stats, rng, drop)
    status, location, _ = c.request("GET", f"/s/{token}")
    if status != 303:
        return
    path = "/q/PAIN_VAS.PAIN_VAS"
    while time.monotonic() < deadline:
        status, _loc, page = c.request("GET", path)
        match = re.search(r'name="csrf_token" value="([^"]+)"', page)
        if status != 200 or not match:
            return
        token_field = match.group(1)
        if path == "/q/review":
            for _ in range(2 if rng.random() < double else 1):
                status, location, _ = c.request("POST", "/q/submit", {"csrf_token": token_field})
                if status == 303 and location.endswith("/q/done"):
                    with stats.lock:
                        stats.submitted.add(token)
            with stats.lock:
                stats.completed += 1
            return
        key = path.rsplit("/", 1)[-1]
        values = ANSWERS[key]
        status, location, _ = c.request("POST", path, {"csrf_token": token_field, **values})
        if status != 303:
            return
        with stats.lock:
            for item, value in values.items():
                stats.acknowledged[(token, item)] = value
        path = location


def seed(url: str, folder: Path, patients: int) -> list[str]:
    """A copy of ADUSE (study LOAD, 5-digit subject IDs) with ``patients`` patients whose week 1 is open now."""
    from proapp import create_app, db
    from proapp.migrate import upgrade
    from proapp.patients.enrolment import EnrolmentRequest, enroll_patient
    from proapp.questionnaire.answering import issue_link, open_occurrence_for
    from proapp.studies.catalog import DATA_DIR
    from proapp.studies.sync import sync_studies

    studies = folder / "studies"
    studies.mkdir(exist_ok=True)
    text = (Path(DATA_DIR) / "ADUSE.yaml").read_text().replace("code: ADUSE", "code: LOAD")
    text = text.replace('{code: TLS, name: "CHU de Toulouse (centre coordonnateur)"}',
                        '{code: TLS, name: "CHU de Toulouse", phone: "+33199000101"}')   # a fictional number
    (studies / "LOAD.yaml").write_text(text.replace('"ADU-{site}-[0-9]{3}"', '"LOAD-{site}-[0-9]{5}"'))
    os.environ["PROAPP_STUDIES_DIR"] = str(studies)
    upgrade(url)
    app = create_app({"ENV": "testing", "DATABASE_URL": url, "SECRET_KEY": "l" * 40})
    now = datetime.now(UTC)
    anchor = now.astimezone(ZoneInfo("Europe/Paris")).date() - timedelta(days=7)
    tokens = []
    with app.app_context():
        s = db.session()
        sync_studies(s, app.extensions["proapp.studies"], now)
        s.commit()
        for n in range(patients):
            p = enroll_patient(s, app.extensions["proapp.studies"], app.extensions["proapp.phones"],
                               EnrolmentRequest("LOAD", "TLS", f"LOAD-TLS-{n:05d}", "+33612345678", "fr", anchor,
                                                agreed_on=agreed(now)),
                               now=now)
            tokens.append(issue_link(s, open_occurrence_for(s, p, now, "W1"), now))
            if n % 500 == 499:
                s.commit()
        s.commit()
    app.extensions["proapp.engine"].dispose()
    return tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=300)
    parser.add_argument("--patients", type=int, default=8000)
    parser.add_argument("--drop", type=float, default=0.10)
    parser.add_argument("--double", type=float, default=0.05)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--outage-at", type=float, default=0,
                        help="cut the database (a TCP relay in front of PostgreSQL) this many seconds into the run")
    parser.add_argument("--outage-seconds", type=float, default=3)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="proapp-bench-load-"))
    os.environ["PROAPP_INSTANCE_PATH"] = str(folder)
    os.environ["PROAPP_PHONE_KEYS"] = Fernet.generate_key().decode()
    with bench_database(args.database_url, folder, "load.sqlite3") as url:
        run(args, folder, url)


def run(args, folder: Path, url: str) -> None:
    tokens = seed(url, folder, args.patients)
    print(f"{len(tokens)} patients with an open questionnaire")
    port = free_port()
    relay = None
    server_url = url
    if args.outage_at and url.startswith("postgresql"):
        from sqlalchemy.engine import make_url

        from tests.faults import Relay

        parsed = make_url(url)
        relay = Relay(parsed.host or "127.0.0.1", parsed.port or 5432)
        server_url = parsed.set(host="127.0.0.1", port=relay.port).render_as_string(hide_password=False)
    env = {**os.environ, "PROAPP_ENV": "testing", "PROAPP_DATABASE_URL": server_url, "PROAPP_SECRET_KEY": "l" * 40,
           "PROAPP_RATE_LINK_PER_MINUTE": "0", "PROAPP_RATE_API_PER_MINUTE": "0"}
    server = start_gunicorn("wsgi:app", port, env, workers=args.workers)
    try:
        stats = Stats()
        queue = list(tokens)
        qlock = threading.Lock()
        deadline = time.monotonic() + args.seconds
        started = time.monotonic()

        def user(n: int) -> None:
            rng = random.Random(n)
            while time.monotonic() < deadline:
                with qlock:
                    if not queue:
                        return
                    token = queue.pop()
                complete(port, token, stats, rng, args.drop, args.double, deadline)

        threads = [threading.Thread(target=user, args=(n,)) for n in range(args.users)]
        for t in threads:
            t.start()
        outage = None
        if relay is not None:
            time.sleep(args.outage_at)
            relay.cut()
            cut_at = time.monotonic()
            time.sleep(args.outage_seconds)
            relay.restore()
            outage = (cut_at - started, args.outage_seconds)
        for t in threads:
            t.join()
        elapsed = time.monotonic() - started
        lat = sorted(stats.latencies)
        p95 = lat[int(len(lat) * 0.95)] * 1000 if lat else 0
        print(f"{args.users} users, {elapsed:.0f} s: {len(lat):,} answered requests = {len(lat) / elapsed:.0f} req/s; "
              f"p50 {statistics.median(lat) * 1000:.0f} ms, p95 {p95:.0f} ms; {stats.dropped:,} dropped and retried; "
              f"{stats.completed:,} questionnaires completed; errors {stats.errors}")
        if outage:
            print(f"database cut at {outage[0]:.0f} s for {outage[1]:.0f} s: {stats.unavailable:,} answers of 503 "
                  f"(Retry-After), {stats.server_errors} server errors (5xx other than 503)")
        verify(url, stats, port)
    finally:
        server.terminate()
        server.wait(timeout=30)
        if relay is not None:
            relay.close()


def verify(url: str, stats: Stats, port: int) -> None:
    from sqlalchemy import create_engine, func, select

    from proapp.export.keys import create_key
    from proapp.models import AccessLink, Answer, Response
    from proapp.tokens import token_hash

    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.connect() as conn:
        rows = conn.execute(select(AccessLink.token_sha256, Answer.item_code, Answer.repeat_index, Answer.value)
                            .join(Response, Response.occurrence_id == AccessLink.occurrence_id)
                            .join(Answer, Answer.response_id == Response.id)).all()
        stored: dict[tuple[str, str], list[str]] = {}
        for sha, item, _rep, value in rows:
            stored.setdefault((sha, item), []).append(value)
        missing = [k for k, v in stats.acknowledged.items() if stored.get((token_hash(k[0]), k[1])) != [v]]
        completed = conn.execute(select(func.count()).select_from(Response)
                                 .where(Response.status == "completed")).scalar()
    print(f"acknowledged answers: {len(stats.acknowledged):,}; stored exactly once with their value: "
          f"{len(stats.acknowledged) - len(missing):,}; lost or doubled: {len(missing)}")
    print(f"submits acknowledged: {len(stats.submitted):,} questionnaires; completed responses in the database: "
          f"{completed:,} (2 per questionnaire)")
    from proapp import create_app, db

    app = create_app({"ENV": "testing", "DATABASE_URL": url, "SECRET_KEY": "l" * 40})
    with app.app_context():
        s = db.session()
        _row, key = create_key(s, study_code="LOAD", name="bench", now=datetime.now(UTC), created_by="bench")
        s.commit()
    app.extensions["proapp.engine"].dispose()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    cursor, exported = None, 0
    import json

    while True:
        query = "?limit=10000" + (f"&cursor={cursor}" if cursor else "")
        conn.request("GET", f"/api/v1/studies/LOAD/responses{query}", headers={"Authorization": f"Bearer {key}"})
        body = json.loads(conn.getresponse().read())
        exported += len(body["data"])
        cursor = body["next_cursor"]
        if not body["has_more"]:
            break
    print(f"exported through the API: {exported:,} of {completed:,} completed responses")
    assert not missing and exported == completed and completed == 2 * len(stats.submitted)
    assert stats.server_errors == 0


if __name__ == "__main__":
    main()
