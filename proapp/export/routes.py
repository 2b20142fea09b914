"""The export API (``/api/v1``): Bearer API keys, RFC 9457 problem details, streamed and optionally gzipped
bodies. Each request made with a key is recorded in ``api_pull``."""

from __future__ import annotations

import io
import json
import logging
import zlib
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

from flask import Blueprint, Response, current_app, g, request, url_for
from werkzeug.exceptions import HTTPException

from proapp import csvfiles, db, ratelimit, runtime
from proapp.export import data, feed, keys, registry_data
from proapp.export.alerts import CSV_COLUMNS, alert_items, csv_row
from proapp.export.dictionary import data_dictionary
from proapp.export.formats import common, csv_format, fhir, json_format, odm, redcap, registry_export, ulcer_registry
from proapp.export.models import ApiKey
from proapp.export.openapi import spec
from proapp.extensions import csrf
from proapp.studies.models import Study
from proapp.web import register_error_renderer

log = logging.getLogger("proapp.export")
bp = Blueprint("api", __name__, url_prefix="/api/v1")
csrf.exempt(bp)
MAX_LIMIT = 10_000
DEFAULT_LIMIT = 100
MEDIA = {"json": "application/json", "csv": "text/csv", "odm": "application/xml", "fhir": "application/fhir+json",
         "redcap": "application/json"}
ODM_MEDIA = "application/vnd.cdisc.odm+xml"
REDCAP_PARTS = ("dictionary", "arms", "events", "mapping", "repeating")
PAGE_FORMATS = {"json": json_format, "csv": csv_format, "odm": odm, "fhir": fhir, "redcap": redcap}
ACCEPT = {"application/json": "json", "text/csv": "csv", "application/xml": "odm",
          "application/vnd.cdisc.odm+xml": "odm", "application/fhir+json": "fhir"}


class Problem(Exception):
    def __init__(self, status: int, title: str, detail: str, kind: str, retry_after: int | None = None):
        super().__init__(detail)
        self.status, self.title, self.detail, self.kind = status, title, detail, kind
        self.retry_after = retry_after


def problem_response(status: int, title: str, detail: str, kind: str) -> Response:
    body = {"type": f"{current_app.config['PUBLIC_URL']}/api/v1/problems/{kind}", "title": title,
            "status": status, "detail": detail, "instance": request.path}
    resp = Response(json.dumps(body), status=status, mimetype="application/problem+json")
    if status == 401:
        resp.headers["WWW-Authenticate"] = 'Bearer realm="proapp export API"'
    resp.headers["Cache-Control"] = "no-store"
    return resp


@bp.errorhandler(Problem)
def _problem(exc: Problem) -> Response:
    if exc.status != 429:           # refusals are counted by the rate limiter: a flood cannot grow the database
        _record(exc.status, None)
    resp = problem_response(exc.status, exc.title, exc.detail, exc.kind)
    if exc.retry_after:
        resp.headers["Retry-After"] = str(exc.retry_after)
    return resp


def http_problem(exc: HTTPException) -> Response:
    """Any other error under /api/v1 (unknown path, wrong method, body too large) as a problem document."""
    code = exc.code or 500
    kinds = {404: "not-found", 405: "method-not-allowed", 413: "too-large", 400: "bad-request", 503: "unavailable"}
    resp = problem_response(code, exc.name, exc.description or exc.name, kinds.get(code, "error"))
    allow = dict(exc.get_headers()).get("Allow")
    if allow:
        resp.headers["Allow"] = allow           # a 405 says which methods the resource takes (RFC 9110)
    return resp


def _record(status: int, items: int | None) -> None:
    """Record the request made with a key (not the ones without a valid key: nobody to record)."""
    key: ApiKey | None = g.get("api_key")
    if key is None:
        return
    s = db.session()
    s.rollback()
    keys.record_pull(s, key, endpoint=request.endpoint or "", params={k: v[:200] for k, v in request.args.items()},
                     status=status, items=items, now=runtime.now())
    s.commit()


def _key_for(study_code: str | None) -> tuple[ApiKey, Study]:
    """The request's key and its study; a 404 when the path names another study (``study_code`` None: any)."""
    s = db.session()
    key = keys.authenticate(s, request.headers.get("Authorization"))
    if key is None:
        raise Problem(401, "Unauthorized", "Send a live API key as 'Authorization: Bearer pk_...'.", "unauthorized")
    g.api_key = key
    study = s.get(Study, key.study_id)
    s.commit()                  # the rate limiter's own transaction must not wait for this one (SQLite)

    wait = ratelimit.check("api", key.prefix)
    if wait:
        raise Problem(429, "Too Many Requests", f"This key made too many requests; try again in {wait} s.",
                      "rate-limited", retry_after=wait)
    if study is None or (study_code is not None and study.code != study_code):
        raise Problem(404, "Not Found", f"No study {study_code} for this key.", "not-found")
    return key, study


def _format(default: str = "json") -> str:
    fmt = request.args.get("format")
    if fmt is None:
        for media, _q in request.accept_mimetypes:
            if media in ACCEPT:
                return ACCEPT[media]
        return default
    if fmt not in MEDIA:
        raise Problem(400, "Bad Request", f"format must be one of {', '.join(MEDIA)}.", "bad-parameter")
    return fmt


def _odm_media() -> str:
    """ODM as application/xml, or as application/vnd.cdisc.odm+xml to a client that asks for that."""
    return request.accept_mimetypes.best_match([MEDIA["odm"], ODM_MEDIA]) or MEDIA["odm"]


def _limit() -> int:
    raw = request.args.get("limit")
    if raw is None:
        return DEFAULT_LIMIT
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 6) or not 1 <= int(raw) <= MAX_LIMIT:
        raise Problem(400, "Bad Request", f"limit must be a whole number from 1 to {MAX_LIMIT}.", "bad-parameter")
    return int(raw)


def _check_params(allowed: set[str]) -> None:
    unknown = set(request.args) - allowed
    if unknown:
        raise Problem(400, "Bad Request", f"Unknown parameter(s): {', '.join(sorted(unknown))}.", "bad-parameter")


STREAM_BLOCK = 64 * 1024        # characters gathered before a piece of the body goes out


def _stream(chunks: Callable[[Any], Iterator[str]], media: str, headers: dict[str, str], items: int) -> Response:
    """Stream what ``chunks(session)`` yields, from a session of its own, gzipped when the client asks.

    The first block is made before the answer starts: an error there is a 500 problem document, recorded so in
    the pull log. An error after the 200 went cannot change it: the connection is cut (the client sees an
    incomplete body, never a complete-looking one) and the pull log's row is set to 500."""
    make_session = current_app.extensions["proapp.sessionmaker"]
    gzip = "gzip" in request.headers.get("Accept-Encoding", "")
    app = current_app._get_current_object()      # type: ignore[attr-defined]
    key: ApiKey | None = g.get("api_key")
    key_id, endpoint = (key.id if key else None), request.endpoint or ""

    def generate() -> Iterator[bytes]:
        with make_session() as stream_db:
            buf: list[str] = []
            size = 0
            packer = zlib.compressobj(6, zlib.DEFLATED, 31) if gzip else None
            for chunk in chunks(stream_db):
                buf.append(chunk)
                size += len(chunk)
                if size >= STREAM_BLOCK:
                    raw = "".join(buf).encode()
                    buf, size = [], 0
                    out = packer.compress(raw) if packer else raw
                    if out:
                        yield out
            raw = "".join(buf).encode()
            if packer:
                yield packer.compress(raw) + packer.flush()
            elif raw:
                yield raw

    body = generate()
    try:
        first = next(body, b"")
    except Exception:
        log.exception("export stream failed before its first block")
        _record(500, None)
        return problem_response(500, "Internal Server Error", "The export could not be made; nothing was sent. "
                                "Try again; if it fails again, tell the study's data manager.", "stream-failed")
    _record(200, items)

    def rest() -> Iterator[bytes]:
        if first:
            yield first
        try:
            yield from body
        except Exception as exc:
            log.exception("export stream failed after its first block")
            if key_id is not None:
                with app.app_context(), db.transaction() as s:
                    keys.record_failed_stream(s, key_id, endpoint=endpoint, now=runtime.now(),
                                              error=type(exc).__name__)
            raise                    # the server cuts the connection: the client knows the body is incomplete

    resp = Response(rest(), mimetype=media, headers=headers)
    resp.headers["Cache-Control"] = "no-store"
    resp.headers["Vary"] = "Accept, Accept-Encoding"
    if gzip:
        resp.headers["Content-Encoding"] = "gzip"
    return resp


# Endpoints --------------------------------------------------------------------------------------------------

@bp.get("/openapi.json")
def openapi() -> Response:
    return Response(json.dumps(spec(current_app.config["PUBLIC_URL"])), mimetype="application/json")


def _labels() -> str:
    labels = request.args.get("labels", "en")
    if labels not in ("en", "fr"):
        raise Problem(400, "Bad Request", "labels must be en or fr.", "bad-parameter")
    return labels


@bp.get("/studies/<study>/metadata")
def metadata(study: str) -> Response:
    key, st = _key_for(study)
    _check_params({"format", "labels", "part"})
    fmt = _format()
    study_def = runtime.studies().get(st.code)
    registry = runtime.instruments()
    part = request.args.get("part")
    if part is not None and fmt != "redcap":
        raise Problem(400, "Bad Request", "part goes with format=redcap.", "bad-parameter")
    if fmt == "redcap":
        return _redcap_metadata(study_def, registry, part or "dictionary", _labels())
    if fmt == "odm":
        sites = data.study_sites(db.session(), st.id, key.site_ids)
        body = odm.odm_metadata(study_def, registry, sites, runtime.now())
        _record(200, None)
        return Response(body, mimetype=_odm_media())
    if fmt != "json":
        raise Problem(400, "Bad Request", "metadata is available as json, odm or redcap.", "bad-parameter")

    body = data_dictionary(study_def, registry, db.session(), st.id, key.site_ids)
    _record(200, None)
    return Response(json.dumps(body, ensure_ascii=False), mimetype="application/json")


def _redcap_metadata(study_def, registry, part: str, labels: str) -> Response:
    """The study as a REDCap project: the data dictionary (CSV, as REDCap's "Upload Data Dictionary" takes it), or
    its arms, events, instrument-event mapping or repeating instruments (JSON, as REDCap's API imports them)."""
    if part not in REDCAP_PARTS:
        raise Problem(400, "Bad Request", f"part must be one of {', '.join(REDCAP_PARTS)}.", "bad-parameter")
    project = redcap.Project(study_def, registry)
    _record(200, None)
    if part == "dictionary":
        return Response(project.dictionary(labels), mimetype=MEDIA["csv"], headers={
            "Content-Disposition": f'attachment; filename="{study_def.code}-redcap-dictionary.csv"'})
    body = {"arms": project.arms, "events": lambda: project.events(labels), "mapping": project.mapping,
            "repeating": project.repeating}[part]()
    return Response(json.dumps(body, ensure_ascii=False), mimetype=MEDIA["json"])


@bp.get("/studies/<study>/questionnaires/<code>")
def questionnaire(study: str, code: str) -> Response:
    _key, st = _key_for(study)
    _check_params(set())
    use = runtime.studies().get(st.code).instruments.get(code)
    if use is None:
        raise Problem(404, "Not Found", f"{code} is not an instrument of {st.code}.", "not-found")
    inst = runtime.instruments().get(code, use.version)
    _record(200, None)
    return Response(json.dumps(fhir.fhir_questionnaire(inst, current_app.config["PUBLIC_URL"], use.variant),
                               ensure_ascii=False), mimetype=MEDIA["fhir"])


@bp.get("/fhir/Questionnaire/<name>")
def canonical_questionnaire(name: str) -> Response:
    """A Questionnaire at its canonical URL (``INSTRUMENT`` or ``INSTRUMENT-variant``), for a key of a study that
    uses the instrument: in the study's version, or ``?version=`` (the version a response names)."""
    _key, st = _key_for(None)
    _check_params({"version"})
    code, _, wording = name.partition("-")
    use = runtime.studies().get(st.code).instruments.get(code)
    if use is None:
        raise Problem(404, "Not Found", f"{code} is not an instrument of this key's study.", "not-found")
    try:
        inst = runtime.instruments().get(code, request.args.get("version") or use.version)
    except KeyError:
        raise Problem(404, "Not Found", f"{code} has no version {request.args.get('version')}.", "not-found") from None
    variant = next((v for v in inst.variants if v.replace("_", "-") == wording), None) if wording else None
    if wording and variant is None:
        raise Problem(404, "Not Found", f"{code} has no wording named {wording}.", "not-found")
    _record(200, None)
    return Response(json.dumps(fhir.fhir_questionnaire(inst, current_app.config["PUBLIC_URL"],
                                                       variant or inst.default_variant), ensure_ascii=False),
                    mimetype=MEDIA["fhir"])


@bp.get("/studies/<study>/responses")
def responses(study: str) -> Response:
    return _responses(study, None)


def _format_route(fmt: str) -> None:
    """``.../responses/<fmt>``: the same page in one format, an operation of its own in the OpenAPI document, so that
    a client generated from it (which reads an operation's first media type only) reads CSV, ODM, FHIR and
    REDCap bodies too."""
    def view(study: str) -> Response:
        return _responses(study, fmt)

    view.__name__ = f"responses_{fmt}"
    bp.get(f"/studies/<study>/responses/{fmt}")(view)


for _fmt in ("csv", "odm", "fhir", "redcap"):
    _format_route(_fmt)


def _responses(study: str, fixed: str | None) -> Response:
    key, st = _key_for(study)
    _check_params({"cursor", "limit", "labels"} | (set() if fixed else {"format"}))
    secret = current_app.config["SECRET_KEY"]
    scope = feed.cursor_scope(st.id, key.site_ids)
    try:
        after, position = feed.decode_cursor(request.args.get("cursor"), secret, scope)
    except feed.BadCursor as exc:
        why = str(exc)
        raise Problem(400, "Bad Request", f"{why[0].upper()}{why[1:]}: start again without a cursor or with the "
                      "last next_cursor this key received.", "bad-cursor") from None
    limit, fmt, labels = _limit(), fixed or _format(), _labels()
    s = db.session()
    feed.sequence_pending(s)
    upto, more = data.page_bounds(s, key, after, limit)
    upto = after if upto is None else upto
    if position is None:                       # a cursor given before positions were: count once
        position = data.page_size(s, key, 0, after)
    count = data.page_size(s, key, after, upto)
    next_cursor = feed.encode_cursor(upto, secret, scope, position + count)
    headers = {"X-Next-Cursor": next_cursor, "X-Has-More": "true" if more else "false", "X-Item-Count": str(count)}
    public_url = current_app.config["PUBLIC_URL"]
    # Built here: the stream runs after the request's context is gone.
    next_url = public_url + url_for("api.responses", study=st.code, cursor=next_cursor, limit=limit, format="fhir",
                                    _external=False)
    page = common.Page(key_id=key.id, key_prefix=key.prefix, study=runtime.studies().get(st.code),
                       registry=runtime.instruments(), after=after, upto=upto, position=position, count=count,
                       more=more, next_cursor=next_cursor, next_url=next_url, public_url=public_url, labels=labels,
                       now=runtime.now())
    written = PAGE_FORMATS[fmt]
    if written.ATTACHMENT:
        headers["Content-Disposition"] = f'attachment; filename="{st.code}-{written.ATTACHMENT}"'
    media = request.accept_mimetypes.best_match(written.MEDIA_TYPES) or written.MEDIA_TYPES[0]
    return _stream(partial(written.page_chunks, page), media, headers, count)


@bp.get("/studies/<study>/ulcers")
def ulcers(study: str) -> Response:
    """The ulcer registry of the key's study and sites (ADUSE), as it stands now: JSON, CSV, ODM (a Snapshot),
    FHIR (Conditions and Tasks) or REDCap records."""
    key, st = _key_for(study)
    _check_params({"format"})
    fmt = _format()
    study_def = runtime.studies().get(st.code)
    registry = runtime.instruments()
    if not ulcer_registry.study_has_registry(study_def, registry):
        raise Problem(404, "Not Found", f"{st.code} has no ulcer registry.", "not-found")
    s = db.session()
    now = runtime.now()
    subjects = registry_data.subjects(s, key, registry, now)
    staff = registry_data.staff_ids(s)
    count = sum(len(x.ulcers) for x in subjects)
    _record(200, count)
    media, render, download = registry_export.FORMATS[fmt]
    pull = registry_export.RegistryPull(study_def, subjects, staff, registry,
                                        f"proapp.{st.code}.{key.prefix}.ulcers.{now.strftime('%Y%m%dT%H%M%SZ')}", now)
    headers = {"Content-Disposition": f'attachment; filename="{st.code}-ulcers.csv"'} if download else {}
    return Response(render(pull), mimetype=_odm_media() if fmt == "odm" else media, headers=headers)


@bp.get("/studies/<study>/alerts")
def alerts(study: str) -> Response:
    """Every safety-signal alert of the key's study and sites, with its acknowledgement (JSON or CSV)."""
    key, st = _key_for(study)
    _check_params({"format", "state"})
    fmt = _format()
    if fmt not in ("json", "csv"):
        raise Problem(400, "Bad Request", "Alerts come as json or csv.", "bad-parameter")
    state = request.args.get("state") or None
    if state not in (None, "open", "acknowledged"):
        raise Problem(400, "Bad Request", "state must be open or acknowledged.", "bad-parameter")
    items = list(alert_items(db.session(), key, state))
    _record(200, len(items))
    if fmt == "json":
        return Response(json.dumps({"data": items}, ensure_ascii=False), mimetype=MEDIA["json"])
    out = io.StringIO()
    writer = csvfiles.writer(out)
    writer.writerow(CSV_COLUMNS)
    writer.writerows(csv_row(i) for i in items)
    return Response(out.getvalue(), mimetype=MEDIA["csv"],
                    headers={"Content-Disposition": f'attachment; filename="{st.code}-alerts.csv"'})


MAX_ID = 2**31 - 1


def _whole(value: Any, low: int) -> int | None:
    """A whole number from JSON from ``low`` to MAX_ID: 2 and 2.0 alike, as JSON Schema's ``integer`` has it (a
    client that writes every number as a float, as some JSON libraries do, is not refused)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and not value.is_integer():
        return None
    return int(value) if low <= value <= MAX_ID else None


def _ids(raw: Any) -> list[int] | None:
    """Response ids from JSON: whole numbers from 1 to MAX_ID."""
    if not isinstance(raw, list) or not 1 <= len(raw) <= MAX_LIMIT:
        return None
    out = [_whole(value, 1) for value in raw]
    return None if None in out else out  # type: ignore[return-value]


def _pairs(raw: Any) -> list[tuple[int, int]] | None:
    """(response id, revision) pairs from JSON objects {"id": ..., "revision": ...}."""
    if not isinstance(raw, list) or not 1 <= len(raw) <= MAX_LIMIT:
        return None
    out = []
    for entry in raw:
        if not isinstance(entry, dict) or set(entry) != {"id", "revision"}:
            return None
        rid, rev = _whole(entry["id"], 1), _whole(entry["revision"], 0)
        if rid is None or rev is None:
            return None
        out.append((rid, rev))
    return out


# The largest acknowledgement body: MAX_LIMIT pairs written at their widest, {"id": 2147483647, "revision":
# 2147483647}, with room to spare (the app's other bodies keep the smaller MAX_CONTENT_LENGTH).
ACK_MAX_BODY = 768 * 1024


@bp.post("/studies/<study>/acknowledgements")
def acknowledgements(study: str) -> tuple[dict[str, Any], int]:
    key, _st = _key_for(study)
    _check_params(set())
    request.max_content_length = ACK_MAX_BODY       # the documented 10,000 ids fit
    try:
        body = request.get_json(silent=True)
    except RecursionError:              # JSON nested thousands deep: not a body this endpoint takes
        body = None
    by_revision = isinstance(body, dict) and "responses" in body
    if by_revision:
        pairs = _pairs(body.get("responses"))
        if pairs is None:
            raise Problem(400, "Bad Request", f'Send JSON {{"responses": [{{"id": ..., "revision": ...}}, ...]}} '
                          f"with 1 to {MAX_LIMIT} items (id from 1 to {MAX_ID}, revision from 0).", "bad-body")
    else:
        ids = _ids(body.get("response_ids") if isinstance(body, dict) else None)
        if ids is None:
            raise Problem(400, "Bad Request", f'Send JSON {{"responses": [{{"id": ..., "revision": ...}}]}}, or '
                          f'{{"response_ids": [...]}} (revision 0) with 1 to {MAX_LIMIT} ids (whole numbers from 1 '
                          f"to {MAX_ID}).", "bad-body")
        pairs = [(i, 0) for i in ids]
    s = db.session()
    wanted = list(dict.fromkeys(pairs))
    known, already = data.acknowledge(s, key, wanted, runtime.now())
    s.commit()
    _record(200, len(known))
    if by_revision:
        def listed(items) -> list[dict[str, int]]:
            return [{"id": rid, "revision": rev} for rid, rev in sorted(items)]

        return {"acknowledged": listed(known - already), "already_acknowledged": listed(already),
                "unknown": listed(p for p in wanted if p not in known)}, 200
    return {"acknowledged": sorted(rid for rid, _ in known - already),
            "already_acknowledged": sorted(rid for rid, _ in already),
            "unknown": [rid for rid, _ in wanted if (rid, 0) not in known]}, 200


def init_app(app) -> None:
    app.register_blueprint(bp)
    register_error_renderer(app, "/api/", http_problem)
