"""Where a question page's time goes: the GET and the answer POST of bench_rps, in one process through Flask's test
client, under cProfile, with the SQL statements each request sends counted. Prints the top functions by own time
and by cumulative time, the statements per request, and the share of time in Jinja, Babel, the flow and the ulcer
registry. Loopback only; bounded by ``--requests``.
Run: .venv/bin/python -m tests.benchmarks.profile_question [--requests 300] [--database-url postgresql://...]"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import re
import sys
import tempfile
from pathlib import Path

from sqlalchemy import event

from tests.benchmarks._setup import bench_database, prepared_instance

QUESTION = "/q/PAIN_VAS.PAIN_VAS"
# Where the time goes: the own time of the functions in each area's files (exclusive, so the areas add up).
AREAS = {"Jinja (templates)": ("jinja2/", "markupsafe/", "/templates/"), "Babel (translations, dates)": ("babel/",),
         "flow": ("proapp/questionnaire/flow.py",),
         "ulcer registry": ("proapp/questionnaire/ulcers.py", "proapp/instruments/ulcers.py"),
         "SQLAlchemy": ("sqlalchemy/",), "database driver": ("psycopg/", "sqlite3", "psycopg_pool"),
         "Flask, Werkzeug, Flask-WTF, itsdangerous": ("flask/", "werkzeug/", "flask_wtf/", "itsdangerous/")}


def area_times(stats: pstats.Stats) -> dict[str, float]:
    """Own seconds spent in each area's functions."""
    out = dict.fromkeys(AREAS, 0.0)
    for func, (_cc, _nc, tt, _ct, _callers) in stats.stats.items():       # type: ignore[attr-defined]
        for name, parts in AREAS.items():
            if any(p in func[0] or p in func[2] for p in parts):
                out[name] += tt
                break
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    with bench_database(args.database_url, Path(tempfile.mkdtemp(prefix="proapp-prof-"))) as url:
        run(args, url)
    sys.exit(0)


def run(args: argparse.Namespace, url: str) -> None:
    import os

    _folder, url, tokens = prepared_instance(url, patients=1)
    os.environ["PROAPP_DATABASE_URL"] = url
    from proapp import create_app

    app = create_app()
    statements: list[str] = []
    event.listen(app.extensions["proapp.engine"], "before_cursor_execute",
                 lambda conn, cur, sql, params, ctx, many: statements.append(sql))
    client = app.test_client()
    client.get(f"/s/{tokens[0]}")
    page = client.get(QUESTION).get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)

    def get() -> None:
        resp = client.get(QUESTION)
        assert resp.status_code == 200, resp.status_code

    def post(n: int) -> None:
        resp = client.post(QUESTION, data={"csrf_token": csrf, "PAIN_VAS": str(n % 2)})
        assert resp.status_code == 303, resp.status_code

    for n in range(20):                                   # warm-up: compiled templates and statements
        get()
        post(n)
    for name, call in (("GET", lambda n: get()), ("POST", post)):
        statements.clear()
        call(0)
        print(f"\n== {name} {QUESTION}: {len(statements)} statements per request")
        for sql in statements:
            print("   ", " ".join(sql.split())[:150])
        prof = cProfile.Profile()
        prof.enable()
        for n in range(args.requests):
            call(n + 1)
        prof.disable()
        stats = pstats.Stats(prof, stream=io.StringIO())
        total = stats.total_tt                                          # type: ignore[attr-defined]
        print(f"{args.requests} requests, {1000 * total / args.requests:.2f} ms each under the profiler")
        for area, seconds in area_times(stats).items():
            print(f"  {area:<28} {1000 * seconds / args.requests:6.2f} ms  {100 * seconds / total:4.0f} %")
        for key in ("tottime", "cumulative"):
            out = io.StringIO()
            pstats.Stats(prof, stream=out).sort_stats(key).print_stats(args.top)
            print(f"-- top {args.top} by {key}")
            print("\n".join(line for line in out.getvalue().splitlines()[7:] if line.strip()))


if __name__ == "__main__":
    main()
