"""The SMS texts: one GSM-7 segment each, in the patient's language, with no health information.

A single GSM-7 segment holds 160 characters (the extension characters ^ { } [ ] ~ \\ | and € count twice).
One character outside GSM-7 (ê, â, î, ô, û, ç, œ, ’, « » ...) switches the whole SMS to UCS-2 and 70-character
segments, so the French texts avoid them; a test checks every text in both languages with the longest link.
"""

from __future__ import annotations

from datetime import date

from flask_babel import force_locale, gettext

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿"
    "abcdefghijklmnopqrstuvwxyzäöñüà")
GSM7_EXTENDED = frozenset("^{}\\[~]|€\f")
SEGMENT = 160
KINDS = ("first_invitation", "invitation", "reminder", "last_day", "information", "opener", "conversation_link",
         "timeout_link")
EN_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def gsm7_length(text: str) -> int | None:
    """Length in GSM-7 septets, or None when a character is not in GSM-7 (the SMS would be UCS-2)."""
    n = 0
    for ch in text:
        if ch in GSM7_BASIC:
            n += 1
        elif ch in GSM7_EXTENDED:
            n += 2
        else:
            return None
    return n


def short_date(day: date, language: str) -> str:
    """14/05 in French, 14 May in English: only GSM-7 characters."""
    return f"{day:%d/%m}" if language == "fr" else f"{day.day} {EN_MONTHS[day.month - 1]}"


def compose(kind: str, language: str, *, sender: str, link: str, last_day: date) -> str:
    """The text of an SMS. ``kind`` is first_invitation (the patient's first SMS: it names the information on
    their data and rights, one tap away on the page the link opens), invitation, reminder, last_day, or
    information (the study's information sheet changed: the link opens it, to read and acknowledge)."""
    values = {"sender": sender, "link": link, "date": short_date(last_day, language)}
    with force_locale(language):
        if kind == "first_invitation":
            return gettext("%(sender)s: first questionnaire, by %(date)s. Your data and rights: see %(link)s",
                           **values)
        if kind == "invitation":
            return gettext("%(sender)s: your follow-up questionnaire is ready, to answer by %(date)s: %(link)s",
                           **values)
        if kind == "reminder":
            return gettext("%(sender)s: reminder, your follow-up questionnaire is waiting for you until "
                           "%(date)s: %(link)s", **values)
        if kind == "information":
            return gettext("%(sender)s: the information on the study and your data has changed, please read it: "
                           "%(link)s", **values)
        if kind == "last_day":
            return gettext("%(sender)s: last day to answer your follow-up questionnaire: %(link)s", **values)
        # SMS conversations (proapp/remote/sms_replies.py): the invitation and reminders of a patient who answers
        # by SMS replies, and the link when a conversation goes back to the web page.
        if kind == "opener":
            return gettext("%(sender)s: questionnaire until %(date)s. Reply 1 to answer by SMS, or open %(link)s",
                           **values)
        if kind == "conversation_link":
            return gettext("%(sender)s: to answer on the web page instead, open %(link)s", **values)
        if kind == "timeout_link":
            return gettext("%(sender)s: no reply. Your answers are kept: go on by %(date)s at %(link)s", **values)
    raise ValueError(f"unknown SMS kind {kind!r}")


def conversation(kind: str, language: str, **values: object) -> str:
    """The texts of an SMS conversation that hold no link (nor any answer): the re-asks, the thank-you."""
    with force_locale(language):
        if kind == "not_understood_choice":
            return gettext("Sorry, I did not understand. Reply %(keys)s.", **values)
        if kind == "not_understood_number":
            return gettext("Sorry, I did not understand. Reply with a number from %(low)s to %(high)s.", **values)
        if kind == "not_understood_days":
            return gettext("Sorry, I did not understand. Reply with a number of days, from 0 to %(high)s.",
                           **values)
        if kind == "thanks":
            return gettext("%(sender)s: thank you, your answers have been sent to your study team.", **values)
        if kind == "not_by_sms":
            return gettext("%(sender)s: this questionnaire can only be answered on the web page, with the link we "
                           "sent you.", **values)
        if kind == "number_scale":
            return gettext("Reply with a number from %(low)s to %(high)s.", **values)
        if kind == "days_ago":
            return gettext("Reply with the number of days ago (0 = today).", **values)
    raise ValueError(f"unknown conversation text {kind!r}")


def longest_text(public_url: str, sender: str, token_length: int) -> tuple[str, int | None]:
    """The longest SMS this configuration can produce, and its GSM-7 length (None: not GSM-7)."""
    link = f"{public_url}/s/{'x' * token_length}"
    worst: tuple[str, int | None] = ("", 0)
    for language in ("fr", "en"):
        for kind in KINDS:
            text = compose(kind, language, sender=sender, link=link, last_day=date(2026, 12, 31))
            length = gsm7_length(text)
            if length is None:
                return text, None
            if length > (worst[1] or 0):
                worst = (text, length)
    return worst
