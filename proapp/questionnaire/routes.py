"""Patient pages behind the SMS link. Thin: each route loads the occurrence, calls a service, renders."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

from flask import (
    Blueprint,
    Flask,
    Response,
    abort,
    current_app,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import get_locale
from flask_babel import gettext as _
from sqlalchemy import Connection, Row, select
from werkzeug.wrappers import Response as WResponse

from proapp import db, ratelimit, runtime
from proapp.config import SUPPORTED_LANGUAGES
from proapp.i18n import day, use_locale
from proapp.patients.enrolment import acknowledge_information, agreements_of
from proapp.patients.models import Occurrence, Patient, PatientContact
from proapp.patients.preferences import (
    channels_to_offer,
    opt_out,
    patient_switched_channel,
    patient_switched_language,
)
from proapp.questionnaire import answering as answering
from proapp.questionnaire import flow as flowmod
from proapp.questionnaire.models import AccessLink
from proapp.web import register_csrf_handler, safe_next, too_many_requests

bp = Blueprint("questionnaire", __name__)
SESSION_KEY = "pq"


@bp.after_request
def _patient_headers(resp: Response) -> Response:
    resp.headers["Cache-Control"] = "no-store"
    resp.headers["Referrer-Policy"] = "no-referrer"
    return resp


def _invalid(link_id: int | None = None) -> tuple[str, int]:
    """The page of a link that does not work; when a staff member sent a newer one, it says so (and when)."""
    closed = answering.closed_study_language(_reads(), link_id=link_id) if link_id else None
    if closed is not None:
        return _study_closed(closed)
    replaced = answering.replaced_at(_reads(), link_id) if link_id else None
    if replaced is not None:
        from zoneinfo import ZoneInfo

        tz, lang = db.session().connection().execute(
            select(Patient.timezone, Patient.language).join(Occurrence, Occurrence.patient_id == Patient.id)
            .join(AccessLink, AccessLink.occurrence_id == Occurrence.id).where(AccessLink.id == link_id)).one()
        use_locale(lang)                # the patient's language, whatever the browser's
        local = replaced.astimezone(ZoneInfo(tz or current_app.config["DEFAULT_TIMEZONE"]))
        return render_template("questionnaire/message.html", kind="replaced", when=local), 410
    return render_template("questionnaire/message.html", kind="invalid"), 404


def _study_closed(language: str) -> tuple[str, int]:
    """The page of a link of a closed study, in the patient's language."""
    use_locale(language)
    return render_template("questionnaire/message.html", kind="study_closed"), 410


@bp.get("/s/<token>")
def open_link(token: str) -> WResponse | tuple[str, int]:
    # Guessing is throttled per network (IPv4 /24, IPv6 /64) on the links that do not work; a working link is
    # limited per link, never by the address many patients of one mobile carrier share (CGNAT).
    net = ratelimit.network(request.remote_addr or "")
    wait = ratelimit.used_up("link", net) or ratelimit.check("link_token", token)    # stored hashed
    if wait:
        return too_many_requests(wait)
    s = db.session()
    closed = answering.closed_study_language(_reads(), token=token)
    if closed is not None:
        s.rollback()
        return _study_closed(closed)
    state, link = answering.resolve_link(s, token, runtime.now())
    if state is answering.LinkState.STUDY_CLOSED and link is not None:
        language = link.occurrence.patient.language
        s.rollback()
        return _study_closed(language)
    if state is answering.LinkState.INVALID or link is None:
        revoked = link.id if link is not None and link.revoked_at is not None else None
        s.rollback()
        ratelimit.check("link", net)
        return _invalid(revoked)
    s.commit()
    open_in_this_browser(link.occurrence_id, link.id)
    if state is answering.LinkState.INFORMATION:        # the SMS about a new information sheet
        return redirect(url_for("questionnaire.patient_information"), code=303)
    return redirect(url_for("questionnaire.welcome"), code=303)


def open_in_this_browser(occurrence_id: int, link_id: int, *, on_site: bool = False) -> None:
    """This browser answers this occurrence through this link from now on (the SMS link opened, or a site's tablet
    handed to the patient: ``on_site``); whatever the browser's session held before is forgotten."""
    session.clear()
    session[SESSION_KEY] = {"occ": occurrence_id, "link": link_id, **({"on_site": True} if on_site else {})}


def _writes() -> bool:
    return request.method not in ("GET", "HEAD")


def _reads() -> Connection:
    """The request's connection (its session's transaction) for the Core reads of the patient pages."""
    return db.session().connection()


def _current() -> tuple[answering.Visit, dict[str, answering.ResponseState], answering.Answers] | None:
    """The patient's visit, responses and answers behind this session, or None (no session, link revoked)."""
    data = session.get(SESSION_KEY)
    if not isinstance(data, dict):
        return None
    link_id, occ_id = data.get("link"), data.get("occ")
    if not isinstance(link_id, int) or not isinstance(occ_id, int):
        return None
    found = answering.visit_of_live_link(_reads(), link_id, occ_id, for_writing=_writes())
    if found is None:
        return None
    visit, responses, answers = found
    g.sms_language = visit.language
    chosen = data.get("lang")
    if chosen in SUPPORTED_LANGUAGES and chosen != visit.language:
        # FR | EN pressed on these pages: the pages (and the language the answers are given in) change at once;
        # the patient's SMS keep theirs until the patient asks for the change (`language`).
        visit = replace(visit, language=chosen)
    use_locale(visit.language)
    return visit, responses, answers


def _actor() -> str:
    data = session.get(SESSION_KEY) or {}
    return f"patient:link:{data.get('link')}" + (":on_site" if _on_site() else "")


def _on_site() -> bool:
    """Whether this session was opened by staff on a site tablet (the response is recorded on site)."""
    data = session.get(SESSION_KEY)
    return isinstance(data, dict) and data.get("on_site") is True


def _call_site(visit: answering.Visit, labels: list[dict[str, str]], urgent: bool) -> dict | None:
    """What the patient needs to call the site after an answer that meets an urgent or same-day rule."""
    if not labels:
        return None
    import phonenumbers

    site = answering.site_contact(_reads(), visit.site_id)
    phone = site.phone if site else None
    shown = phone
    if phone:
        try:
            shown = phonenumbers.format_number(phonenumbers.parse(phone), phonenumbers.PhoneNumberFormat.NATIONAL)
        except phonenumbers.NumberParseException:
            shown = phone
    return {"labels": labels, "site": site.name if site else "", "phone": phone, "phone_shown": shown,
            "urgent": urgent, "emergency": runtime.studies().get(visit.study_code).alerts}


@dataclass(frozen=True)
class SafetyAdvice:
    """What the patient is told to do at once, which the alerts feature (above this one) knows: the urgent and
    same-day rules the answers given so far meet (``met``), and those already raised for a visit (``raised``: what
    the patient reads, severity). The app factory registers the alerts' functions (`register_safety_advice`)."""

    met: Callable[..., list]
    raised: Callable[..., list[tuple[dict[str, str], str]]]


def register_safety_advice(app: Flask, advice: SafetyAdvice) -> None:
    app.extensions["proapp.safety_advice"] = advice


def _advice() -> SafetyAdvice:
    return current_app.extensions["proapp.safety_advice"]


def _raised_call(visit: answering.Visit) -> dict | None:
    raised = _advice().raised(_reads(), visit.occurrence_id, runtime.studies().get(visit.study_code).alerts.rules)
    return _call_site(visit, [label for label, _severity in raised],
                      any(severity == "urgent" for _label, severity in raised))


def _state_page(visit: answering.Visit) -> tuple[str, int] | None:
    """The kind pages for a completed or closed occurrence, or None when it is open."""
    if visit.completed:
        return render_template("questionnaire/message.html", kind="completed", call=_raised_call(visit)), 200
    if not visit.accepts_answers(runtime.now()):
        return render_template("questionnaire/message.html", kind="closed"), 410
    return None


class PageInstead(Exception):
    """Raised by `_session_or_page` to answer with another page (invalid link, completed, closed)."""

    def __init__(self, page: tuple[str, int]):
        super().__init__()
        self.page = page


@bp.errorhandler(PageInstead)
def _page_instead(exc: PageInstead) -> tuple[str, int]:
    return exc.page


def _session_or_page(require_open: bool = True) -> answering.VisitQuestionnaire:
    """The patient's occurrence and its answers; raises PageInstead when there is none, or when
    ``require_open`` and it is completed or closed."""
    found = _current()
    if found is None:
        data = session.get(SESSION_KEY)
        link_id = data.get("link") if isinstance(data, dict) else None
        raise PageInstead(_invalid(link_id if isinstance(link_id, int) else None))
    visit, responses, answers = found
    if require_open:
        page = _state_page(visit)
        if page:
            raise PageInstead(page)
    return answering.load(visit, responses, answers, runtime.instruments(), runtime.studies(),
                          db.session().connection())


@bp.get("/q")
@db.read_only
def welcome() -> WResponse | tuple[str, int] | str:
    visit_q = _session_or_page()
    nxt = flowmod.first_unanswered(visit_q.flow(), visit_q.answers, visit_q.states)
    started = bool(visit_q.responses)
    minutes = sum(i.estimated_minutes for i in visit_q.instruments)
    return render_template("questionnaire/welcome.html", questionnaire=visit_q, minutes=minutes, started=started,
                           next_key=nxt.key if nxt else None, new_information=_pending_information(visit_q.visit),
                           progress=visit_q.progress(nxt) if nxt else None,
                           next_title=nxt.title(str(get_locale() or "fr")) if nxt else None,
                           emergency=runtime.studies().get(visit_q.visit.study_code).alerts)


def _screen_context(visit_q: answering.VisitQuestionnaire, key: str):
    flow = visit_q.flow()
    for index, screen in enumerate(flow):
        if screen.key == key:
            return flow, index, screen
    return flow, None, None


@bp.route("/q/<key>", methods=["GET", "POST"])
@db.read_only
def screen(key: str) -> WResponse | tuple[str, int] | str:
    visit_q = _session_or_page()
    flow, index, scr = _screen_context(visit_q, key)
    if scr is None:
        if request.method == "POST":
            abort(404)          # nothing is stored: never a redirect that looks like a save
        # A screen hidden by an earlier answer, or a made-up key: go where the patient should be.
        nxt = flowmod.first_unanswered(flow, visit_q.answers, visit_q.states)
        return redirect(url_for("questionnaire.screen", key=nxt.key) if nxt else url_for("questionnaire.review"),
                        code=303)
    from_review = request.values.get("from") == "review"
    errors: dict = {}
    form_values = {}
    unsaved = False
    if request.method == "POST" and from_review and request.form.get("leave"):
        # "Back to my answers" from a screen opened from the review: nothing changed, back; a change, ask.
        if not visit_q.changes(scr, request.form):
            return redirect(url_for("questionnaire.review", open=scr.code), code=303)
        unsaved, form_values = True, request.form.to_dict()
    elif request.method == "POST":
        answers_before = {code: dict(values) for code, values in visit_q.answers.items()}
        try:
            errors = answering.save_screen(db.session(), visit_q, scr, request.form, language=visit_q.visit.language,
                                    now=runtime.now(), actor=_actor())
        except answering.AlreadyCompleted:
            db.session().rollback()
            return render_template("questionnaire/message.html", kind="completed"), 200
        except answering.Closed:
            db.session().rollback()
            return render_template("questionnaire/message.html", kind="closed"), 410
        if not errors:
            # Whether the answer needs the study team at once, read in the save's transaction: after its commit the
            # request reads nothing (on SQLite a read then would begin a writer's transaction to no purpose).
            tells_patient = _newly_tells_patient(visit_q, answers_before)
            db.session().commit()
            flow = visit_q.flow()
            nxt = flowmod.first_unanswered(flow, visit_q.answers, visit_q.states)
            if nxt is None:
                target_key = "review"
            else:
                # Move forward from this screen (or to the first gap if one was left behind).
                idx = next((i for i, s in enumerate(flow) if s.key == key), None)
                following = flow[idx + 1] if idx is not None and idx + 1 < len(flow) else None
                target_key = (following if following and not from_review else nxt).key
            if tells_patient:
                return redirect(url_for("questionnaire.call", next=target_key), code=303)
            if target_key == "review":
                # Back from a change: the questionnaire changed stays open on the review page.
                return redirect(url_for("questionnaire.review", open=scr.code if from_review else None), code=303)
            return redirect(url_for("questionnaire.screen", key=target_key), code=303)
        db.session().rollback()
        form_values = request.form.to_dict()
    answers = visit_q.answers.get(scr.code, {})
    state = visit_q.responses[scr.code].flow_state if scr.code in visit_q.responses else None
    progress = visit_q.progress(scr)
    context = {
        "screen": scr, "progress": progress, "errors": errors, "answers": answers, "unsaved": unsaved,
        "form_values": form_values, "more": flowmod.group_more(state, scr.group.code) if scr.group else {},
        "previous": flow[index - 1].key if index else None, "from_review": from_review,
        "variant": visit_q.variants.get(scr.code), "expired": request.args.get("expired") == "1",
        # The instrument's instructions (its recall period: "over the past week") in full on its first screen, a
        # click away on the others; the section's title (the HAQ's categories).
        "first_of_instrument": not index or flow[index - 1].code != scr.code,
        "section": next((scr.instrument.sections[i.section].label for i in scr.items
                         if i.section and i.section in scr.instrument.sections), None),
    }
    if errors:
        return render_template("questionnaire/screen.html", **context), 422
    return render_template("questionnaire/screen.html", **context), 200


def _telling_patient(visit_q: answering.VisitQuestionnaire) -> list:
    rules = runtime.studies().get(visit_q.visit.study_code).alerts.rules
    return _advice().met(_reads(), visit_q, rules, runtime.instruments()) if rules else []


def _newly_tells_patient(visit_q: answering.VisitQuestionnaire, answers_before: answering.Answers) -> bool:
    """Whether the answer just saved meets an urgent or same-day rule the answers before it did not."""
    now_met = {r.code for r in _telling_patient(visit_q)}
    if not now_met:
        return False
    saved, visit_q.answers = visit_q.answers, answers_before
    try:
        before = {r.code for r in _telling_patient(visit_q)}
    finally:
        visit_q.answers = saved
    return bool(now_met - before)


@bp.get("/q/call")
@db.read_only
def call() -> WResponse | tuple[str, int] | str:
    """Right after an answer that needs the study team: whom to call, and what to do out of hours."""
    visit_q = _session_or_page()
    met = _telling_patient(visit_q)
    if not met:
        return redirect(url_for("questionnaire.welcome"), code=303)
    nxt = request.args.get("next", "")
    keys = {s.key for s in visit_q.flow()}
    target = url_for("questionnaire.review") if nxt == "review" else \
        url_for("questionnaire.screen", key=nxt) if nxt in keys else url_for("questionnaire.welcome")
    info = _call_site(visit_q.visit, [{"en": r.patient.en, "fr": r.patient.fr} for r in met if r.patient],
                      any(r.severity == "urgent" for r in met))
    return render_template("questionnaire/call.html", call=info, next_url=target)


@bp.get("/q/review")
@db.read_only
def review() -> WResponse | tuple[str, int] | str:
    visit_q = _session_or_page()
    flow = visit_q.flow()
    nxt = flowmod.first_unanswered(flow, visit_q.answers, visit_q.states)
    if nxt is not None:
        return redirect(url_for("questionnaire.screen", key=nxt.key), code=303)
    return render_template("questionnaire/review.html", questionnaire=visit_q,
                           parts=review_parts(visit_q, flow, str(get_locale() or "fr")),
                           opened=request.args.get("open"),
                           expired=request.args.get("expired") == "1")


@bp.post("/q/submit")
def submit() -> WResponse | tuple[str, int] | str:
    visit_q = _session_or_page(require_open=False)
    if visit_q.visit.completed:
        return redirect(url_for("questionnaire.done"), code=303)
    try:
        answering.complete(db.session(), visit_q, language=visit_q.visit.language, now=runtime.now(),
                    on_site=_on_site(), actor=_actor())
    except answering.Closed:
        db.session().rollback()
        return render_template("questionnaire/message.html", kind="closed"), 410
    except ValueError:
        db.session().rollback()
        return redirect(url_for("questionnaire.review"), code=303)
    db.session().commit()
    return redirect(url_for("questionnaire.done"), code=303)


def _site(visit: answering.Visit) -> Row | None:
    return answering.site_contact(_reads(), visit.site_id)


@bp.get("/q/done")
@db.read_only
def done() -> tuple[str, int] | str:
    visit_q = _session_or_page(require_open=False)
    if not visit_q.visit.completed:
        page = _state_page(visit_q.visit)
        return page if page else redirect(url_for("questionnaire.welcome"), code=303)  # type: ignore[return-value]
    return render_template("questionnaire/message.html", kind="thanks", call=_raised_call(visit_q.visit),
                           **_channel_offer(visit_q.visit))


def _channel_offer(visit: answering.Visit) -> dict[str, object]:
    """What the patient may choose for next time (a voice call, SMS replies, or the web link again), as the study
    allows and their PIN and SMS permit."""
    s = db.session()
    patient = s.get_one(Patient, visit.patient_id)
    return {"offer": channels_to_offer(s, runtime.studies().get(visit.study_code), patient),
            "current_channel": patient.answer_channel, "sms_hour": patient.sms_hour}


@bp.route("/q/channel", methods=["GET", "POST"])
def answer_channel() -> tuple[str, int] | str:
    """The patient chooses how they answer next time: a voice call (once the team set their PIN with them), SMS
    replies (choosing them is their agreement that questions and answers travel by SMS, which the page says), or
    the web link. Recorded with who and when; the team sees it on the patient's page."""
    visit = _session_or_page(require_open=False).visit
    changed, status = None, 200
    if request.method == "POST":
        s = db.session()
        patient = s.get_one(Patient, visit.patient_id)
        if patient_switched_channel(s, runtime.studies().get(visit.study_code), patient,
                                    request.form.get("channel", "")[:10], actor=_actor(), now=runtime.now()):
            changed = patient.answer_channel
            s.commit()
        else:
            s.rollback()
            status = 422
    return render_template("questionnaire/channel.html", changed=changed, refused=status == 422,
                           can_continue=visit.is_open(runtime.now()) and not visit.completed,
                           **_channel_offer(visit)), status


@bp.get("/information/<study>")
def information(study: str) -> str:
    """The study's information sheet for patients, public (no link needed; nothing personal on it)."""
    try:
        study_def = runtime.studies().get(study)
    except KeyError:
        abort(404)
    return render_template("questionnaire/information.html", study=study_def, info=study_def.information,
                           pending=None, acknowledged=False)


@bp.route("/q/information", methods=["GET", "POST"])
def patient_information() -> WResponse | tuple[str, int] | str:
    """The information sheet from the patient's pages. When it changed since the patient agreed, they are asked
    to read it and their acknowledgement of the new version is recorded (POST)."""
    visit = _session_or_page(require_open=False).visit
    study_def = runtime.studies().get(visit.study_code)
    info = study_def.information
    acknowledged = False
    if request.method == "POST" and info is not None and request.form.get("version") == info.version:
        s = db.session()
        acknowledged = acknowledge_information(s, s.get_one(Patient, visit.patient_id), info.version,
                                               now=runtime.now(), actor=_actor()) is not None
        s.commit()
    return render_template("questionnaire/information.html", study=study_def, info=info, patient_session=True,
                           pending=_pending_information(visit), acknowledged=acknowledged)


def _pending_information(visit: answering.Visit) -> str | None:
    """The version of the information sheet the patient has not acknowledged yet (it changed after they agreed),
    or None."""
    info = runtime.studies().get(visit.study_code).information
    if info is None:
        return None
    versions = {a.information_version for a in agreements_of(db.session(), visit.patient_id)}
    return None if info.version in versions else info.version


@bp.post("/q/language")
def language() -> WResponse | tuple[str, int]:
    """FR | EN: the pages change at once, for this visit only; the next page asks whether the SMS should change
    too. ``sms=1`` (that question's button): the patient's language from now on, SMS included, recorded."""
    found = _current()
    if found is None:
        return _invalid()
    visit = found[0]
    lang = request.form.get("lang", "")
    if lang in SUPPORTED_LANGUAGES:
        data = dict(session[SESSION_KEY])
        data["lang"] = lang
        data.pop("ask_sms", None)
        if request.form.get("sms") == "1":
            s = db.session()
            if patient_switched_language(s, s.get_one(Patient, visit.patient_id), lang, actor=_actor(),
                                         now=runtime.now()):
                s.commit()
            data["sms_changed"] = lang
        elif lang != g.sms_language:
            data["ask_sms"] = lang
        session[SESSION_KEY] = data
    return redirect(safe_next(request.form.get("next"), "/q", url_for("questionnaire.welcome")), code=303)


@bp.context_processor
def _sms_language_question() -> dict[str, str | None]:
    """Once, on the page after FR | EN: whether the SMS should follow (``ask_sms``), or that they now do."""
    data = session.get(SESSION_KEY)
    if not isinstance(data, dict) or not ({"ask_sms", "sms_changed"} & set(data)):
        return {}
    data = dict(data)
    ask, changed = data.pop("ask_sms", None), data.pop("sms_changed", None)
    session[SESSION_KEY] = data
    return {"ask_sms": ask, "sms_changed": changed}


@bp.route("/q/sms", methods=["GET", "POST"])
@db.read_only
def sms_stop() -> tuple[str, int] | str:
    """The patient stops the SMS (invitations and reminders). Recorded with who and when; the questionnaire
    itself stays open with this link."""
    visit = _session_or_page(require_open=False).visit
    stopped_now = False
    if request.method == "POST":
        contact = db.session().get(PatientContact, visit.patient_id)
        if contact is not None:
            stopped_now = opt_out(db.session(), contact, runtime.now(), actor=_actor())
            db.session().commit()
    stopped = answering.sms_stopped_by_patient(_reads(), visit.patient_id)
    return render_template("questionnaire/sms.html", stopped=stopped, stopped_now=stopped_now,
                           can_continue=visit.is_open(runtime.now()), site=_site(visit))


def on_csrf_error() -> WResponse | None:
    """A stale form on a patient page re-shows the page (nothing stored) instead of an error."""
    if request.blueprint != "questionnaire":
        return None
    if request.endpoint == "questionnaire.language":
        return redirect(url_for("questionnaire.welcome"), code=303)
    if request.endpoint in ("questionnaire.sms_stop", "questionnaire.patient_information"):
        return redirect(url_for(request.endpoint), code=303)
    target = request.path if request.endpoint == "questionnaire.screen" else url_for("questionnaire.review")
    return redirect(f"{target}?expired=1", code=303)


def answer_label(item, value: str | None, lang: str) -> str:
    """How an answer reads on the review page."""
    if value is None:
        return _("Not ticked") if item.type == "check" else _("No answer")
    if item.type == "choice":
        for opt in item.option_list:
            if opt.value == value:
                return opt.label(lang)
    if item.type == "check":
        return _("Ticked")
    if item.type == "vas":
        return _("%(value)s out of 100", value=value)
    if item.type == "date":
        from datetime import date

        return day(date.fromisoformat(value), "long")
    return value


def review_more(visit_q: answering.VisitQuestionnaire, screen: flowmod.Screen) -> str | None:
    r = visit_q.responses.get(screen.code)
    return flowmod.group_more(r.flow_state if r else None, screen.group.code).get(str(screen.repeat))  # type: ignore[union-attr]


@dataclass
class ReviewPart:
    """One questionnaire on the review page: its title, how many of its questions have an answer (of how many were
    asked), and its lines by section: [(section title or None, [(question, answer, screen key)])]."""

    code: str
    title: str
    answered: int = 0
    asked: int = 0
    sections: list[tuple[str | None, list[tuple[str, str, str]]]] = field(default_factory=list)


def review_parts(visit_q: answering.VisitQuestionnaire, flow: list[flowmod.Screen], lang: str) -> list[ReviewPart]:
    """The review page's questionnaires (`ReviewPart`). A checklist is one line per stem with what was ticked, and
    none when nothing was (its boxes are on the screen of the question before it, whose "Change" link opens them):
    unticked boxes do not fill the page, nor count as questions. Every line keeps its "Change" link (the screen's
    key)."""
    parts = []
    for inst in visit_q.instruments:
        part = ReviewPart(inst.code, inst.title_in(visit_q.context(inst.code).situations)(lang))
        sections = part.sections
        answers = visit_q.answers.get(inst.code, {})
        variant = visit_q.variants.get(inst.code)
        for screen in (s for s in flow if s.code == inst.code):
            first = screen.items[0] if screen.items else None
            title = (inst.sections[first.section].label(lang)
                     if first is not None and first.section in inst.sections else None)
            if not sections or sections[-1][0] != title:
                sections.append((title, []))
            lines = sections[-1][1]
            prefix = f"{screen.heading(lang)} – " if screen.group else ""
            if screen.asks_more:
                question = screen.group.more(lang) if screen.group.more else _("Have you noticed another new ulcer?")  # type: ignore[union-attr]
                lines.append((question, _("Yes") if review_more(visit_q, screen) == "Y" else _("No"), screen.key))
                part.asked += 1
                part.answered += 1
                continue
            checklists: dict[str, list[str]] = {}
            for item in screen.items:
                if not flowmod.applies(screen, item, answers):
                    continue            # a follow-up its condition did not ask (7B after a "Yes" to 7A)
                value = answers.get((item.code, screen.repeat))
                if item.type == "check":
                    stem = item.stem(lang) if item.stem else _("Ticked")
                    ticked = checklists.setdefault(stem, [])
                    if value == "Y":
                        ticked.append(screen.item_text(item, lang, variant))
                    continue
                part.asked += 1
                part.answered += value is not None
                lines.append((prefix + screen.item_text(item, lang, variant), answer_label(item, value, lang),
                              screen.key))
            lines += [(stem, "; ".join(ticked), screen.key) for stem, ticked in checklists.items() if ticked]
        parts.append(part)
    return parts


def init_app(app) -> None:
    app.register_blueprint(bp)
    register_csrf_handler(app, bp.name, on_csrf_error)
    app.add_template_global(answer_label)
