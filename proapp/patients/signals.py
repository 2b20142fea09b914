"""What the patients feature announces to the features above it (blinker signals, as Flask's own).

Patients are below the questionnaire, messaging and the alerts: a pause, an opt-out, a withdrawal or an erased
number must stop the SMS waiting to go, a withdrawal must disable the patient's links, and a visit that ends must
have its answers checked by the alert rules, but this package never imports those packages. It sends a signal
instead, inside the caller's transaction, and the feature that listens (connected by the app factory) acts in
the same transaction: ``sms_must_stop`` and ``visits_moved`` (proapp/sms/delivery.py), ``links_must_stop``
(proapp/questionnaire/answering.py), ``occurrence_ended`` (proapp/alerts/raising.py). Only
proapp/patients/occurrences.py sends ``occurrence_ended``.
"""

from __future__ import annotations

from blinker import Namespace

signals = Namespace()

# sender: the patient id; keyword arguments: db (the Session), why (the cancel reason), now.
sms_must_stop = signals.signal("sms-must-stop")

# sender: the patient id; keyword arguments: db, now. The patient's links stop working (a withdrawal).
links_must_stop = signals.signal("links-must-stop")

# sender: the patient id; keyword arguments: db, moved (the ids of the occurrences whose window moved), now.
visits_moved = signals.signal("visits-moved")

# sender: the occurrence id; keyword arguments: db, how ("completed", "window_closed", "withdrawn" or
# "study_closed"), now. Sent when a visit is completed, or closed (missed, cancelled) with its window open.
occurrence_ended = signals.signal("occurrence-ended")
