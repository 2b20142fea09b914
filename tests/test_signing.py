"""proapp.signing makes the same session cookies and CSRF tokens as Flask and Flask-WTF, only faster: byte for
byte the same tokens, read by the stock code, refused when tampered with or signed with another key."""

import pytest
from flask import session
from flask_wtf.csrf import validate_csrf
from itsdangerous import BadSignature, URLSafeTimedSerializer
from wtforms.validators import ValidationError

from proapp.signing import COMPRESS_FROM, Serializer

KEY = "k" * 48


class _Frozen:
    def get_timestamp(self) -> int:
        return 1_790_000_000


class FrozenStock(_Frozen, URLSafeTimedSerializer):
    pass


class FrozenOurs(_Frozen, Serializer):
    pass


# Secrets as the session holds them (random hex digits; fixed here so the test is the same every run).
SECRET_A = "5f0e8c2b9d41a7e63c18f2b07d9a4e51c6b83f20"
SECRET_B = "c47a19e0b2d85f3e6a01c9b4d7e28f5a3b60d19c"


@pytest.mark.parametrize("payload", [SECRET_A, {"csrf_token": SECRET_B, "pq": {"link": 5, "occ": 2}},
                                     {"big": "x" * (COMPRESS_FROM * 2)}, {"text": "é" * 300}])
def test_the_same_tokens_as_itsdangerous_byte_for_byte(payload):
    """CSRF secrets and session cookies (random secrets), and large payloads: exactly itsdangerous' tokens."""
    for salt in ("wtf-csrf-token", "cookie-session"):
        stock, ours = FrozenStock(KEY, salt=salt), FrozenOurs(KEY, salt=salt)
        assert ours.dumps(payload) == stock.dumps(payload)
        assert ours.dumps(payload) == stock.dumps(payload)        # the kept signer gives the same again
        assert URLSafeTimedSerializer(KEY, salt=salt).loads(ours.dumps(payload)) == payload


def test_a_small_payload_that_would_compress_is_left_as_it_is_and_still_read():
    payload = {"note": "ab" * 30}
    token, stock_token = FrozenOurs(KEY, salt="s").dumps(payload), FrozenStock(KEY, salt="s").dumps(payload)
    assert stock_token.startswith(".") and not token.startswith(".")      # itsdangerous compressed it; we did not
    assert URLSafeTimedSerializer(KEY, salt="s").loads(token) == payload


def test_tampered_or_foreign_tokens_are_refused():
    token = Serializer(KEY, salt="s").dumps("secret")
    with pytest.raises(BadSignature):
        URLSafeTimedSerializer(KEY, salt="s").loads(token[:-2] + ("AA" if not token.endswith("AA") else "BB"))
    with pytest.raises(BadSignature):
        URLSafeTimedSerializer("another key" * 4, salt="s").loads(token)
    with pytest.raises(BadSignature):
        URLSafeTimedSerializer(KEY, salt="another salt").loads(token)


def test_csrf_tokens_of_the_pages_are_checked_by_flask_wtf(app):
    with app.test_request_context("/"):
        token = app.jinja_env.globals["csrf_token"]()
        assert app.jinja_env.globals["csrf_token"]() == token       # one per request, as Flask-WTF
        validate_csrf(token)                                         # raises if refused
        session["csrf_token"] = "0" * 40                             # another session's secret
        with pytest.raises(ValidationError):
            validate_csrf(token)


def test_session_cookies_read_by_flasks_own_interface(app):
    from flask.sessions import SecureCookieSessionInterface

    client = app.test_client()
    with client.session_transaction() as sess:
        sess["pq"] = {"link": 7, "occ": 3}
    cookie = client.get_cookie("session").value
    stock = SecureCookieSessionInterface().get_signing_serializer(app)
    assert stock.loads(cookie)["pq"] == {"link": 7, "occ": 3}
    # and the other way round: a cookie made by Flask's own interface is read by the app
    made_by_flask = stock.dumps({"pq": {"link": 8, "occ": 4}})
    client.set_cookie("session", made_by_flask)
    with client.session_transaction() as sess:
        assert sess["pq"] == {"link": 8, "occ": 4}


def _remembering(**kwargs) -> Serializer:
    return Serializer(KEY, salt="cookie-session", remember=4, **kwargs)


def test_a_remembered_cookie_is_read_again_as_a_fresh_copy():
    ours = _remembering()
    token = ours.dumps({"pq": {"link": 5, "occ": 2}})
    first = ours.loads(token, max_age=60)
    first["pq"]["link"] = 99                        # the request changes its session ...
    assert ours.loads(token, max_age=60) == {"pq": {"link": 5, "occ": 2}}   # ... not the next request's copy
    payload, signed_at = ours.loads(token, max_age=60, return_timestamp=True)
    assert payload["pq"]["occ"] == 2 and signed_at.tzinfo is not None


def test_a_remembered_cookie_still_expires(monkeypatch):
    import time

    from itsdangerous import SignatureExpired

    ours = _remembering()
    token = ours.dumps({"pq": {"link": 5, "occ": 2}})
    assert ours.loads(token, max_age=60)["pq"]["link"] == 5
    now = time.time()
    monkeypatch.setattr(time, "time", lambda: now + 61)
    with pytest.raises(SignatureExpired):
        ours.loads(token, max_age=60)
    with pytest.raises(SignatureExpired):            # and it is not remembered as good afterwards
        ours.loads(token, max_age=60)
    monkeypatch.setattr(time, "time", lambda: now - 3600)
    with pytest.raises(SignatureExpired):            # signed "in the future": refused as itsdangerous does
        ours.loads(token, max_age=60)


def test_remembering_never_lets_a_tampered_or_foreign_cookie_in():
    ours = _remembering()
    token = ours.dumps({"pq": {"link": 5, "occ": 2}})
    ours.loads(token)
    _payload, signed_at, sig = token.rsplit(".", 2)
    forged = Serializer(KEY, salt="cookie-session").dumps({"pq": {"link": 6, "occ": 2}}).rsplit(".", 2)[0]
    for bad in (f"{forged}.{signed_at}.{sig}", token[:-2] + ("AA" if not token.endswith("AA") else "BB"),
                Serializer("another key" * 4, salt="cookie-session").dumps({"pq": {"link": 5, "occ": 2}})):
        with pytest.raises(BadSignature):
            ours.loads(bad)
    with pytest.raises(BadSignature):
        ours.loads(token, salt="another salt")       # remembered for its own salt only


def test_it_remembers_a_bounded_number_of_cookies():
    ours = _remembering()
    tokens = [ours.dumps({"n": n}) for n in range(10)]
    for t in tokens:
        ours.loads(t)
    assert len(ours._verified) == 4
    assert [ours.loads(t)["n"] for t in tokens] == list(range(10))


def test_a_cookie_signed_with_a_retired_key_is_refused_once_the_key_is_gone(app):
    client = app.test_client()
    with client.session_transaction() as sess:
        sess["pq"] = {"link": 7, "occ": 3}
    with client.session_transaction() as sess:       # verified, and remembered
        assert sess["pq"] == {"link": 7, "occ": 3}
    old_key = app.secret_key
    app.secret_key = "a new key " * 5
    app.config["SECRET_KEY_FALLBACKS"] = [old_key]
    with client.session_transaction() as sess:       # the old key is still accepted during the rotation
        assert sess["pq"] == {"link": 7, "occ": 3}
    app.config["SECRET_KEY_FALLBACKS"] = []
    with client.session_transaction() as sess:       # and no longer once it is retired
        assert "pq" not in sess
    app.secret_key = old_key


def test_threads_reading_and_evicting_remembered_cookies_at_once_never_fail():
    import threading

    ours = _remembering()
    tokens = [ours.dumps({"n": n}) for n in range(40)]
    failures: list[BaseException] = []

    def read_all() -> None:
        try:
            for _ in range(50):
                for n, t in enumerate(tokens):
                    assert ours.loads(t)["n"] == n
        except BaseException as exc:          # any failure in a thread fails the test
            failures.append(exc)

    threads = [threading.Thread(target=read_all) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert failures == [] and len(ours._verified) <= 4
