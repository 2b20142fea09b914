"""The coordinators' pages. Thin: each view checks access, calls a query or a change, renders.

Every view is declared with ``staff_route(rule, access)``: ``public`` (sign in), ``read`` (any signed-in user,
within their scope) or ``change`` (admins and coordinators; a monitor gets 403). ``ACCESS`` lists them, and the
role x route test walks the app's URL map against it, so a new route cannot be left out.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from proapp import csvfiles, db, runtime
from proapp.accounts import staff as accounts
from proapp.accounts.access import SESSION_KEY, Viewer, current_viewer, patient_or_404, staff_routes, viewer
from proapp.accounts.signatures import SignatureRefused, sign
from proapp.alerts.raising import open_alerts_of, open_counts
from proapp.dashboard import actions as visit_actions
from proapp.dashboard import charts, labels, queries
from proapp.export.data import acknowledged
from proapp.i18n import day, moment, number
from proapp.instruments import derived_values
from proapp.patients import actions as changes
from proapp.patients import channels
from proapp.patients.enrolment import (
    SENDING_HOURS,
    EnrolmentError,
    EnrolmentRequest,
    agreements_of,
    enroll_patient,
    validate_enrolment,
)
from proapp.patients.models import Occurrence
from proapp.patients.phones import mask
from proapp.questionnaire import ulcers as ulcer_registry
from proapp.questionnaire.corrections import (
    REQUEST_METHODS,
    CorrectionRefused,
    Source,
    correct_answer,
    effective_answers,
)
from proapp.questionnaire.routes import open_in_this_browser
from proapp.web import int_arg, whole_number

bp = Blueprint("staff", __name__, url_prefix="/staff")
staff_route = staff_routes(bp)
TIMEZONES = ("Europe/Paris", "America/Guadeloupe", "America/Martinique", "America/Cayenne", "Indian/Reunion",
             "Indian/Mayotte", "America/Miquelon", "Pacific/Noumea", "Pacific/Tahiti", "Pacific/Wallis")


# Overview, patients ----------------------------------------------------------------------------------------

def _lang() -> str:
    return str(get_locale() or "fr")


@staff_route("/", "read")
def overview() -> str:
    data = queries.overview(db.session(), viewer(), runtime.studies(), runtime.now(), _lang(),
                            current_app.config["BEHIND_THRESHOLD"])
    # Translated once, formatted per cell (a matrix has hundreds of cells).
    fmt = {"percent": "\u202f%" if _lang() == "fr" else "%"}     # French: a narrow no-break space before %

    return render_template("staff/overview.html", studies=data, threshold=current_app.config["BEHIND_THRESHOLD"],
                           fmt=fmt, open_alerts=open_counts(db.session(), viewer().patients()).by_study,
                           ulcer_counts=queries.ulcer_counts(db.session(), viewer(), _registry_studies()))


def _registry_studies() -> tuple[str, ...]:
    """The studies whose patients have an ulcer registry (ADUSE)."""
    registry = runtime.instruments()
    return tuple(code for code in runtime.studies().codes() if any(
        ulcer_registry.uses_registry(registry.get(c, use.version))
        for c, use in runtime.studies().get(code).instruments.items()))


@staff_route("/patients", "read")
def patients() -> str:
    v = viewer()
    args = request.args
    f = queries.PatientFilters(study=args.get("study") or None, site=args.get("site") or None,
                               status=args.get("status") or None,
                               flag=args.get("flag") if args.get("flag") in queries.FLAGS else None,
                               q=(args.get("q") or "").strip()[:40] or None, page=max(int_arg("page", 1), 1))
    s = db.session()
    rows, total = queries.patient_list(s, v, f, runtime.now(), _registry_studies())
    studies = queries.visible_studies(s, v)
    sites = queries.visible_sites(s, v, [st.id for st in studies])
    pages = max((total + queries.PER_PAGE - 1) // queries.PER_PAGE, 1)
    return render_template("staff/patients.html", rows=rows, total=total, page=f.page, pages=pages, f=f,
                           studies=studies, sites=sites, study_codes={st.id: st.code for st in studies})


# Enrolment -------------------------------------------------------------------------------------------------

def _enrol_choices(v: Viewer) -> list[tuple[str, str, str]]:
    """(value "STUDY/SITE", label, subject example) for every active site the viewer may enrol in."""
    s = db.session()
    studies = queries.visible_studies(s, v)
    by_id = {st.id: st for st in studies}
    out = []
    for site in queries.visible_sites(s, v, list(by_id)):
        if site.active:
            st = by_id[site.study_id]
            try:
                example = runtime.studies().get(st.code).subject_id_example(site.code)
            except KeyError:
                continue
            out.append((f"{st.code}/{site.code}", f"{st.code} · {site.code} · {site.name}", example))
    return out


@staff_route("/patients/new", "change", methods=["GET", "POST"])
def enrol() -> Any:
    v = viewer()
    choices = _enrol_choices(v)
    form = {"study_site": choices[0][0] if len(choices) == 1 else "", "subject_id": "", "phone": "",
            "language": "fr", "timezone": "", "anchor_date": "", "sms_hour": "10", "agreed_on": "",
            "harvest_date": "", "answer_channel": "web", "voice_pin": "", "sms_agreed": ""}
    errors: dict[str, str] = {}
    if request.method == "POST":
        form = {k: (request.form.get(k) or "").strip()[:100] for k in form}
        errors, req = _parse_enrolment(form, {c[0] for c in choices})
        if req is not None:
            s = db.session()
            try:
                if errors:                   # the service's checks too, so that every error shows at once
                    validate_enrolment(s, runtime.studies(), req, now=runtime.now(),
                                       phone_region=current_app.config["DEFAULT_PHONE_REGION"])
                else:
                    patient = enroll_patient(s, runtime.studies(), runtime.phone_vault(), req,
                                             now=runtime.now(), phone_region=current_app.config[
                                                 "DEFAULT_PHONE_REGION"], actor=v.actor)
            except EnrolmentError as exc:
                s.rollback()
                for field, message in exc.errors.items():
                    errors.setdefault(field if field in form else "study_site", str(message))
            if errors:
                s.rollback()
            else:
                s.commit()
                flash(_("%(subject)s is enrolled. Their schedule is below.", subject=patient.subject_id), "notice")
                return redirect(url_for("staff.patient", patient_id=patient.id), code=303)
    status = 422 if errors else 200
    codes = sorted({c[0].split("/")[0] for c in choices})
    sheets = {code: runtime.studies().get(code).information for code in codes}
    harvest_studies = [code for code in codes if runtime.studies().get(code).fat_harvest is not None]
    form["voice_pin"] = ""                   # never written back into the page
    return render_template("staff/enrol.html", form=form, errors=errors, choices=choices, timezones=TIMEZONES,
                           hours=SENDING_HOURS, sheets=sheets, harvest_studies=harvest_studies,
                           channel_plans=_channel_plans(codes)), status


def _channel_plans(codes: list[str]) -> dict[str, dict[str, channels.ChannelPlan]]:
    """For each study, the channels it offers and which visits go by each (the others by web link)."""
    out = {}
    for code in codes:
        study = runtime.studies().get(code)
        out[code] = {c: channels.plan(study, c) for c in channels.offered(study)}
    return out


def _parse_enrolment(form: dict[str, str], allowed: set[str]) -> tuple[dict[str, str], EnrolmentRequest | None]:
    errors: dict[str, str] = {}
    if form["study_site"] not in allowed:
        errors["study_site"] = _("Choose the study and site.")
    if not form["subject_id"]:
        errors["subject_id"] = _("Give the subject ID.")
    if not form["phone"]:
        errors["phone"] = _("Give a mobile phone number.")
    if form["language"] not in ("fr", "en"):
        errors["language"] = _("Language must be fr or en.")
    if form["timezone"] and form["timezone"] not in TIMEZONES:
        errors["timezone"] = _("Choose a time zone from the list.")
    anchor = None
    if not form["anchor_date"]:
        errors["anchor_date"] = _("Give the anchor date (day 0 of the schedule).")
    else:
        try:
            anchor = date.fromisoformat(form["anchor_date"])
        except ValueError:
            errors["anchor_date"] = _("Give the date as year-month-day, for example 2026-03-02.")
    agreed = None
    if not form["agreed_on"]:
        errors["agreed_on"] = _("Give the day the patient agreed to SMS and to answering online.")
    else:
        try:
            agreed = date.fromisoformat(form["agreed_on"])
        except ValueError:
            errors["agreed_on"] = _("Give the date as year-month-day, for example 2026-03-02.")
    harvest = None
    if form["harvest_date"]:                 # optional: the liposuction, when it is already done
        try:
            harvest = date.fromisoformat(form["harvest_date"])
        except ValueError:
            errors["harvest_date"] = _("Give the date as year-month-day, for example 2026-03-02.")
    hour = whole_number(form["sms_hour"], 23)
    hour = -1 if hour is None else hour
    if hour not in SENDING_HOURS:
        errors["sms_hour"] = _("The SMS hour must be between 8 and 20 (no SMS at night).")
    if "study_site" in errors:
        return errors, None
    form["answer_channel"] = form["answer_channel"] or "web"        # a form without the choice: the web link
    if form["answer_channel"] not in ("web", "voice", "sms"):
        errors["answer_channel"] = _("Choose how the patient answers: web link, voice call or SMS replies.")
        form["answer_channel"] = "web"
    study, site = form["study_site"].split("/", 1)
    return errors, EnrolmentRequest(study, site, form["subject_id"], form["phone"], form["language"], anchor,
                                    form["timezone"] if form["timezone"] in TIMEZONES else None, hour, agreed,
                                    harvest, answer_channel=form["answer_channel"],
                                    voice_pin=form["voice_pin"] or None, sms_answers_agreed=form["sms_agreed"] == "yes")


# The patient page and its actions --------------------------------------------------------------------------

ACTIONS = {
    "resend": _l("Send the link again"), "pause": _l("Pause SMS"), "resume": _l("Resume SMS"),
    "withdraw": _l("Withdraw"), "phone": _l("Change phone number"), "language": _l("Change language"),
    "sms-hour": _l("Change SMS hour"), "reschedule": _l("Reschedule the anchor date"),
    "harvest-date": _l("Record the liposuction date"),
    "channel": _l("Change how the patient answers"), "pin": _l("Change the voice call PIN"),
}


def _patient_or_404(patient_id: int):
    return patient_or_404(patient_id)


def _render_patient(patient, errors: dict[str, str] | None = None, values: dict[str, str] | None = None,
                    status: int = 200) -> tuple[str, int]:
    view = queries.patient_view(db.session(), patient, runtime.studies(), runtime.now(), _lang())
    phone = None
    if view.contact is not None and view.contact.phone_ciphertext:
        try:
            phone = mask(runtime.phone_vault().decrypt(view.contact.phone_ciphertext))
        except ValueError:               # written with a phone key no longer configured (docs/operations.md)
            phone = _("unreadable (phone key missing): ask the patient for their number")

    return render_template("staff/patient.html", v=view, phone=phone, charts=_charts(view), errors=errors or {},
                           agreements=agreements_of(db.session(), patient.id),
                           open_alerts=open_alerts_of(db.session(), patient.id), ulcers=_ulcers(patient),
                           ulcer_items={c: runtime.instruments().get("DU_BASELINE").item(c)
                                        for c in ("DU_HAND", "DU_FINGER", "DU_SITE")},
                           ulcer_today=runtime.now().astimezone(ZoneInfo(patient.timezone)).date().isoformat(),
                           harvest=runtime.studies().get(patient.study.code).fat_harvest, timedelta=timedelta,
                           values=values or {}, actions=ACTIONS, hours=SENDING_HOURS, now=runtime.now(),
                           channel_plans=_channel_plans([patient.study.code])[patient.study.code],
                           instrument_titles={code: runtime.instruments().get(code).title(_lang())
                                              for code in runtime.instruments().codes()}), status


def _ulcers(patient) -> ulcer_registry.UlcerList | None:
    """The patient's ulcer registry, when their study asks about ulcers (ADUSE)."""
    study = runtime.studies().get(patient.study.code)
    registry = runtime.instruments()
    if not any(ulcer_registry.uses_registry(registry.get(code, use.version))
               for code, use in study.instruments.items()):
        return None
    return ulcer_registry.ulcer_list(db.session().connection(), patient.id, registry, _lang(), runtime.now())


@staff_route("/patients/<int:patient_id>/ulcers", "change", methods=["POST"])
def note_ulcer(patient_id: int) -> Any:
    """Record an ulcer the team saw (a treated, injected one, at enrolment or on site); the patient confirms it in
    their next entry."""
    patient = _patient_or_404(patient_id)
    if _ulcers(patient) is None:
        abort(404)
    form = {k: (request.form.get(k) or "")[:20] for k in ("hand", "finger", "site", "noted_on", "treated")}
    s = db.session()
    try:
        try:
            noted_on = date.fromisoformat(form["noted_on"])
        except ValueError:
            raise ulcer_registry.NoteRefused(_l("Please enter a date.")) from None
        row = ulcer_registry.note_ulcer(s, runtime.instruments(), patient, hand=form["hand"], finger=form["finger"],
                                        site=form["site"], treated=form["treated"] == "Y", noted_on=noted_on,
                                        actor=viewer().actor, now=runtime.now())
    except ulcer_registry.NoteRefused as exc:
        s.rollback()
        return _render_patient(patient, errors={"ulcer": str(exc.message)}, values={"action": "ulcer", **form},
                               status=422)
    s.commit()
    flash(_("Ulcer %(n)s is recorded; the patient will be asked to confirm it.", n=row.number)
          if not row.marks_reported else _("Ulcer %(n)s is marked treated.", n=row.number), "notice")
    return redirect(url_for("staff.patient", patient_id=patient.id, _anchor="ulcers"), code=303)


@staff_route("/patients/<int:patient_id>/ulcers/decision", "change", methods=["POST"])
def decide_ulcer(patient_id: int) -> Any:
    """The team's decision on an ulcer: resolve the patient's query (the note is right, the place corrected, or the
    ulcer closed), or close an ulcer (followed no more); audited."""
    patient = _patient_or_404(patient_id)
    if _ulcers(patient) is None:
        abort(404)
    form = {k: (request.form.get(k) or "")[:20] for k in ("number", "action", "hand", "finger", "site", "closed_on")}
    reason = (request.form.get("reason") or "")[:500]
    number = int(form["number"]) if form["number"].isascii() and form["number"].isdigit() else 0
    is_query = any(q.number == number for q in (_ulcers(patient) or ulcer_registry.UlcerList([], date.min))
                   .open_queries)
    s = db.session()
    try:
        closed_on = None
        if form["action"] == "closed":
            try:
                closed_on = date.fromisoformat(form["closed_on"])
            except ValueError:
                raise ulcer_registry.NoteRefused(_l("Please enter a date.")) from None
        place = (form["hand"], form["finger"], form["site"]) if form["action"] == "relocated" else None
        row = ulcer_registry.decide_ulcer(s, runtime.instruments(), patient, number=number, action=form["action"],
                                          reason=reason, place=place, closed_on=closed_on, actor=viewer().actor,
                                          now=runtime.now())
    except ulcer_registry.NoteRefused as exc:
        s.rollback()
        return _render_patient(patient, errors={f"query-{number}" if is_query else "close": str(exc.message)},
                               values={"decision": form["action"], "number": form["number"], "reason": reason},
                               status=422)
    s.commit()
    flash(_("Ulcer %(n)s is closed.", n=row.number) if row.action == "closed" and not is_query
          else _("The query on ulcer %(n)s is resolved.", n=row.number), "notice")
    return redirect(url_for("staff.patient", patient_id=patient.id, _anchor="ulcers"), code=303)


def _charts(view: queries.PatientView) -> list[tuple[str, Any, list[queries.TrendPoint]]]:
    out = []
    points_by = queries.trends(view)
    for m in queries.MEASURES:
        points = points_by[m]
        if not any(m.instrument in e.occurrence.instruments for e in view.timeline):
            continue
        if not points and m.key == "active_ulcer_count":   # from the first diary 2.0 entry (1.0 had no registry)
            continue
        title = str(labels.MEASURES[m.key])
        svg = charts.line_chart(
            [(p.completed_at, p.value, f"{p.visit}: {number(p.value)} ({day(p.opens_on)}"
              f" – {day(p.closes_on)})") for p in points],
            low=m.low, high=m.high, title=title, date_format=day, number_format=number)
        out.append((title, svg, points))
    return out


@staff_route("/patients/<int:patient_id>", "read")
def patient(patient_id: int) -> tuple[str, int]:
    return _render_patient(_patient_or_404(patient_id))


def _open_occurrence(patient, form_value: str | None) -> Occurrence | None:
    occurrence_id = whole_number(form_value)
    if occurrence_id is None:
        return None
    return queries.occurrence_of(db.session(), patient.id, occurrence_id)


def _signature(kind: str):
    """The signed-in user's electronic signature from the form's password (and code), or SignatureRefused. Wrong
    ones count towards the account's lockout, which bounds guessing (no separate rate limit)."""
    cfg = current_app.config
    return sign(db.session(), viewer().user_id, kind, password=request.form.get("signature_password", "")[:1100],
                code=request.form.get("signature_code", "")[:40], vault=runtime.phone_vault(), now=runtime.now(),
                max_failures=cfg["LOGIN_MAX_FAILURES"], lock_for=timedelta(minutes=cfg["LOGIN_LOCK_MINUTES"]))


@staff_route("/patients/<int:patient_id>/actions/<action>", "change", methods=["POST"])
def patient_action(patient_id: int, action: str) -> Any:
    patient = _patient_or_404(patient_id)
    if action not in ACTIONS:
        abort(404)
    v, s, now = viewer(), db.session(), runtime.now()
    form = {k: (request.form.get(k) or "")[:600]
            for k in ("reason", "occurrence", "phone", "language", "sms_hour", "anchor_date", "harvest_date", "channel",
                      "pin", "sms_agreed")}
    common = {"actor": v.actor, "reason": form["reason"], "now": now}
    try:
        if action == "resend":
            occ = _open_occurrence(patient, form["occurrence"])
            if occ is None:
                raise changes.ChangeRefused(_l("Choose an open questionnaire."), "occurrence")
            visit_actions.resend_link(s, patient, occ, **common)
            done = _("A new link will be sent by SMS within a minute (or after the quiet hours). "
                     "The previous link works until the new SMS has gone.")
        elif action == "pause":
            changes.pause_sms(s, patient, **common)
            done = _("SMS are paused.")
        elif action == "resume":
            changes.resume_sms(s, patient, **common)
            done = _("SMS are resumed.")
        elif action == "withdraw":
            try:
                signature = _signature("withdrawal")
            except SignatureRefused as exc:
                s.commit()                  # the failed signature counts towards the lockout
                raise changes.ChangeRefused(exc.message, "signature") from None
            n = changes.withdraw(s, patient, signature=signature.record(), **common)
            done = _("The patient is withdrawn; %(n)s questionnaires not yet closed are cancelled.", n=n)
        elif action == "reschedule":
            try:
                new_anchor: date | None = date.fromisoformat(form["anchor_date"].strip())
            except ValueError:
                new_anchor = None
            try:
                signature = _signature("reschedule")
            except SignatureRefused as exc:
                s.commit()                  # the failed signature counts towards the lockout
                raise changes.ChangeRefused(exc.message, "signature") from None
            moved = changes.reschedule(s, patient, new_anchor, signature=signature.record(), **common)
            done = _("The anchor date is now %(day)s; %(n)s visits not yet completed are moved.",
                     day=day(moved.new_anchor), n=len(moved.moved))
        elif action == "harvest-date":
            try:
                harvest: date | None = date.fromisoformat(form["harvest_date"].strip())
            except ValueError:
                harvest = None
            changes.record_harvest_date(
                s, patient, harvest, follows_harvest=runtime.studies().get(patient.study.code).fat_harvest is not None,
                **common)
            done = _("The liposuction date is recorded: the diary asks about the place where the fat was taken in "
                     "the weeks after it.")
        elif action == "phone":
            changes.change_phone(s, runtime.phone_vault(), patient, form["phone"],
                                 region=current_app.config["DEFAULT_PHONE_REGION"], **common)
            done = _("The phone number is changed.")
        elif action == "channel":
            changes.set_answer_channel(s, runtime.studies().get(patient.study.code), patient, form["channel"],
                                       pin=form["pin"], sms_agreed=form["sms_agreed"] == "yes", **common)
            done = _("The patient now answers by: %(channel)s.", channel=labels.CHANNELS[patient.answer_channel])
        elif action == "pin":
            changes.change_voice_pin(s, patient, form["pin"], **common)
            done = _("The voice call PIN is changed; the previous one no longer works.")
        elif action == "language":
            changes.change_language(s, patient, form["language"], **common)
            done = _("The language is changed.")
        else:
            changes.change_sms_hour(s, patient, form["sms_hour"], **common)
            done = _("The SMS hour is changed.")
    except changes.ChangeRefused as exc:
        s.rollback()
        return _render_patient(patient, errors={action: str(exc.message)},
                               values={"action": action, **form, "pin": ""}, status=422)   # a PIN never goes back
    s.commit()
    flash(done, "notice")
    return redirect(url_for("staff.patient", patient_id=patient.id), code=303)


@staff_route("/patients/<int:patient_id>/on-site", "change", methods=["POST"])
def on_site(patient_id: int) -> Any:
    """Hand a site tablet to the patient: the staff member is signed out and the questionnaire opens,
    recorded as completed on site."""
    patient = _patient_or_404(patient_id)
    s = db.session()
    occ = _open_occurrence(patient, request.form.get("occurrence"))
    try:
        if occ is None:
            raise changes.ChangeRefused(_l("Choose an open questionnaire."), "occurrence")
        if request.form.get("confirm") != "yes":
            raise changes.ChangeRefused(_l("Tick the box to confirm that you hand the device to the patient: you "
                                           "will be signed out."), "confirm")
        ulcers = _ulcers(patient)
        if ulcers is not None and occ.id == patient.occurrences[0].id and not any(u.treated for u in ulcers.rows):
            # The team is with the patient: the moment to note the treated ulcer the questionnaire asks to confirm.
            raise changes.ChangeRefused(_l("Record the treated (injected) ulcer first (Finger ulcers): this "
                                           "questionnaire asks the patient to confirm it."), "occurrence")
        link = visit_actions.start_on_site(s, patient, occ, actor=viewer().actor, now=runtime.now())
    except changes.ChangeRefused as exc:
        s.rollback()
        return _render_patient(patient, errors={"on-site": str(exc.message)}, status=422)
    accounts.end_session(s, session[SESSION_KEY]["sid"], runtime.now(), "handed_to_patient")
    s.commit()
    open_in_this_browser(occ.id, link.id, on_site=True)
    return redirect(url_for("questionnaire.welcome"), code=303)


# A completed response and its corrections -----------------------------------------------------------------

def _response_or_404(patient, response_id: int):
    r = queries.response_of(db.session(), patient.id, response_id)
    if r is None:
        abort(404)
    return r


def _render_response(patient, r, errors: dict[str, str] | None = None, values: dict[str, str] | None = None,
                     status: int = 200) -> tuple[str, int]:
    s = db.session()
    inst = runtime.instruments().get(r.instrument_code, r.instrument_version)
    original = queries.original_answers(s, r.id)
    current, corrections = effective_answers(s, r)
    keys = sorted(set(original) | set(current), key=lambda k: (k[1], [i.code for i in inst.items].index(k[0])
                                                               if k[0] in {i.code for i in inst.items} else 999))
    rows = [(inst.item(code), rep, original.get((code, rep)), current.get((code, rep)),
             [c for c in corrections if (c.item_code, c.repeat_index) == (code, rep)])
            for code, rep in keys if code in {i.code for i in inst.items}]
    occ = s.get(Occurrence, r.occurrence_id)

    # The derived scores as completed, and as recomputed from the corrections when there are some.
    scores = [(d, derived_values(inst, r.scores).get(d.code),
               derived_values(inst, r.corrected_scores).get(d.code) if r.corrected_scores else None)
              for d in inst.derived]
    use = runtime.studies().get(patient.study.code).instruments.get(inst.code)
    # Each question as the patient read it: the study's variant, the wording of their situation.
    wording = (r.flow_state or {}).get("wording") or {}
    questions = {i.code: i.text_for(_lang(), (use.variant if use else None) or inst.default_variant,
                                    wording.get(i.code)) for i in inst.items}

    edc = acknowledged(s, [r.id]).get(r.id) if r.completed_at else None     # the revision the EDC holds
    # How each answer was given (the web page, a call's keypad or speech, an SMS reply), shown beside each one
    # when any was given otherwise than on the web page, with the remote wording the questions were read with.
    modes = queries.answer_modes(s, r.id)
    remote = any(m != "web" for m in modes.values())

    return render_template("staff/response.html", patient=patient, r=r, inst=inst, rows=rows, occ=occ, scores=scores,
                           errors=errors or {}, values=values or {}, lang=_lang(), questions=questions,
                           edc=edc, sources=runtime.studies().get(patient.study.code).corrections.sources,
                           modes=modes if remote else {}, mode_wording=(r.flow_state or {}).get("mode_wording"),
                           methods=REQUEST_METHODS), status


@staff_route("/patients/<int:patient_id>/responses/<int:response_id>", "read")
def response_page(patient_id: int, response_id: int) -> tuple[str, int]:
    patient = _patient_or_404(patient_id)
    return _render_response(patient, _response_or_404(patient, response_id))


@staff_route("/patients/<int:patient_id>/responses/<int:response_id>/correct", "change", methods=["POST"])
def correct(patient_id: int, response_id: int) -> Any:
    patient = _patient_or_404(patient_id)
    r = _response_or_404(patient, response_id)
    form = {k: (request.form.get(k) or "")[:600] for k in ("item", "repeat", "value", "reason", "source",
                                                           "requested_on", "request_method")}
    repeat = whole_number(form["repeat"], 999)
    repeat = -1 if repeat is None else repeat
    try:
        requested_on = date.fromisoformat(form["requested_on"]) if form["requested_on"] else None
    except ValueError:
        requested_on = date.min                 # refused below as outside completion..today
    source = Source(form["source"], requested_on, form["request_method"] or None)
    s = db.session()
    try:
        signature = _signature("correction")
        correct_answer(s, runtime.instruments(), r, item_code=form["item"], repeat=repeat, value=form["value"],
                       reason=form["reason"], actor=viewer().actor, patient_id=patient.id, now=runtime.now(),
                       signature=signature.record(), source=source,
                       allowed_sources=runtime.studies().get(patient.study.code).corrections.sources,
                       today=runtime.now().astimezone(ZoneInfo(patient.timezone)).date())
    except (CorrectionRefused, SignatureRefused) as exc:
        if isinstance(exc, SignatureRefused):
            s.commit()                      # the failed signature counts towards the lockout
        s.rollback()
        return _render_response(patient, r, errors={f"{form['item']}:{form['repeat']}": str(exc.message)},
                                values=form, status=422)
    s.commit()
    flash(_("The correction is recorded beside the original answer; the EDC will receive the corrected "
            "questionnaire."), "notice")
    return redirect(url_for("staff.response_page", patient_id=patient.id, response_id=r.id), code=303)


# Downloads -------------------------------------------------------------------------------------------------

@staff_route("/studies/<code>/completion.csv", "read")
def completion_csv(code: str) -> Response:
    v = viewer()
    s = db.session()
    study = queries.study_by_code(s, code)
    if study is None or not v.sees(study.id):
        abort(404)
    site_code = request.args.get("site") or None
    if site_code is not None and not queries.has_site(s, study.id, site_code):
        abort(404)
    study_id, study_code, now = study.id, study.code, runtime.now()
    make_session = current_app.extensions["proapp.sessionmaker"]
    delimiter = csvfiles.SEPARATORS.get(request.args.get("sep", ""), ",")

    def generate() -> Iterator[str]:
        # Its own session: the response is streamed after the request's session has been closed.
        with make_session() as stream_db:
            buf = io.StringIO()
            buf.write(csvfiles.BOM)
            writer = csvfiles.writer(buf, delimiter)
            writer.writerow(queries.CSV_COLUMNS)
            rows = queries.completion_rows(stream_db, v, study_id, study_code, site_code, now)
            for i, row in enumerate(rows, 1):
                writer.writerow(row)
                if i % 500 == 0:
                    yield buf.getvalue()
                    buf.seek(0)
                    buf.truncate()
            yield buf.getvalue()

    name = f"completion-{code}{'-' + site_code if site_code else ''}-{runtime.now().date().isoformat()}.csv"
    return Response(generate(), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


# Administration ---------------------------------------------------------------------------------------------

@staff_route("/deliveries", "admin")
def deliveries() -> str:
    """The log of pushes to the EDC endpoints: what went, when, what came back, what waits for a retry."""
    status = request.args.get("status") if request.args.get("status") in ("pending", "sent", "failed") else None
    pushing = [s.definition.code for s in runtime.studies().all() if s.definition.edc.push is not None]
    return render_template("staff/deliveries.html", rows=queries.deliveries(db.session(), status), status=status,
                           pushing=pushing)


# Template helpers ------------------------------------------------------------------------------------------

def local_datetime(value) -> str:
    """A UTC instant in the deployment's time zone (PROAPP_DEFAULT_TIMEZONE), the zone named, in the user's
    language."""
    return moment(value, current_app.config["DEFAULT_TIMEZONE"])


def study_title(code: str) -> str:
    """The study's title in the user's language (the study file's ``title_fr`` on French pages)."""
    return runtime.studies().get(code).title_for(_lang())


def init_app(app) -> None:
    app.register_blueprint(bp)
    app.add_template_global(study_title, "study_title")
    app.add_template_filter(local_datetime, "local_dt")
    app.add_template_global(labels, "labels")
    app.add_template_global(current_viewer, "current_viewer")
