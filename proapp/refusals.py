"""What a service raises when it refuses a request: one exception type whose ``message`` is translatable (a lazy
string shown to the user in their language), so each feature's refusal is a subclass, not a copy."""

from __future__ import annotations


class Refused(ValueError):
    """Nothing was done; ``message`` says why (a translatable string, shown as it is to the user)."""

    def __init__(self, message: object):
        super().__init__(str(message))
        self.message = message
