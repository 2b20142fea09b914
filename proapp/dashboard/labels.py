"""The words the dashboard shows for states, statuses, events and flags, in the user's language."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l

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
    "superseded": _l("replaced by a later reminder"),
}
PATIENT_STATUSES = {
    "active": _l("Active"), "paused": _l("Paused"), "withdrawn": _l("Withdrawn"), "completed": _l("Follow-up ended"),
}
FLAGS = {
    "open_alert": _l("Open alert"), "overdue": _l("Overdue"), "missed": _l("Missed a window"),
    "sms_problem": _l("SMS problem"),
    "sms_stopped": _l("SMS stopped"),
}
EVENTS = {
    "sms_opt_out": _l("Patient stopped the SMS"), "sms_pause": _l("SMS paused"), "sms_resume": _l("SMS resumed"),
    "phone_unusable": _l("Number marked unusable"), "link_resent": _l("Link sent again"),
    "started_on_site": _l("Questionnaire started on site"), "withdrawn": _l("Withdrawn"),
    "phone_changed": _l("Phone number changed"), "language_changed": _l("Language changed"),
    "sms_hour_changed": _l("SMS hour changed"),
}
ULCER_STATES = {
    "open": _l("Open"), "healed": _l("Healed"), "awaiting_confirmation": _l("Noted by the team, not yet confirmed"),
    "not_confirmed": _l("The patient said it is not right"),
}
LANGUAGES = {"fr": "Français", "en": "English"}
ROLES = {"admin": _l("Administrator"), "coordinator": _l("Coordinator"), "monitor": _l("Monitor")}
MEASURES = {   # by the derived value's code
    "total": _l("DLQI total (0-30)"), "haq_di": _l("HAQ-DI (0-3)"), "pain": _l("Pain VAS (0-100)"),
    "active_ulcer_count": _l("Open digital ulcers"), "new_ulcer_count": _l("New digital ulcers"),
    "worst": _l("Worst side effect (0-4)"),
}


def sms_kind(kind: str) -> str:
    from flask_babel import gettext as _

    if kind == "invitation":
        return _("Invitation")
    if kind.startswith("reminder_"):
        return _("Reminder %(n)s", n=kind.removeprefix("reminder_"))
    if kind.startswith("resend_"):
        return _("Link sent again (%(n)s)", n=kind.removeprefix("resend_"))
    return kind
