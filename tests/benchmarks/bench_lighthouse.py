"""Lighthouse 12 (npm; 13 needs a newer Node) on a question page in mobile mode, against gunicorn on 127.0.0.1,
driving Debian's chromium. Goals: performance at least 0.95, accessibility 1.00.

Run: .venv/bin/python -m tests.benchmarks.bench_lighthouse
Installs lighthouse@12 into .cache/lighthouse on first use (npm)."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
from pathlib import Path

from tests.benchmarks._setup import free_port, prepared_instance, start_gunicorn

ROOT = Path(__file__).resolve().parents[2]
LH_DIR = ROOT / ".cache" / "lighthouse"
LH = LH_DIR / "node_modules" / ".bin" / "lighthouse"
PAGES = {"question page (VAS)": "/q/PAIN_VAS.PAIN_VAS", "question page (choice)": "/q/DU_DIARY.DU_NEW",
         "welcome page": "/q"}


def main() -> None:
    if not LH.exists():
        subprocess.run(["npm", "install", "--silent", "--no-audit", "--no-fund", "--prefix", str(LH_DIR),
                        "lighthouse@12"], check=True)
    folder, url, [token] = prepared_instance(None)
    port = free_port()
    env = {**os.environ, "PROAPP_INSTANCE_PATH": str(folder), "PROAPP_DATABASE_URL": url}
    server = start_gunicorn("wsgi:app", port, env)
    problems: list[str] = []
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port)
        conn.request("GET", f"/s/{token}")
        resp = conn.getresponse()
        resp.read()
        cookie = resp.getheader("Set-Cookie").split(";", 1)[0]
        for name, path in PAGES.items():
            out = folder / "lh.json"
            command = [str(LH), f"http://127.0.0.1:{port}{path}", "--quiet", "--output=json",
                       f"--output-path={out}", "--only-categories=performance,accessibility,best-practices",
                       "--form-factor=mobile", "--chrome-flags=--headless=new --no-sandbox --disable-gpu",
                       f"--extra-headers={json.dumps({'Cookie': cookie})}"]
            for attempt in (1, 2):      # Lighthouse's own advice when it fails to record a trace (NO_NAVSTART)
                done = subprocess.run(command, env={**os.environ, "CHROME_PATH": "/usr/bin/chromium"}, timeout=240,
                                      capture_output=True, text=True)
                if done.returncode == 0:
                    break
                if attempt == 2:
                    raise SystemExit(f"lighthouse failed on {path}: {done.stderr[-500:]}")
            report = json.loads(out.read_text())
            scores = {k: v["score"] for k, v in report["categories"].items()}
            audits = report["audits"]
            print(f"{name}: performance {scores['performance']:.2f}, accessibility {scores['accessibility']:.2f}, "
                  f"best practices {scores['best-practices']:.2f}; FCP "
                  f"{audits['first-contentful-paint']['displayValue']}, LCP "
                  f"{audits['largest-contentful-paint']['displayValue']}, TBT "
                  f"{audits['total-blocking-time']['displayValue']}, "
                  f"CLS {audits['cumulative-layout-shift']['displayValue']}")
            failing = [a["id"] for a in audits.values() if a.get("scoreDisplayMode") == "binary" and a["score"] == 0
                       and a["id"] in {ref["id"] for ref in report["categories"]["accessibility"]["auditRefs"]}]
            if failing:
                print(f"  accessibility audits failing: {', '.join(failing)}")
            if scores["accessibility"] < 1.0:
                problems.append(f"{name}: accessibility {scores['accessibility']:.2f}")
    finally:
        server.terminate()
        server.wait(timeout=30)
    if problems:
        raise SystemExit("; ".join(problems))


if __name__ == "__main__":
    main()
