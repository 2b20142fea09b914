"""The words the dashboard shows for states, statuses, events and flags, in the user's language."""

from __future__ import annotations

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from proapp.i18n import number

STATES = {
    "upcoming": _l("Upcoming"), "open": _l("Open"), "invited": _l("Invited"), "delivered": _l("SMS delivered"),
    "opened": _l("Opened"), "in_progress": _l("In progress"), "completed": _l("Completed"), "missed": _l("Missed"),
    "cancelled": _l("Cancelled"),
}
SMS_STATUSES = {
    "pending": _l("Waiting"), "sending": _l("Sending"), "unknown": _l("Being checked"), "accepted": _l("Accepted"),
    "sent": _l("Sent"), "delivered": _l("Delivered"), "undelivered": _l("Not delivered"), "failed": _l("Failed"),
    "cancelled": _l("Not sent"),
}
CANCEL_REASONS = {
    "completed": _l("questionnaire completed"), "window_closed": _l("window closed"),
    "patient_not_active": _l("follow-up ended"), "opted_out": _l("patient stopped the SMS"),
    "paused": _l("SMS paused"), "number_unusable": _l("number cannot receive SMS"), "no_phone": _l("no phone number"),
    "superseded": _l("replaced by a later reminder"), "study_closed": _l("study closed"),
    "acknowledged": _l("information already read"), "rescheduled": _l("visit moved to a new date"),
}
PATIENT_STATUSES = {
    "active": _l("Active"), "paused": _l("Paused"), "withdrawn": _l("Withdrawn"), "completed": _l("Follow-up ended"),
}
FLAGS = {
    "open_alert": _l("Open alert"), "overdue": _l("Overdue"), "missed": _l("Missed a window"),
    "sms_problem": _l("SMS problem"),
    "sms_stopped": _l("SMS stopped"), "treated_missing": _l("Treated ulcer to note"),
    "ulcer_query": _l("Ulcer query open"),
}
EVENTS = {
    "sms_opt_out": _l("Patient stopped the SMS"), "sms_pause": _l("SMS paused"), "sms_resume": _l("SMS resumed"),
    "phone_unusable": _l("Number marked unusable"), "link_resent": _l("Link sent again"),
    "started_on_site": _l("Questionnaire started on site"), "withdrawn": _l("Withdrawn"),
    "phone_changed": _l("Phone number changed"), "language_changed": _l("Language changed"),
    "sms_hour_changed": _l("SMS hour changed"),
    "anchor_rescheduled": _l("Anchor date rescheduled"),
    "harvest_date_recorded": _l("Liposuction date recorded"),
    "answer_channel_changed": _l("Answer channel changed"), "voice_pin_set": _l("Voice call PIN set"),
    "voice_pin_changed": _l("Voice call PIN changed"),
}
# How a patient answers (``Patient.answer_channel``)
CHANNELS = {"web": _l("Web link by SMS"), "voice": _l("Voice call"), "sms": _l("SMS replies")}
# How an answer was given (``Answer.mode``; None: saved before modes were recorded, on the web page)
ANSWER_MODES = {
    "web": _l("on the web page"), "voice_dtmf": _l("by phone, keypad"), "voice_speech": _l("by phone, spoken"),
    "sms": _l("by SMS reply"),
}
CONVERSATION_CHANNELS = {"voice": _l("Voice call"), "sms": _l("SMS replies")}
CONVERSATION_STATUSES = {
    "open": _l("In progress"), "completed": _l("Completed"), "timed_out": _l("No reply: web link sent"),
    "to_web": _l("The patient chose the web page"), "stopped": _l("Stopped"),
}
ULCER_STATES = {
    "open": _l("Open"), "healed": _l("Healed"), "awaiting_confirmation": _l("Noted by the team, not yet confirmed"),
    "closed": _l("Closed by the team"),
}
ULCER_RESOLUTIONS = {
    "confirmed": _l("the team's note is right"), "relocated": _l("place corrected"),
    "closed": _l("ulcer closed"), "noted": _l("treated ulcer noted"),
}
LANGUAGES = {"fr": "Français", "en": "English"}
ROLES = {"admin": _l("Administrator"), "coordinator": _l("Coordinator"), "monitor": _l("Monitor")}
MEASURES = {   # by the derived value's code
    "total": _l("DLQI total (0-30)"), "haq_di": _l("HAQ-DI (0-3)"), "pain": _l("Pain VAS (0-100)"),
    "active_ulcer_count": _l("Open digital ulcers"), "new_ulcer_count": _l("New digital ulcers"),
    "worst": _l("Worst side effect (0-4)"),
}


def sms_kind(kind: str) -> str:
    if kind == "invitation":
        return _("Invitation")
    if kind.startswith("reminder_"):
        return _("Reminder %(n)s", n=kind.removeprefix("reminder_"))
    if kind.startswith("resend_"):
        return _("Link sent again (%(n)s)", n=kind.removeprefix("resend_"))
    if kind.startswith("info:"):
        return _("New information sheet (%(version)s)", version=kind.removeprefix("info:"))
    return kind


AUDIT_ACTIONS = {
    "patient.enrolled": _l("Patient enrolled"), "patient.contact_erased": _l("Contact details erased"),
    "patient.phone_unusable": _l("Number marked unusable"), "phones.rotated": _l("Phone numbers re-encrypted"),
    "answer.saved": _l("Answer saved"), "answer.corrected": _l("Answer corrected"),
    "response.completed": _l("Questionnaire sent"), "response.acknowledged": _l("Received by the EDC"),
    "occurrence.missed": _l("Window missed"), "sms.status": _l("SMS status"), "ulcer.noted": _l("Ulcer noted"),
    "ulcer.closed": _l("Ulcer closed"), "ulcer.query_resolved": _l("Ulcer query resolved"),
    "alert.raised": _l("Alert raised"), "alert.notified": _l("Alert sent to the team"),
    "alert.escalated": _l("Alert sent again"), "alert.acknowledged": _l("Alert acknowledged"),
    "api.request": _l("EDC request"), "api.stream_failed": _l("Export interrupted"),
    "audit.exported": _l("Audit copy downloaded"), "user.login": _l("Signed in"),
    "user.login_failed": _l("Sign-in refused"), "user.login_password_ok": _l("Password accepted, code asked"),
    "user.logout": _l("Signed out"), "user.locked": _l("Account locked"), "user.invited": _l("Account invited"),
    "user.invitation_accepted": _l("Invitation accepted"), "user.changed": _l("Account changed"),
    "user.enabled": _l("Account enabled"), "user.password_changed": _l("Password changed"),
    "user.sessions_ended": _l("Sessions ended"), "user.two_factor_enabled": _l("Two-factor sign-in set up"),
    "user.two_factor_reset": _l("Two-factor sign-in reset"), "user.recovery_code_used": _l("Recovery code used"),
    "user.password_change_refused": _l("Password change refused"),
    "user.password_reset": _l("Password reset by e-mail"), "user.created": _l("Account created"),
    "user.disabled": _l("Account disabled"), "answer.cleared": _l("Answer cleared"),
    "answer.dropped": _l("Answer dropped (question no longer asked)"),
    "patient.agreed": _l("Agreement recorded"),
    "patient.acknowledged_information": _l("Information sheet read by the patient"),
    "restore.declared": _l("Database restore declared"), "restore.reconciled": _l("Database restore reconciled"),
    "alert.notification_pending": _l("Alert message waiting to be sent"),
    "alert.notification_sending": _l("Alert message being sent"), "alert.notification_sent": _l("Alert message sent"),
    "alert.notification_failed": _l("Alert message failed"),
    "alert.notification_unknown": _l("Alert message: sending interrupted, being checked"),
}
# A derived value given as a code: the DLQI's band (Hongbo et al. 2005), an ulcer report's kind
SCORE_TEXTS = {
    "no_effect": _l("No effect at all on the patient's life (0-1)"), "small": _l("Small effect (2-5)"),
    "moderate": _l("Moderate effect (6-10)"), "very_large": _l("Very large effect (11-20)"),
    "extremely_large": _l("Extremely large effect (21-30)"),
    "new": _l("New"), "recurrence": _l("Open again (recurrence)"),
    "reported_again": _l("Already known (reported again)"),
}


def score_value(value) -> str:
    """A derived value as the team reads it: a number in the user's language, a code in words, a list joined."""
    if isinstance(value, list):
        return ", ".join(score_value(v) for v in value) or "–"
    if isinstance(value, str) and value in SCORE_TEXTS:
        return str(SCORE_TEXTS[value])
    return number(value)


# Who did it, by the prefix of the audit trail's and the history's ``actor``
SYSTEM_JOBS = {
    "schedule": _l("schedule"), "sms": _l("SMS"), "mail": _l("e-mail"), "alerts": _l("alerts"),
    "login": _l("sign-in"),
}


def audit_action(action: str) -> str:
    """An audit entry's action in words (a patient's event by its own label); the code where none is known."""
    if action in AUDIT_ACTIONS:
        return str(AUDIT_ACTIONS[action])
    kind = action.removeprefix("patient.")
    return str(EVENTS[kind]) if kind in EVENTS else action


def actor(code: str | None) -> str:
    """Who did something, in words: a staff member by their e-mail, "The patient", the EDC's key, an automatic job;
    the code where none is known (the page shows the code beside it where it matters)."""
    if not code:
        return "–"
    kind, _sep, rest = code.partition(":")
    if kind == "user" and rest:
        return rest
    if kind == "patient":
        return _("The patient")
    if kind == "api":
        return _("EDC key %(key)s", key=rest) if rest else _("EDC")
    if kind == "system":
        return _("Automatic (%(job)s)", job=SYSTEM_JOBS.get(rest, rest))
    if kind == "cli":
        return _("Command line (server)")
    if kind == "anonymous":
        return _("Someone not signed in (%(address)s)", address=rest) if rest else _("Someone not signed in")
    return code


def _plain(value) -> str:
    if value is None:
        return "–"
    if isinstance(value, list):
        return ", ".join(_plain(v) for v in value)
    if isinstance(value, dict):
        return "; ".join(f"{k}: {_plain(v)}" for k, v in sorted(value.items()))
    return str(value)


def audit_changes(old, new) -> list[tuple[str, str, str]]:
    """What an entry changed, field by field and side by side: (field, before, after), readable text."""
    old = old if isinstance(old, dict) else ({} if old is None else {"": old})
    new = new if isinstance(new, dict) else ({} if new is None else {"": new})
    return [(key, _plain(old.get(key)) if key in old else "", _plain(new.get(key)) if key in new else "")
            for key in sorted(set(old) | set(new))]
CORRECTION_SOURCES = {
    "patient_request": _l("The patient's request"),
    "transcription_error": _l("A transcription error (paper form entered on site)"),
    "other": _l("Another reason"),
}
REQUEST_METHODS = {
    "phone": _l("by telephone"), "visit": _l("at a visit"), "letter": _l("by letter"), "email": _l("by e-mail"),
}
