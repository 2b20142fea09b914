"""The pages every feature shares: home, health check, language switch, error pages and response headers."""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Flask,
    Response,
    current_app,
    make_response,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.globals import request_ctx
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_wtf.csrf import CSRFError
from sqlalchemy import text
from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError
from werkzeug.exceptions import BadRequest, HTTPException, ServiceUnavailable
from werkzeug.routing import IntegerConverter

from proapp import db
from proapp.config import SUPPORTED_LANGUAGES
from proapp.i18n import LANG_COOKIE_MAX_AGE, lang_cookie

bp = Blueprint("core", __name__)


@bp.get("/")
@db.read_only
def index() -> str:
    return render_template("index.html")


@bp.get("/healthz")
@db.read_only
def healthz() -> tuple[dict[str, str], int]:
    try:
        db.session().execute(text("SELECT 1"))
    except Exception:
        return {"status": "database unavailable"}, 503
    return {"status": "ok"}, 200


@bp.post("/language")
def switch_language() -> Response:
    """The FR | EN switch: remembered in the session (a signed-in user's pages follow it until they sign out; a
    sign-in starts a new session, so their account's language applies), and in a year-long cookie that only says
    the language, so that the sign-in page, before and after a session, speaks the one chosen on this browser."""
    lang = request.form.get("lang", "")
    resp = redirect(safe_next(request.form.get("next"), "/", url_for("core.index")), code=303)
    if lang in SUPPORTED_LANGUAGES:
        session["lang"] = lang
        resp.set_cookie(lang_cookie(), lang, max_age=LANG_COOKIE_MAX_AGE, path="/", httponly=True,
                        secure=current_app.config["SESSION_COOKIE_SECURE"], samesite="Lax")
    return resp


MAX_ID = 2**63 - 1          # the largest id a column holds (bigint): anything beyond is no row, not an error


def whole_number(raw: str | None, maximum: int = MAX_ID) -> int | None:
    """``raw`` as a whole number from 0 to ``maximum`` (ASCII digits only), or None for anything else: an id or a
    count from a form is never turned into a 500 (Python's ``int`` refuses 4,301 digits, the database ids beyond
    bigint)."""
    if not raw or not (raw.isascii() and raw.isdigit()) or len(raw) > len(str(maximum)):
        return None
    value = int(raw)
    return value if value <= maximum else None


class IdConverter(IntegerConverter):
    """``<int:...>`` in the app's routes: a number beyond bigint matches no route (404), it never reaches SQL."""

    def __init__(self, map: Any, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("max", MAX_ID)
        super().__init__(map, *args, **kwargs)


def int_arg(name: str, default: int) -> int:
    """A whole-number query parameter (a page number), or ``default`` for anything else."""
    raw = request.args.get(name, "")
    return int(raw) if raw.isascii() and raw.isdigit() and len(raw) < 7 else default


def safe_next(target: str | None, prefix: str, default: str) -> str:
    """``target`` when it is a path of this site under ``prefix``, else ``default``: the only redirects that a
    ``next`` parameter may ask for. Refused: other hosts (``//host``, ``/\\host``, a scheme), control characters
    and white space (browsers drop tabs and new lines, so ``/\t/host`` would become ``//host``; CR/LF would split
    the header), and anything longer than a path needs to be."""
    if not target or len(target) > 2000 or not target.startswith(prefix) or not target.startswith("/"):
        return default
    if any(ch in target for ch in "\\ ") or "//" in target or not target.isprintable():
        return default

    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return default
    return target


ErrorRenderer = Callable[[HTTPException], Response]


def register_error_renderer(app: Flask, path_prefix: str, render: ErrorRenderer) -> None:
    """A feature whose clients are not browsers (the export API) answers its errors its own way under its
    path; every other path gets the error page."""
    app.extensions.setdefault("proapp.error_renderers", []).append((path_prefix, render))


def register_csrf_handler(app: Flask, blueprint: str, handler: Callable[[], Any]) -> None:
    """A blueprint's answer to a stale or missing CSRF token (the patient pages show the page again); None from
    the handler falls back to the error page."""
    app.extensions.setdefault("proapp.csrf_handlers", {})[blueprint] = handler


def _renderer_for(path: str) -> ErrorRenderer | None:
    for prefix, render in current_app.extensions.get("proapp.error_renderers", []):
        if path.startswith(prefix):
            return render
    return None


def _error_page(exc: HTTPException):
    if request_ctx.url_adapter is None:
        # No URL can be built for this request (a Host this deployment does not serve): a bare answer that
        # echoes nothing of it.
        return Response(_("This request could not be understood."), status=exc.code or 400, mimetype="text/plain")
    render = _renderer_for(request.path)
    if render is not None:
        return render(exc)
    titles = {
        400: _("This request could not be understood."),
        403: _("You are not allowed to see this page."),
        404: _("This page does not exist."),
        405: _("This page does not accept that request."),
        410: _("This page is no longer available."),
        413: _("What was sent is too large."),
        429: _("Too many attempts. Please wait a moment and try again."),
        500: _("Something went wrong on our side. Nothing you entered was lost; please try again later."),
        503: _("The service is briefly unavailable. Please try again in a moment."),
    }
    code = exc.code or 500
    return render_template("errors/error.html", code=code,
                           message=titles.get(code, _("This request could not be completed."))), code


def too_many_requests(retry_after: int) -> Response:
    """The 429 page in the user's language, with Retry-After."""
    resp = make_response(render_template("errors/error.html", code=429,
                                         message=_("Too many attempts. Please wait a moment and try again.")), 429)
    resp.headers["Retry-After"] = str(retry_after)
    return resp


def _csrf_error(_exc: CSRFError):
    handler = current_app.extensions.get("proapp.csrf_handlers", {}).get(request.blueprint)
    redirected = handler() if handler is not None else None
    if redirected is not None:
        return redirected
    return render_template("errors/error.html", code=400,
                           message=_("This page had expired. Please go back, reload it and try again.")), 400


SECURITY_HEADERS = (
    ("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=()"),
    ("Cross-Origin-Opener-Policy", "same-origin"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "same-origin"),
    ("X-Frame-Options", "DENY"),
    ("Content-Security-Policy",
     "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
     "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"),
)
HSTS = ("Strict-Transport-Security", "max-age=31536000; includeSubDomains")


def _security_headers(resp: Response) -> Response:
    """Every response gets these unless its route set its own (one pass over the headers: every request runs
    this)."""
    present = {name.lower() for name, _value in resp.headers}
    wanted = (HSTS, *SECURITY_HEADERS) if current_app.config.get("PRODUCTION") else SECURITY_HEADERS
    for name, value in wanted:
        if name.lower() not in present:
            resp.headers.add(name, value)
    return resp


def _template_globals() -> dict[str, object]:
    return {"current_locale": lambda: str(get_locale() or "fr")}


def _database_unavailable(exc: Exception):
    """The database cannot be reached (restarting, failing over): 503 with Retry-After, never a 500. Nothing was
    stored by this request, so the client may simply try again."""
    first = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
    logging.getLogger("proapp").warning("database unavailable: %s", first)
    with suppress(Exception):            # the connection is gone: there may be nothing to roll back
        db.session().rollback()
    render = _renderer_for(request.path)
    if render is not None:
        resp = render(ServiceUnavailable("The database is briefly unavailable; try again."))
    else:
        resp = make_response(render_template(
            "errors/error.html", code=503,
            message=_("The service is briefly unavailable. Please try again in a moment.")), 503)
    resp.headers["Retry-After"] = "5"
    return resp


def _refuse_cross_site_forms() -> None:
    """A form posted from another site is refused whatever its token: browsers say where a request comes from in
    ``Sec-Fetch-Site`` even when the page sends no ``Referer`` (the patient pages' ``no-referrer`` policy).
    Requests without the header (older browsers, Twilio's callbacks, API clients) rely on the CSRF token and the
    SameSite cookie alone. The export API (Bearer keys, no cookies) is not concerned."""
    if request.method in ("GET", "HEAD", "OPTIONS") or request.path.startswith("/api/"):
        return
    if request.headers.get("Sec-Fetch-Site", "same-origin") not in ("same-origin", "none"):
        raise CSRFError("The form was sent from another site.")


def _refuse_nul_bytes() -> None:
    """No text with a NUL byte goes further (PostgreSQL refuses it in text columns and in queries): the request
    gets the usual 400 page (or problem document) and nothing is stored."""
    query = request.query_string
    if b"%00" in query or b"\x00" in query or "\x00" in request.path:
        raise BadRequest("NUL byte in the request")
    if request.method in ("GET", "HEAD") and not request.content_length:
        return                                    # no body: nothing more to look at
    try:
        values = request.form.values()
    except HTTPException:
        return                                    # body too large, etc.: Flask answers it as usual
    if any("\x00" in v for v in values):
        raise BadRequest("NUL byte in the request")


STATIC_MAX_AGE = 365 * 24 * 3600
_FINGERPRINTED = re.compile(r"^(?P<stem>[^/]+)\.[0-9a-f]{12}(?P<suffix>\.[a-z]+)$")


def fingerprint_static(app: Flask) -> None:
    """Static files under names that carry a digest of their content (``app.3f9c2a1b7d0e.css``), sent with a year's
    ``immutable`` caching: a phone fetches the style and the script once, never re-checks them on the next screen
    (a round trip each on a slow network), and a new release's files have new names. ``url_for('static', ...)``
    gives the fingerprinted name; a name with another digest (a page from before a release) gets the current file,
    revalidated as an unnamed file is."""
    folder = Path(app.static_folder or "")
    names: dict[str, str] = {}
    for path in sorted(p for p in folder.iterdir() if p.is_file()):
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
        names[path.name] = f"{path.stem}.{digest}{path.suffix}"
    real = {fingerprinted: name for name, fingerprinted in names.items()}

    def add_fingerprint(endpoint: str, values: dict[str, Any]) -> None:
        if endpoint == "static" and values.get("filename") in names:
            values["filename"] = names[values["filename"]]

    def serve(filename: str) -> Response:
        if filename in real:
            resp = app.send_static_file(real[filename])
            resp.cache_control.public = True
            resp.cache_control.max_age = STATIC_MAX_AGE
            resp.cache_control.immutable = True
            resp.cache_control.no_cache = None
            return resp
        older = _FINGERPRINTED.match(filename)
        return app.send_static_file(f"{older['stem']}{older['suffix']}" if older else filename)

    app.url_defaults(add_fingerprint)
    app.view_functions["static"] = serve


def init_app(app: Flask) -> None:
    app.url_map.converters["int"] = IdConverter        # before any route is added
    app.register_blueprint(bp)
    fingerprint_static(app)
    app.context_processor(_template_globals)
    app.register_error_handler(CSRFError, _csrf_error)
    app.register_error_handler(HTTPException, _error_page)

    for exc_type in (OperationalError, InterfaceError, DisconnectionError):
        app.register_error_handler(exc_type, _database_unavailable)
    app.after_request(_security_headers)
    app.before_request(_refuse_nul_bytes)
    app.before_request(_refuse_cross_site_forms)
