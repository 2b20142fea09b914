"""Rendered question screens, kept per worker and served again when nothing on them differs.

A question page is a pure function of what the template reads: the instrument version and screen, the language,
the wording variant, the progress ("Question 3 of 10"), the answers already given on this screen, the screen
before it and the query string (back to review, expired notice). Everything else is static for the life of the
process (instrument files, study files and compiled translations are read once at start-up). So the page is
rendered once for each such key and kept (least recently used first out, bounded); the only per-request part,
the CSRF token, is put into the kept page on the way out. A page with errors is always rendered afresh.

This is the patient's hot path: it takes the template (about a third of a question GET) off most requests.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from flask import current_app, render_template, request

from proapp.questionnaire.flow import Screen
from proapp.signing import csrf_token

CSRF_SLOT = "csrf-slot-5d1c0b7e"       # what the kept page holds where the token goes
DEFAULT_SIZE = 2048                    # pages kept per worker (about 5 KB each)


class PageCache:
    """A bounded least-recently-used map from a page key to its rendered HTML (thread-safe)."""

    def __init__(self, size: int = DEFAULT_SIZE):
        self.size = size
        self._pages: OrderedDict[tuple, str] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def get(self, key: tuple, render: Callable[[], str]) -> str:
        with self._lock:
            page = self._pages.get(key)
            if page is not None:
                self._pages.move_to_end(key)
                self.hits += 1
                return page
            self.misses += 1
        page = render()
        with self._lock:
            self._pages[key] = page
            if len(self._pages) > self.size:
                self._pages.popitem(last=False)
        return page

    def __len__(self) -> int:
        return len(self._pages)


def cache() -> PageCache:
    """This app's cache (each app has its own instruments and studies, so its own pages)."""
    found = current_app.extensions.get("proapp.page_cache")
    if found is None:
        found = current_app.extensions["proapp.page_cache"] = PageCache()
    return found


def screen_key(screen: Screen, context: dict[str, Any], language: str) -> tuple:
    """Everything `questionnaire/screen.html` (and `base.html` around it) reads, for a page without errors."""
    given = tuple(context["answers"].get((item.code, screen.repeat)) for item in screen.items)
    more = context["more"].get(str(screen.repeat)) if screen.asks_more else None
    return (screen.instrument.code, screen.instrument.version, screen.key, language, context["variant"],
            context["number"], context["total"], context["previous"], given, more, request.path,
            request.query_string)


def screen_page(screen: Screen, context: dict[str, Any], language: str) -> str:
    """The question page for ``context`` (no errors): kept, or rendered now and kept, with this request's token."""
    assert not context["errors"] and not context["form_values"], "pages with errors or typed values are not kept"
    page = cache().get(screen_key(screen, context, language),
                       lambda: render_template("questionnaire/screen.html", **context, csrf_token=lambda: CSRF_SLOT))
    return page.replace(CSRF_SLOT, csrf_token())
