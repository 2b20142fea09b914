"""Real-browser fixtures: the app served on 127.0.0.1 by a werkzeug thread; the browser itself (Debian's chromium
driven by Playwright, never a downloaded build) is the session fixture ``browser`` of tests/conftest.py."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from werkzeug.serving import make_server

from tests.alerts.conftest import smtp  # noqa: F401  (the SMTP server fixture, for the accounts' pages)
from tests.sms.conftest import fake_twilio  # noqa: F401

VIEWPORTS = {"360x640": {"width": 360, "height": 640}, "320x568": {"width": 320, "height": 568}}


@pytest.fixture
def live_server(app) -> Iterator[str]:
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=5)


def new_page(browser, viewport: str = "360x640", javascript: bool = True):
    context = browser.new_context(viewport=VIEWPORTS[viewport], java_script_enabled=javascript,
                                  has_touch=True, locale="fr-FR")
    return context.new_page()
