"""Static files under fingerprinted names with a year's immutable caching: a phone on a slow network fetches the
style and the script once, not again on every screen; a new release's files have new names."""

from __future__ import annotations

import re
from pathlib import Path

STATIC = Path(__file__).resolve().parent.parent / "proapp" / "static"


def test_pages_name_static_files_by_their_content_and_they_are_kept_a_year(client):
    page = client.get("/").get_data(as_text=True)
    css = re.search(r'href="(/static/app\.([0-9a-f]{12})\.css)"', page)
    assert css, page[:500]
    content = (STATIC / "app.css").read_bytes()
    with client.get(css.group(1)) as resp:                  # static files are streamed from disk: closed here
        assert resp.status_code == 200 and resp.get_data() == content
        cache = resp.headers["Cache-Control"]
    assert "immutable" in cache and "max-age=31536000" in cache and "public" in cache and "no-cache" not in cache
    # The plain name, and a name of another release (a page from before it), get the current file, revalidated.
    for name in ("/static/app.css", "/static/app.0123456789ab.css"):
        with client.get(name) as other:
            assert other.status_code == 200 and other.get_data() == content
            assert "immutable" not in other.headers.get("Cache-Control", ""), name
    with client.get("/static/nothing.0123456789ab.css") as missing:
        assert missing.status_code == 404


def test_the_digest_follows_the_content(app):
    with app.test_request_context():
        from flask import url_for

        name = url_for("static", filename="vas.js")
    import hashlib

    digest = hashlib.sha256((STATIC / "vas.js").read_bytes()).hexdigest()[:12]
    assert name == f"/static/vas.{digest}.js"
