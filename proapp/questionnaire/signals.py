"""What the questionnaire announces to the features above it (blinker signals, as Flask's own).

When an occurrence ends, completed by the patient or closed with answers left in progress, the safety-signal rules
must be evaluated on its answers; this package never imports the alerts package. It sends ``occurrence_ended``
inside the caller's transaction, and the alerts feature (proapp/alerts/services.py) raises its alerts in it.
When a screen's answers are saved it sends ``answers_saved``, so an urgent or same-day answer reaches the team
the moment it is saved, even if the patient never submits.
"""

from __future__ import annotations

from blinker import Namespace

signals = Namespace()

# sender: the occurrence id; keyword arguments: db (the Session), how ("completed", "window_closed", "withdrawn" or
# "study_closed"), now.
occurrence_ended = signals.signal("occurrence-ended")

# sender: the occurrence id; keyword arguments: db (the Session), visit_q (the VisitQuestionnaire, answers as
# saved), instrument (the code of the instrument whose screen was saved), items (the codes of the screen's items),
# now. Sent before the save commits.
answers_saved = signals.signal("answers-saved")
