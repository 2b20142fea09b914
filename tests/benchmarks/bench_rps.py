"""Requests per second under gunicorn (2 sync workers) for proapp's question page GET and answer POST, side by side
with the plain implementation of the same request (tests/benchmarks/plain_app.py: Flask, Flask-WTF, SQLAlchemy
Core) in interleaved rounds of one run, with the server CPU each request costs (the workers and their PostgreSQL
backends). Goals on PostgreSQL: GET >= 0.6x the plain GET, POST (answer, navigation state, audit entry) >= 0.45x the
plain POST; ``--smoke`` (the test suite) fails when the CPU ratio falls below half its goal. Loopback only, bounded.
Run: .venv/bin/python -m tests.benchmarks.bench_rps [--seconds 10] [--clients 4] [--rounds 3]
[--database-url postgresql://...] [--smoke]"""

from __future__ import annotations

import argparse
import http.client
import multiprocessing as mp
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median
from urllib.parse import urlencode

from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from tests.benchmarks._setup import bench_database, free_port, prepared_instance, start_gunicorn

Client = tuple[str, dict[str, str], list[str]]        # (path, headers, bodies sent in turn; none for a GET)


def worker(port: int, method: str, client: Client, seconds: float, out: mp.Queue) -> None:
    path, headers, bodies = client
    done = errors = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            body = bodies[done % len(bodies)] if bodies else None
            conn.request(method, path, body=body, headers=headers)
            resp = conn.getresponse()
            resp.read()
            if resp.status >= 400:
                errors += 1
            done += 1
        except OSError:
            errors += 1
        finally:
            conn.close()
    out.put((done, errors))


TICK = os.sysconf("SC_CLK_TCK")


def _cpu_of(pid: int) -> float:
    """CPU seconds (user and system) a process has used so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK


class Server:
    """One side under test: its gunicorn and how to read the CPU its workers and their PostgreSQL backends use
    (the backends are found by the connections' ``application_name``)."""

    def __init__(self, port: int, proc: subprocess.Popen, app_name: str, url: str):
        self.port, self.proc, self.app_name = port, proc, app_name
        self.engine = None
        if url.startswith("postgresql"):
            from sqlalchemy import create_engine

            self.engine = create_engine(url, poolclass=NullPool)

    def cpu(self) -> float:
        pids = [int(p) for p in Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split()]
        if self.engine is not None:
            from sqlalchemy import text

            with self.engine.connect() as conn:
                pids += conn.execute(text("SELECT pid FROM pg_stat_activity WHERE application_name = :name"),
                                     {"name": self.app_name}).scalars().all()
        return sum(_cpu_of(pid) for pid in pids)


def measure(server: Server, method: str, clients: list[Client], seconds: float) -> tuple[float, float]:
    """(requests per second, server CPU seconds per request) with one process per client for ``seconds``."""
    q: mp.Queue = mp.Queue()
    procs = [mp.Process(target=worker, args=(server.port, method, client, seconds, q)) for client in clients]
    cpu = server.cpu()
    for p in procs:
        p.start()
    results = [q.get() for _ in procs]
    for p in procs:
        p.join()
    cpu = server.cpu() - cpu
    total, errors = sum(r[0] for r in results), sum(r[1] for r in results)
    if errors:
        raise RuntimeError(f"{errors} failed requests ({method} on port {server.port})")
    return total / seconds, cpu / max(1, total)


def form_session(port: int, path: str) -> tuple[str, str]:
    """(session cookie, CSRF token) after a GET of ``path``, as a browser holds them."""
    conn = http.client.HTTPConnection("127.0.0.1", port)
    conn.request("GET", path)
    resp = conn.getresponse()
    page = resp.read().decode()
    cookie = resp.getheader("Set-Cookie").split(";", 1)[0]
    conn.close()
    return cookie, re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def patient_session(port: int, token: str) -> tuple[str, str]:
    """(session cookie, CSRF token) of a patient who opened the SMS link and saved the first answer."""
    conn = http.client.HTTPConnection("127.0.0.1", port)
    conn.request("GET", f"/s/{token}")
    resp = conn.getresponse()
    resp.read()
    cookie = resp.getheader("Set-Cookie").split(";", 1)[0]
    conn.request("GET", QUESTION, headers={"Cookie": cookie})
    resp = conn.getresponse()
    page = resp.read().decode()
    if resp.getheader("Set-Cookie"):          # the session now carries the CSRF secret
        cookie = resp.getheader("Set-Cookie").split(";", 1)[0]
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    body = urlencode({"csrf_token": csrf, "PAIN_VAS": "42"})
    conn.request("POST", QUESTION, body=body, headers={"Cookie": cookie, "Content-Type": FORM})
    resp = conn.getresponse()
    resp.read()
    if resp.status != 303 or resp.getheader("Location") != "/q/DU_DIARY.DU_NEW":
        raise RuntimeError(f"the answer POST is not saving: {resp.status} {resp.getheader('Location')}")
    return cookie, csrf


def audit_count(url: str) -> int:
    """How many answer changes the run stored (each one has its audit entry): proof the POSTs wrote."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.connect() as conn:
        count = conn.execute(text("SELECT count(*) FROM audit_event WHERE action = 'answer.saved'")).scalar_one()
    engine.dispose()
    return count


GOALS = {"GET": 0.6, "POST": 0.45}        # proapp's rate / the plain rate, on PostgreSQL (docs/benchmarks.md)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--database-url", default=None, help="a PostgreSQL database (a schema of its own is used)")
    parser.add_argument("--smoke", action="store_true",
                        help="short rounds (CI): fails when a ratio falls below half its goal")
    args = parser.parse_args()
    if args.smoke:
        args.seconds, args.rounds, args.clients = 0.5, 5, 2
    with bench_database(args.database_url, Path(tempfile.mkdtemp(prefix="proapp-rps-"))) as url:
        falls = run(args, url)
    if args.smoke and falls:
        print("\n".join(falls))
        sys.exit(1)
    sys.exit(0)


def named(url: str, app_name: str) -> str:
    """The URL with the connections named (PostgreSQL's ``application_name``), to find their backends."""
    if not url.startswith("postgresql"):
        return url
    return make_url(url).update_query_dict({"application_name": app_name}).render_as_string(hide_password=False)


def run(args: argparse.Namespace, database_url: str) -> list[str]:
    """Measure; return the ratios that fell below half their goals (the smoke run's gate)."""
    folder, url, tokens = prepared_instance(database_url, patients=args.clients)
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE IF NOT EXISTS plain_answer (id INTEGER PRIMARY KEY, value VARCHAR(10))"))
    engine.dispose()
    env = {**os.environ, "PROAPP_INSTANCE_PATH": str(folder), "PROAPP_DATABASE_URL": named(url, "bench_proapp"),
           "PLAIN_DATABASE_URL": named(url, "bench_plain")}
    plain_port, app_port = free_port(), free_port()
    servers = {"plain": Server(plain_port, start_gunicorn("tests.benchmarks.plain_app:app", plain_port, env,
                                                          ready_path="/q/x"), "bench_plain", url),
               "proapp": Server(app_port, start_gunicorn("wsgi:app", app_port, env), "bench_proapp", url)}
    rates: dict[str, list[float]] = {"plain GET": [], "proapp GET": [], "plain POST": [], "proapp POST": []}
    costs: dict[str, list[float]] = {name: [] for name in rates}        # CPU seconds per request, each round
    cpu: dict[str, float] = dict.fromkeys(rates, 0.0)                   # CPU seconds and requests, all rounds
    served: dict[str, float] = dict.fromkeys(rates, 0.0)
    try:
        # Each client is a patient of its own (proapp) or a row of its own (plain), as real patients are; each
        # alternates two values, so every POST changes the stored answer: the real autosave (answer written,
        # audit entry chained, navigation state saved, commit), not a no-op.
        def values(k: int, csrf: str, **extra: str) -> list[str]:
            return [urlencode({"csrf_token": csrf, "PAIN_VAS": str(v), **extra}) for v in (2 * k, 2 * k + 1)]

        clients: dict[str, list[Client]] = {name: [] for name in rates}
        for k, token in enumerate(tokens):
            cookie, csrf = patient_session(app_port, token)
            clients["proapp GET"].append((QUESTION, {"Cookie": cookie}, []))
            clients["proapp POST"].append((QUESTION, {"Cookie": cookie, "Content-Type": FORM}, values(k, csrf)))
            plain_path = f"{QUESTION}?row={k + 1}"
            plain_cookie, plain_csrf = form_session(plain_port, plain_path)
            clients["plain GET"].append((plain_path, {"Cookie": plain_cookie}, []))
            clients["plain POST"].append((plain_path, {"Cookie": plain_cookie, "Content-Type": FORM},
                                          values(k, plain_csrf)))
        for name in rates:                                      # warm-up, not counted
            side, method = name.split()
            measure(servers[side], method, clients[name], min(1.0, args.seconds))
        before = audit_count(url)
        for _ in range(args.rounds):       # interleaved rounds: a noisy moment does not favour one side
            for name in rates:
                side, method = name.split()
                rate, cost = measure(servers[side], method, clients[name], args.seconds)
                rates[name].append(rate)
                costs[name].append(cost)
                cpu[name] += cost * rate * args.seconds
                served[name] += rate * args.seconds
        saves = audit_count(url) - before
    finally:
        for server in servers.values():
            server.proc.terminate()
            server.proc.wait(timeout=10)
    db = "PostgreSQL" if url.startswith("postgresql") else "SQLite"
    posts = round(sum(rates["proapp POST"]) * args.seconds)
    print(f"database: {db}; gunicorn 2 sync workers each; {args.clients} clients (a patient each); {args.rounds} "
          f"rounds of {args.seconds:g} s each; medians")
    falls = []
    for kind, goal in GOALS.items():
        plain_r, app_r = rates[f"plain {kind}"], rates[f"proapp {kind}"]
        ratios = [a / p for a, p in zip(app_r, plain_r, strict=True)]
        print(f"{kind:<5} plain {median(plain_r):7.0f} req/s  proapp {median(app_r):7.0f} req/s  "
              f"ratio {median(ratios):.2f} (goal >= {goal}; rounds: {', '.join(f'{r:.2f}' for r in ratios)})")
        by_cpu = [p / a for a, p in zip(costs[f"proapp {kind}"], costs[f"plain {kind}"], strict=True) if a > 0]
        plain_c, app_c = (cpu[f"{side} {kind}"] / max(1.0, served[f"{side} {kind}"])
                          for side in ("plain", "proapp"))
        cpu_ratio = plain_c / app_c if app_c else 0.0
        print(f"      server CPU per request (workers and their database backends), all rounds: plain "
              f"{1000 * plain_c:.2f} ms, proapp {1000 * app_c:.2f} ms: ratio {cpu_ratio:.2f} "
              f"(rounds: {', '.join(f'{r:.2f}' for r in by_cpu)})")
        # The gate is the CPU ratio over all rounds: on a saturated machine the rate ratio drifts towards 1 (both
        # sides wait alike; the fall of issue 29 read 0.45 by rate and 0.29 by CPU on a busy day), the CPU a request
        # costs does not; summed over the rounds, the clock's ticks (10 ms) do not matter.
        if cpu_ratio < goal / 2:
            falls.append(f"{kind}: CPU ratio {cpu_ratio:.2f} below half its goal ({goal / 2:.3g})")
    print(f"{posts:,} proapp answer POSTs, {saves:,} answer changes stored with their audit entries")
    # Each measurement starts a client's values afresh, so its first POST may repeat the value its last POST of the
    # measurement before stored (no change: nothing to store); every other POST must store a change.
    if saves < posts * 0.99 - args.clients * args.rounds:
        raise RuntimeError(f"proapp's POSTs did not all store an answer change ({saves} of about {posts})")
    return falls


QUESTION = "/q/PAIN_VAS.PAIN_VAS"
FORM = "application/x-www-form-urlencoded"


if __name__ == "__main__":
    main()
