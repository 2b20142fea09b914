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

Reading a session cookie checks its HMAC on every request (about 30 µs in a request). A patient's session cookie
stays the same from one page to the next (it is only re-sent when the session changes), so `CookieSessions`
remembers the cookies it has verified, per worker and per set of keys: a cookie seen before, byte for byte, is
not verified again, but its age is still checked against the limit and its payload decoded afresh each time.
A changed, tampered or foreign cookie is a different string and goes through itsdangerous' full check.
"""

from __future__ import annotations

import secrets
import threading
from typing import Any

from flask import Flask, current_app, g, session
from flask.sessions import SecureCookieSessionInterface
from itsdangerous import URLSafeTimedSerializer
from itsdangerous import serializer as _plain
from itsdangerous.encoding import base64_encode, want_bytes
from itsdangerous.signer import Signer

COMPRESS_FROM = 512        # bytes of JSON; below this, compression cannot pay for its set-up


class Serializer(URLSafeTimedSerializer):
    """``URLSafeTimedSerializer``'s tokens, made in a few microseconds. With ``remember=N``, the last N tokens it
    verified are not verified again (their age still is)."""

    _signers: dict[Any, Signer]

    def __init__(self, *args: Any, remember: int = 0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._remember = remember
        self._verified: dict[tuple[bytes, Any], tuple[bytes, int]] = {}
        self._evicting = threading.Lock()

    def loads(self, s: str | bytes, max_age: int | None = None, return_timestamp: bool = False,  # type: ignore[override]
              salt: str | bytes | None = None) -> Any:
        if not self._remember:
            return super().loads(s, max_age=max_age, return_timestamp=return_timestamp, salt=salt)
        token = want_bytes(s)
        seen = self._verified.get((token, salt))
        if seen is not None:
            base64d, signed_at = seen
            signer: Any = self.make_signer(salt)
            age = signer.get_timestamp() - signed_at
            if max_age is None or 0 <= age <= max_age:
                payload = self.load_payload(base64d)
                return (payload, signer.timestamp_to_datetime(signed_at)) if return_timestamp else payload
            self._verified.pop((token, salt), None)     # too old now: itsdangerous' own check below says so
        payload, signed_dt = super().loads(token, max_age=max_age, return_timestamp=True, salt=salt)
        with self._evicting:        # threads of one worker share the memory (a threaded server)
            while len(self._verified) >= self._remember:
                self._verified.pop(next(iter(self._verified)))      # the oldest first
            self._verified[(token, salt)] = (token.rsplit(b".", 2)[0], int(signed_dt.timestamp()))
        return (payload, signed_dt) if return_timestamp else payload

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


class CookieSessions(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions (the same cookie), signed by one `Serializer` per set of keys instead of
    a new ``URLSafeTimedSerializer`` on every request, remembering the cookies it verified."""

    REMEMBER = 4096          # cookies (about 200 bytes each) per worker

    def __init__(self) -> None:
        self._built: tuple[tuple[Any, ...], Serializer] | None = None

    def get_signing_serializer(self, app: Flask) -> Serializer | None:  # type: ignore[override]
        if not app.secret_key:
            return None
        keys = (*(app.config.get("SECRET_KEY_FALLBACKS") or ()), app.secret_key)  # signed with the last one
        if self._built is None or self._built[0] != keys:
            self._built = (keys, Serializer(list(keys), salt=self.salt, serializer=self.serializer,
                                            signer_kwargs={"key_derivation": self.key_derivation,
                                                           "digest_method": self.digest_method},
                                            remember=self.REMEMBER))
        return self._built[1]


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
