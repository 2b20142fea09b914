"""What the database keeps of a secret that is handed out once (a questionnaire link's token, a staff session, an
invitation, an API key, a recovery code): its SHA-256, never the secret itself. These secrets are long and random,
so a plain hash is enough to look one up and nothing can be guessed back from it."""

from __future__ import annotations

import hashlib


def token_hash(token: str) -> str:
    """The SHA-256 of ``token`` in hex, as stored."""
    return hashlib.sha256(token.encode()).hexdigest()
