"""What the questionnaire announces to the features above it (blinker signals, as Flask's own).

When an occurrence ends, completed by the patient or closed with answers left in progress, the safety-signal rules
must be evaluated on its answers; this package never imports the alerts package. It sends ``occurrence_ended``
inside the caller's transaction, and the alerts feature (proapp/alerts/services.py) raises its alerts in it.
"""

from __future__ import annotations

from blinker import Namespace

signals = Namespace()

# sender: the occurrence id; keyword arguments: db (the Session), how ("completed", "window_closed" or "withdrawn"),
# now.
occurrence_ended = signals.signal("occurrence-ended")
