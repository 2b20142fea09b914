"""Signing in and out: hashed passwords, the same refusal for every failure, lockout, idle timeout, CSRF."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from proapp import db
from proapp.accounts.models import User
from tests.dashboard.conftest import NOW, PASSWORD, USERS, Staff, csrf_of, text_of

REFUSED = "Wrong e-mail or password"


@pytest.mark.requirement("ACCESS")
def test_pages_need_a_signed_in_user(dash_app):
    anon = Staff(dash_app, None)
    resp = anon.get("/staff/patients?flag=overdue")
    assert resp.status_code == 303
    assert resp.headers["Location"].startswith("/staff/login?next=")
    # After signing in, the user lands where they were going.
    page = anon.get(resp.headers["Location"])
    signed = anon.client.post(resp.headers["Location"], data={
        "email": USERS["admin"][0], "password": PASSWORD, "csrf_token": csrf_of(page.get_data(as_text=True))})
    assert signed.status_code == 303
    assert signed.headers["Location"] == "/staff/patients?flag=overdue"


def test_sign_in_refusals_look_the_same_and_store_nothing_of_the_password(dash_app):
    staff = Staff(dash_app, None)
    wrong = staff.login(USERS["admin"][0], "not the password")
    unknown = staff.login("nobody@chu.test", "not the password")
    assert wrong.status_code == unknown.status_code == 200
    assert REFUSED in text_of(wrong) and REFUSED in text_of(unknown)
    assert "not the password" not in wrong.get_data(as_text=True)
    assert staff.get("/staff/").status_code == 303          # still not signed in
    with dash_app.app_context():
        user = db.session().scalar(select(User).where(User.email == USERS["admin"][0]))
        assert user.failed_logins == 1
        assert user.password_hash.startswith("scrypt:")


def test_an_open_redirect_is_refused_after_sign_in(dash_app):
    staff = Staff(dash_app, None)
    page = staff.get("/staff/login")
    resp = staff.client.post("/staff/login?next=//evil.example/x", data={
        "email": USERS["admin"][0], "password": PASSWORD, "csrf_token": csrf_of(page.get_data(as_text=True))})
    assert resp.headers["Location"] == "/staff/"


def test_five_wrong_passwords_lock_the_account_for_fifteen_minutes(dash_app):
    staff = Staff(dash_app, None)
    email = USERS["coord_psl"][0]
    for _ in range(5):
        assert REFUSED in text_of(staff.login(email, "wrong password!"))
    # Locked: even the right password is refused, with the same message.
    assert REFUSED in text_of(staff.login(email, PASSWORD))
    dash_app.extensions["proapp.clock"].set(NOW + timedelta(minutes=14))
    assert staff.login(email, PASSWORD).status_code == 200
    dash_app.extensions["proapp.clock"].set(NOW + timedelta(minutes=16))
    assert staff.login(email, PASSWORD).status_code == 303
    with dash_app.app_context():
        user = db.session().scalar(select(User).where(User.email == email))
        assert (user.failed_logins, user.locked_until) == (0, None)


def test_idle_staff_are_signed_out(dash_app):
    staff = Staff(dash_app, "admin")
    dash_app.extensions["proapp.clock"].set(NOW + timedelta(minutes=29))
    assert staff.get("/staff/").status_code == 200            # activity moves the deadline
    dash_app.extensions["proapp.clock"].set(NOW + timedelta(minutes=58))
    assert staff.get("/staff/").status_code == 200
    dash_app.extensions["proapp.clock"].set(NOW + timedelta(minutes=89))
    resp = staff.get("/staff/")
    assert resp.status_code == 303
    login = staff.get(resp.headers["Location"])
    assert "signed out after a period without activity" in text_of(login)


def test_sign_in_starts_a_new_session_and_sign_out_ends_it(dash_app):
    staff = Staff(dash_app, None)
    with staff.client.session_transaction() as sess:
        sess["pq"] = {"occ": 1, "link": 1}                     # e.g. a patient session on the same device
    staff.login(USERS["admin"][0], PASSWORD, expect=303)
    with staff.client.session_transaction() as sess:
        assert "pq" not in sess
        assert sess["staff"]["uid"] > 0
    assert staff.post("/staff/logout").status_code == 303
    assert staff.get("/staff/").status_code == 303


def test_a_password_change_or_disabled_account_ends_open_sessions(dash_app):
    staff = Staff(dash_app, "admin")
    with dash_app.app_context():
        s = db.session()
        user = s.scalar(select(User).where(User.email == USERS["admin"][0]))
        user.active = False
        s.commit()
    assert staff.get("/staff/").status_code == 303


def test_sign_in_without_csrf_token_is_refused(dash_app):
    client = dash_app.test_client()
    resp = client.post("/staff/login", data={"email": USERS["admin"][0], "password": PASSWORD})
    assert resp.status_code == 400
    assert client.get("/staff/").status_code == 303


def test_the_sign_in_page_is_french_by_default(dash_app):
    page = text_of(dash_app.test_client().get("/staff/login"))
    assert "Se connecter" in page and "Mot de passe" in page


def test_staff_pages_follow_the_user_language_and_the_switch(dash_app):
    staff = Staff(dash_app, "admin")                           # the account's language is English
    assert "Studies" in text_of(staff.get("/staff/"))
    staff.post("/language", data={"lang": "fr", "next": "/staff/"})
    page = text_of(staff.get("/staff/"))
    assert "Études" in page and "Se déconnecter" in page
    assert staff.get("/staff/").headers["Cache-Control"] == "no-store"
