"""What the patients feature announces to the features above it (blinker signals, as Flask's own).

Patients are below messaging: a pause, an opt-out, a withdrawal or an erased number must stop the SMS waiting to
go, but this package never imports the SMS package. It sends ``sms_must_stop`` instead, inside the caller's
transaction; the SMS feature listens (proapp/sms/services.py) and cancels what waits, in the same transaction.
"""

from __future__ import annotations

from blinker import Namespace

signals = Namespace()

# sender: the patient id; keyword arguments: db (the Session), why (the cancel reason), now.
sms_must_stop = signals.signal("sms-must-stop")

# sender: the patient id; keyword arguments: db, moved (the ids of the occurrences whose window moved), now.
visits_moved = signals.signal("visits-moved")
