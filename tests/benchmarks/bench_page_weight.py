"""Bytes on the wire for a question page on a first visit (HTML + CSS + JS, gzip), against the goal of one
TCP initial window (14,600 bytes). Run: .venv/bin/python -m tests.benchmarks.bench_page_weight"""

from __future__ import annotations

import gzip

from tests.benchmarks._setup import prepared_instance

GOAL = 14_600


def wire_size(resp) -> tuple[int, int]:
    """(gzip body bytes, header bytes) as a gzip-enabled proxy would send the response."""
    body = gzip.compress(resp.get_data(), compresslevel=6)
    headers = sum(len(k) + len(v) + 4 for k, v in resp.headers.items()) + len("HTTP/1.1 200 OK\r\n\r\n")
    headers += len("Content-Encoding: gzip\r\n")
    return len(body), headers


def main() -> None:
    _folder, _url, [token] = prepared_instance()
    from proapp import create_app

    app = create_app()
    client = app.test_client()
    first = client.get(f"/s/{token}")
    assert first.status_code == 303
    page = client.get("/q/PAIN_VAS.PAIN_VAS")
    assert page.status_code == 200
    css = client.get("/static/app.css")
    js = client.get("/static/vas.js")
    rows = [("redirect /s/<token>", first), ("question page HTML", page), ("app.css", css), ("vas.js", js)]
    total = 0
    print(f"{'resource':<22}{'raw':>8}{'gzip':>8}{'headers':>9}")
    for name, resp in rows:
        body, headers = wire_size(resp)
        total += body + headers
        print(f"{name:<22}{len(resp.get_data()):>8}{body:>8}{headers:>9}")
    print(f"total on the wire: {total} bytes (goal <= {GOAL}: {'met' if total <= GOAL else 'NOT met'})")


if __name__ == "__main__":
    main()
