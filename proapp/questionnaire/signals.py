"""What the questionnaire announces to the features above it (blinker signals, as Flask's own).

When a screen's answers are saved it sends ``answers_saved`` (this package never imports the alerts package), so
an urgent or same-day answer reaches the team the moment it is saved, even if the patient never submits. (When a
visit ends, proapp/patients/occurrences.py sends ``proapp.patients.signals.occurrence_ended``.)
"""

from __future__ import annotations

from blinker import Namespace

signals = Namespace()

# sender: the occurrence id; keyword arguments: db (the Session), visit_q (the VisitQuestionnaire, answers as
# saved), instrument (the code of the instrument whose screen was saved), items (the codes of the screen's items),
# now. Sent before the save commits.
answers_saved = signals.signal("answers-saved")
