"""Requests per second under gunicorn (2 workers) for a question page GET and an answer POST, as a ratio to
a bare Flask hello-world measured in the same run (goals: 0.5 for GET, 0.25 for POST). Loopback only,
bounded in time. Run: .venv/bin/python -m tests.benchmarks.bench_rps [--seconds 10] [--clients 4] [--rounds 3]
[--database-url postgresql+psycopg://...]"""

from __future__ import annotations

import argparse
import http.client
import multiprocessing as mp
import os
import re
import sys
import time
from statistics import median
from urllib.parse import urlencode

from tests.benchmarks._setup import free_port, prepared_instance, start_gunicorn


def worker(port: int, method: str, path: str, headers: dict, bodies: list[str], seconds: float,
           out: mp.Queue) -> None:
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


def measure(port: int, method: str, path: str, headers: dict, bodies: list[list[str]], seconds: float,
            clients: int) -> float:
    """Requests per second with ``clients`` processes for ``seconds``; client k sends ``bodies[k]`` in turn."""
    q: mp.Queue = mp.Queue()
    procs = [mp.Process(target=worker, args=(port, method, path, headers, bodies[k] if bodies else [], seconds, q))
             for k in range(clients)]
    for p in procs:
        p.start()
    results = [q.get() for _ in procs]
    for p in procs:
        p.join()
    total, errors = sum(r[0] for r in results), sum(r[1] for r in results)
    if errors:
        raise RuntimeError(f"{errors} failed requests to {method} {path}")
    return total / seconds


def patient_session(port: int, token: str) -> tuple[str, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port)
    conn.request("GET", f"/s/{token}")
    resp = conn.getresponse()
    resp.read()
    cookie = resp.getheader("Set-Cookie").split(";", 1)[0]
    conn.request("GET", "/q/PAIN_VAS.PAIN_VAS", headers={"Cookie": cookie})
    resp = conn.getresponse()
    page = resp.read().decode()
    if resp.getheader("Set-Cookie"):          # the session now carries the CSRF secret
        cookie = resp.getheader("Set-Cookie").split(";", 1)[0]
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    body = urlencode({"csrf_token": csrf, "PAIN_VAS": "42"})
    conn.request("POST", "/q/PAIN_VAS.PAIN_VAS", body=body,
                 headers={"Cookie": cookie, "Content-Type": "application/x-www-form-urlencoded"})
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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    folder, url, token = prepared_instance(args.database_url)
    env = {**os.environ, "PROAPP_INSTANCE_PATH": str(folder), "PROAPP_DATABASE_URL": url}
    hello_port, app_port = free_port(), free_port()
    hello = start_gunicorn("tests.benchmarks.hello_app:app", hello_port, env, ready_path="/")
    proapp = start_gunicorn("wsgi:app", app_port, env)
    hello_rps, get_rps, post_rps = [], [], []
    try:
        cookie, csrf = patient_session(app_port, token)
        # Each client alternates two values of its own, so every POST changes the stored answer: the real
        # autosave (answer written, audit entry chained, navigation state saved, commit), not a no-op.
        bodies = [[urlencode({"csrf_token": csrf, "PAIN_VAS": str(v)}) for v in (2 * k, 2 * k + 1)]
                  for k in range(args.clients)]
        form = {"Cookie": cookie, "Content-Type": "application/x-www-form-urlencoded"}
        # Warm-up, not counted: every worker has started, compiled its statements and filled its caches.
        measure(hello_port, "GET", "/", {}, [], 1, args.clients)
        measure(app_port, "GET", "/q/PAIN_VAS.PAIN_VAS", {"Cookie": cookie}, [], 1, args.clients)
        measure(app_port, "POST", "/q/PAIN_VAS.PAIN_VAS", form, bodies, 1, args.clients)
        before = audit_count(url)
        for _ in range(args.rounds):       # interleaved rounds: a noisy moment does not favour one side
            hello_rps.append(measure(hello_port, "GET", "/", {}, [], args.seconds, args.clients))
            get_rps.append(measure(app_port, "GET", "/q/PAIN_VAS.PAIN_VAS", {"Cookie": cookie}, [], args.seconds,
                                   args.clients))
            post_rps.append(measure(app_port, "POST", "/q/PAIN_VAS.PAIN_VAS", form, bodies, args.seconds,
                                    args.clients))
        saves = audit_count(url) - before
    finally:
        for p in (hello, proapp):
            p.terminate()
            p.wait(timeout=10)
    db = "PostgreSQL" if url.startswith("postgresql") else "SQLite"
    posts = round(sum(post_rps) * args.seconds)
    print(f"database: {db}; gunicorn 2 sync workers; {args.clients} clients; {args.rounds} rounds of "
          f"{args.seconds:.0f} s each; medians")
    baseline = median(hello_rps)
    print(f"hello-world GET        {baseline:8.0f} req/s  (rounds: {', '.join(f'{r:.0f}' for r in hello_rps)})")
    for label, runs, goal in (("question page GET     ", get_rps, 0.5), ("answer POST (autosave)", post_rps, 0.25)):
        ratios = [r / h for r, h in zip(runs, hello_rps, strict=True)]
        print(f"{label} {median(runs):8.0f} req/s  ratio {median(ratios):.3f} (goal >= {goal}; rounds: "
              f"{', '.join(f'{r:.3f}' for r in ratios)})")
    print(f"{posts:,} answer POSTs, {saves:,} answer changes stored with their audit entries")
    sys.exit(0)


if __name__ == "__main__":
    main()
