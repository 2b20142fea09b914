"""Issue 28, the accounts and the input: the change-password form counted like a sign-in, the last admin kept
under concurrency, a recovery code used once even at the same instant, "forgot your password?" doing the same
work for every address before it answers, one plain e-mail address everywhere, and bad input answered with a
4xx (full-width digits in a code, a VAS of thousands of digits, ids beyond bigint, JSON nested thousands deep)."""

from __future__ import annotations

import re
import threading

import pyotp
import pytest
from sqlalchemy import event, select
from werkzeug.security import check_password_hash

from proapp import db
from proapp.accounts import staff as accounts
from proapp.accounts import two_factor
from proapp.accounts.models import AccountMail, Role, User
from tests.accounts.test_invitations import ADMIN, PASSWORD, actions, csrf, post, signed_in
from tests.alerts.conftest import later, make_alert_app, worker
from tests.questionnaire.helpers import text

NEW = "a brand new phrase here"


@pytest.fixture
def app(database_url, instance_dir, smtp, fake_twilio):
    app = make_alert_app(database_url, smtp, fake_twilio, RATE_LOGIN_PER_ACCOUNT=100)
    yield app
    app.extensions["proapp.engine"].dispose()


def _user(app, email: str) -> User:
    with app.app_context():
        return db.session().scalar(select(User).where(User.email == email))


def writer(app):
    """Sessions of two requests at once (SQLite: writers, as requests are)."""
    return lambda: app.extensions["proapp.sessionmaker"](bind=app.extensions["proapp.writer_engine"])


def _page(resp) -> str:
    return re.sub(r'name="csrf_token" value="[^"]+"', "", resp.text)


# 5. The change-password form -------------------------------------------------------------------------------------

def test_wrong_current_passwords_lock_the_account_are_audited_and_then_even_the_right_one_is_refused(app):
    client = signed_in(app, "tls@chu.test")
    wrong = [post(client, "/staff/account", current=f"not it {n}", password=NEW, password2=NEW) for n in range(5)]
    assert {r.status_code for r in wrong} == {422}
    assert "Ce n'est pas votre mot de passe actuel" in text(wrong[0].text)
    assert _user(app, "tls@chu.test").locked_until is not None          # five in a row, as at the sign-in
    right = post(client, "/staff/account", current=PASSWORD, password=NEW, password2=NEW)
    assert right.status_code == 422 and _page(right) == _page(wrong[-1])    # the same answer: no oracle
    right_but_differ = post(client, "/staff/account", current=PASSWORD, password=NEW, password2="other")
    assert _page(right_but_differ) == _page(wrong[-1])
    assert check_password_hash(_user(app, "tls@chu.test").password_hash, PASSWORD)       # unchanged
    refused = post(app.test_client(), "/staff/login", email="tls@chu.test", password=PASSWORD)
    assert refused.status_code == 200 and "incorrect" in text(refused.text)               # locked for sign-in too
    done = actions(app)
    assert done.count("user.password_change_refused") == 7 and "user.locked" in done
    later(app, minutes=16)                                              # the lock ends: the right one works
    ok = post(client, "/staff/account", current=PASSWORD, password=NEW, password2=NEW)
    assert ok.status_code == 303


def test_the_change_password_form_is_rate_limited_per_account(database_url, instance_dir, smtp, fake_twilio):
    app = make_alert_app(database_url, smtp, fake_twilio, RATE_LOGIN_PER_ACCOUNT=4, LOGIN_MAX_FAILURES=50)
    try:
        client = signed_in(app, "tls@chu.test")                         # the sign-in is the first of four
        codes = [post(client, "/staff/account", current="not it", password=NEW, password2=NEW).status_code
                 for _ in range(4)]
        assert codes == [422, 422, 422, 429]
    finally:
        app.extensions["proapp.engine"].dispose()


# 7. The last admin, under concurrency ---------------------------------------------------------------------------

def test_two_admins_disabling_each_other_at_the_same_moment_leave_one_active(app):
    with app.app_context():
        s = db.session()
        accounts.create_user(s, email="admin2@chu.test", password=PASSWORD, role=Role.ADMIN,
                             now=app.extensions["proapp.clock"].now())
        s.commit()
    make = writer(app)
    outcome: dict[str, object] = {}

    def second_admin() -> None:
        with app.app_context():
            s2 = make()
            try:
                first_admin = s2.scalar(select(User).where(User.email == ADMIN))
                accounts.set_active(s2, first_admin, False, app.extensions["proapp.clock"].now(),
                                    actor="user:admin2@chu.test", reason="at the same moment")
                s2.commit()
                outcome["second"] = "disabled"
            except accounts.AccountError as exc:
                s2.rollback()
                outcome["second"] = str(exc)
            finally:
                s2.close()

    with app.app_context():
        s1 = make()
        other = s1.scalar(select(User).where(User.email == "admin2@chu.test"))
        accounts.set_active(s1, other, False, app.extensions["proapp.clock"].now(), actor=f"user:{ADMIN}",
                            reason="at the same moment")              # not committed yet
        thread = threading.Thread(target=second_admin)
        thread.start()
        thread.join(timeout=1.5)                # the other request waits for this one (or, unfixed, goes through)
        s1.commit()
        s1.close()
    thread.join(timeout=30)
    assert outcome["second"] == "the last active admin cannot be disabled"
    with app.app_context():
        active = db.session().scalars(select(User.email).where(User.role == Role.ADMIN, User.active.is_(True)))
        assert list(active) == [ADMIN]


# 8. A recovery code at the same instant ------------------------------------------------------------------------

def test_a_recovery_code_typed_in_two_sign_ins_at_the_same_instant_works_once(app):
    from proapp import runtime

    with app.app_context():
        s = db.session()
        user = s.scalar(select(User).where(User.email == "tls@chu.test"))
        secret, now = pyotp.random_base32(), app.extensions["proapp.clock"].now()
        codes = two_factor.enable(s, user, secret, pyotp.TOTP(secret).at(now), vault=runtime.phone_vault(),
                                  now=now, actor="test")
        s.commit()
    make = writer(app)
    outcome: dict[str, object] = {}

    def other_sign_in() -> None:
        with app.app_context():
            s2 = make()
            try:
                u2 = s2.scalar(select(User).where(User.email == "tls@chu.test"))
                outcome["second"] = two_factor.check(s2, u2, codes[0], vault=runtime.phone_vault(), now=now)
                s2.commit()
            finally:
                s2.close()

    with app.app_context():
        s1 = make()
        u1 = s1.scalar(select(User).where(User.email == "tls@chu.test"))
        first = two_factor.check(s1, u1, codes[0], vault=runtime.phone_vault(), now=now)
        thread = threading.Thread(target=other_sign_in)
        thread.start()
        thread.join(timeout=1.5)
        s1.commit()
        s1.close()
    thread.join(timeout=30)
    assert first == "recovery" and outcome["second"] is None
    assert len(_user(app, "tls@chu.test").recovery_codes) == 9
    with app.app_context():                                 # the others still work, once each
        s = db.session()
        user = s.scalar(select(User).where(User.email == "tls@chu.test"))
        assert two_factor.check(s, user, codes[1], vault=runtime.phone_vault(), now=now) == "recovery"
        assert two_factor.check(s, user, codes[1], vault=runtime.phone_vault(), now=now) is None
        s.commit()


# 9. "Forgot your password?" ------------------------------------------------------------------------------------

def test_forgot_password_does_the_same_work_for_every_address_before_it_answers(app, smtp):
    from flask import request_finished

    statements: list[str] = []
    answering = threading.Event()

    def executed(_conn, _cursor, statement, *_args) -> None:
        if answering.is_set():
            statements.append(statement)

    def finished(_sender, **_kw) -> None:
        answering.clear()                           # the answer is made: what follows is after it

    engine = app.extensions["proapp.engine"]
    event.listen(engine, "before_cursor_execute", executed)
    request_finished.connect(finished, app)
    try:
        seen = []
        for email in ("tls@chu.test", "nobody@chu.test", "TLS@chu.test"):
            later(app, minutes=2)                   # beyond the minute in which a second mail is not queued
            client = app.test_client()
            page = client.get("/staff/forgot")
            statements.clear()
            answering.set()
            resp = client.post("/staff/forgot", data={"csrf_token": csrf(page.text), "email": email})
            seen.append(list(statements))
            assert resp.status_code == 200
            resp.close()                            # the answer is sent: now the request is queued
    finally:
        event.remove(engine, "before_cursor_execute", executed)
        request_finished.disconnect(finished, app)
    assert seen[0] == seen[1] == seen[2]            # the same statements, whether the account exists or not
    assert not any("app_user" in st or "account_mail" in st for st in seen[0])
    with app.app_context():
        assert len(db.session().scalars(select(AccountMail)).all()) == 2      # queued after the answer
    assert worker(app).account_mails()["sent"] == 2
    assert [m["To"] for m in smtp.all()] == ["tls@chu.test", "tls@chu.test"]


# 10. One plain e-mail address ----------------------------------------------------------------------------------

BAD_ADDRESSES = ("victim@chu.test,attacker@evil.example", "<x@evil.example>@chu.test", "a@b@chu.test",
                 "Victim <victim@chu.test>", "victim@chu.test attacker@evil.example", "victim@chu.test;x@evil.example",
                 '"x"@chu.test', "vïctim@chu.test", "victim@chu", "victim@chu.test\nBcc: x@evil.example",
                 ".x@chu.test", "x..y@chu.test")


def test_an_account_address_is_one_plain_address_in_the_form_the_command_and_the_mailer(app, smtp):
    from proapp.mail import Mail, from_config, plain_address

    admin = signed_in(app)
    for bad in BAD_ADDRESSES:
        assert plain_address(bad) is None, bad
        resp = post(admin, "/staff/accounts/new", email=bad, role="coordinator", study="ADUSE", sites="TLS",
                    language="fr")
        assert resp.status_code == 422 and "Give one e-mail address and nothing else" in text(resp.text), bad
        with app.app_context(), pytest.raises(accounts.AccountError):
            accounts.create_user(db.session(), email=bad, password=None, role=Role.MONITOR,
                                 now=app.extensions["proapp.clock"].now(), study_code="ADUSE")
        done = app.test_cli_runner().invoke(args=["proapp", "user", "create", "--email", bad, "--role", "admin"],
                                            input="a long enough password 42\n")
        assert done.exit_code != 0 and "not one plain e-mail address" in done.output, (bad, done.output)
    with app.app_context():
        assert db.session().scalar(select(User.id).where(User.email.contains("evil"))) is None
    assert plain_address(" Nurse.O'Brien+aduse@CHU-Toulouse.fr ") == "nurse.o'brien+aduse@chu-toulouse.fr"
    assert post(admin, "/staff/accounts/new", email="Nurse@CHU.test", role="coordinator", study="ADUSE",
                sites="TLS", language="fr").status_code == 303
    # The mailer's last guard: an address stored before these rules is not mailed.
    mailer = from_config(app.config, app.instance_path)
    outcome = mailer.send(Mail("victim@chu.test,attacker@evil.example", "s", "b", "<m@x>"))
    assert outcome.kind == "failed" and smtp.all() == []


# 11. Bad input gets a 4xx ----------------------------------------------------------------------------------------

def _enrolled(app, email: str) -> str:
    from proapp import runtime

    with app.app_context():
        s = db.session()
        user = s.scalar(select(User).where(User.email == email))
        secret, now = pyotp.random_base32(), app.extensions["proapp.clock"].now()
        two_factor.enable(s, user, secret, pyotp.TOTP(secret).at(now), vault=runtime.phone_vault(), now=now,
                          actor="test")
        s.commit()
    later(app, seconds=31)
    return secret


def test_full_width_digits_at_the_code_step_are_a_wrong_or_a_right_code_never_a_500(app):
    secret = _enrolled(app, "tls@chu.test")
    client = app.test_client()
    assert post(client, "/staff/login", email="tls@chu.test", password=PASSWORD).status_code == 303
    wrong = post(client, "/staff/login/code", code="１２３４５６")
    assert wrong.status_code == 422 and "Ce code ne fonctionne pas" in text(wrong.text)
    assert _user(app, "tls@chu.test").failed_logins == 1                  # counted
    right = pyotp.TOTP(secret).at(app.extensions["proapp.clock"].now())
    full_width = "".join(chr(ord(c) + 0xFEE0) for c in right)            # the right code typed in full width
    assert post(client, "/staff/login/code", code=full_width).status_code == 303
    assert client.get("/staff/").status_code == 200


def test_full_width_digits_in_an_e_signature_are_refused_and_counted(app):
    from tests.export.conftest import complete_diary

    pid = complete_diary(app, "ADU-TLS-311")
    client = signed_in(app, "tls@chu.test")
    _enrolled(app, "tls@chu.test")                  # from now on a signature asks for a code too
    with app.app_context():
        from proapp.questionnaire.models import Response

        rid = db.session().scalar(select(Response.id).where(Response.instrument_code == "PAIN_VAS"))
    url = f"/staff/patients/{pid}/responses/{rid}"
    page = client.get(url)
    form = {"csrf_token": csrf(page.text), "item": "PAIN_VAS", "repeat": "0", "value": "40",
            "reason": "appel de la patiente", "signature_password": PASSWORD, "signature_code": "１２３４５６"}
    refused = client.post(f"{url}/correct", data=form)
    assert refused.status_code == 422 and "Le code ne correspond pas" in text(refused.text)
    assert _user(app, "tls@chu.test").failed_logins == 1


def test_a_vas_answer_of_thousands_of_digits_is_refused_with_a_message(app):
    from tests.questionnaire.helpers import Patient, enrol_with_open_window

    _pid, token = enrol_with_open_window(app, "ADUSE", "W1", subject="ADU-TLS-312")
    p = Patient(app.test_client(), token)
    p.open()
    p.start()
    p.diary(pain=None)
    vas = p.path
    huge = "9" * 4301
    refused = p.answer(PAIN_VAS=huge)
    assert refused.status_code == 422 and "nombre entier de 0 à 100" in text(refused.text)
    p.get(vas)
    p.answer(PAIN_VAS="35")
    assert p.path == "/q/review"
    p.get(vas)
    again = p.answer(PAIN_VAS=huge)                     # a saved answer, changed to thousands of digits
    assert again.status_code == 422
    with app.app_context():
        from proapp.questionnaire.models import Answer

        assert db.session().scalar(select(Answer.value).where(Answer.item_code == "PAIN_VAS")) == "35"


def test_ids_beyond_bigint_in_staff_paths_and_forms_are_not_found(app):
    from tests.export.conftest import complete_diary

    pid = complete_diary(app, "ADU-TLS-313")
    admin = signed_in(app)
    huge = "9" * 25
    for path in (f"/staff/patients/{huge}", f"/staff/accounts/{huge}", f"/staff/patients/{huge}/audit.csv",
                 f"/staff/alerts/{huge}", f"/staff/patients/{pid}/responses/{huge}", f"/staff/patients/{2**63}"):
        assert admin.get(path).status_code == 404, path
    page = admin.get(f"/staff/patients/{pid}")
    resend = admin.post(f"/staff/patients/{pid}/actions/resend", data={
        "csrf_token": csrf(page.text), "occurrence": huge, "reason": "test"})
    assert resend.status_code == 422 and "Choose an open questionnaire." in text(resend.text)


def test_json_nested_thousands_deep_to_the_acknowledgements_is_a_400(app):
    from tests.export.conftest import auth, make_key

    key = make_key(app)
    resp = app.test_client().post("/api/v1/studies/ADUSE/acknowledgements", headers=auth(key),
                                  data="[" * 5000 + "]" * 5000, content_type="application/json")
    assert resp.status_code == 400 and resp.mimetype == "application/problem+json"
    limit = app.test_client().get("/api/v1/studies/ADUSE/responses", headers=auth(key),
                                  query_string={"limit": "9" * 5000})
    assert limit.status_code == 400
