"""Signed tokens for the session cookie and the forms' CSRF tokens, made faster without changing them.

Flask's session cookie and Flask-WTF's CSRF token are both itsdangerous ``URLSafeTimedSerializer`` tokens.
Making one costs about 55 µs, nearly all of it spent setting up a zlib compressor (hundreds of KB of state)
to try compressing a 40-character payload that never gets shorter, plus a new signer object per call. Every
patient page carries a fresh CSRF token, so this was a fifth of a question page's time.

`Serializer` reuses its signer and only tries compression on payloads large enough to gain from it. Its tokens
are itsdangerous tokens, read by itsdangerous' own code: byte for byte the same for payloads that do not
compress (CSRF tokens and session cookies hold random secrets) and for large ones; a small payload that would
compress is left uncompressed, a few bytes longer and just as valid (tests check each case, and that Flask and
Flask-WTF read them).
"""

from __future__ import annotations

import secrets
from typing import Any

from flask import current_app, g, session
from itsdangerous import URLSafeTimedSerializer
from itsdangerous import serializer as _plain
from itsdangerous.encoding import base64_encode
from itsdangerous.signer import Signer

COMPRESS_FROM = 512        # bytes of JSON; below this, compression cannot pay for its set-up


class Serializer(URLSafeTimedSerializer):
    """``URLSafeTimedSerializer``'s tokens, made in a few microseconds."""

    _signers: dict[Any, Signer]

    def make_signer(self, salt: str | bytes | None = None) -> Signer:
        signers = self.__dict__.setdefault("_signers", {})
        signer = signers.get(salt)
        if signer is None:
            signer = signers[salt] = super().make_signer(salt)
        return signer

    def dump_payload(self, obj: Any) -> bytes:
        json = _plain.Serializer.dump_payload(self, obj)
        if len(json) >= COMPRESS_FROM:
            return super().dump_payload(obj)          # itsdangerous' own: compressed when that is shorter
        return base64_encode(json)


_CSRF_SALT = "wtf-csrf-token"                          # Flask-WTF's, so that its validation reads our tokens
_csrf_serializers: dict[Any, Serializer] = {}


def csrf_token() -> str:
    """The CSRF token for this request's forms: what ``flask_wtf.csrf.generate_csrf`` returns (same session
    secret, same token format, checked by Flask-WTF as usual), made with `Serializer`."""
    field = current_app.config.get("WTF_CSRF_FIELD_NAME", "csrf_token")
    token = g.get(field)
    if token is not None:
        return token
    secret = current_app.config.get("WTF_CSRF_SECRET_KEY") or current_app.secret_key
    serializer = _csrf_serializers.get(secret)
    if serializer is None:
        serializer = _csrf_serializers[secret] = Serializer(secret, salt=_CSRF_SALT)
    if field not in session:
        session[field] = secrets.token_hex(20)          # the session's CSRF secret (40 hex digits, as Flask-WTF's)
    token = serializer.dumps(session[field])
    setattr(g, field, token)
    return token
