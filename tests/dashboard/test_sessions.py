"""Staff sessions kept by the server: sign-out, password change, a disabled account and "end all sessions" end
them at once, a copied cookie dies with them, and no session outlives its absolute lifetime."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from proapp import db
from proapp.audit.models import AuditEvent
from tests.dashboard.conftest import NOW, Staff, text_of


def _signed_in(app):
    return Staff(app, "admin")


def _copy_cookie(src, dst) -> None:
    cookie = src.client.get_cookie("session")
    dst.client.set_cookie("session", cookie.value)


def test_a_copied_staff_cookie_stops_working_at_sign_out(dash_app):
    staff = _signed_in(dash_app)
    thief = Staff(dash_app, None)
    _copy_cookie(staff, thief)
    assert thief.get("/staff/").status_code == 200              # the copy works while the session lives
    assert staff.post("/staff/logout").status_code == 303
    assert thief.get("/staff/").status_code == 303              # and not after sign-out


def test_a_staff_session_ends_after_its_absolute_lifetime_even_when_active(dash_app):
    staff = _signed_in(dash_app)
    for minutes in range(20, 12 * 60, 20):                      # active every 20 minutes for 12 hours
        dash_app.extensions["proapp.clock"].set(NOW + timedelta(minutes=minutes))
        assert staff.get("/staff/").status_code == 200, minutes
    dash_app.extensions["proapp.clock"].set(NOW + timedelta(hours=12, minutes=1))
    resp = staff.get("/staff/")
    assert resp.status_code == 303
    assert "a session lasts at most 12 hours" in text_of(staff.get(resp.headers["Location"]))


@pytest.mark.parametrize("command", [["set-password", "admin@chu.test"],
                                     ["disable", "psl@chu.test", "--reason", "left the hospital"],
                                     ["end-sessions", "psl@chu.test", "--reason", "lost laptop"]])
def test_the_server_ends_every_session_of_an_account(dash_app, command):
    who = "admin" if command[1] == "admin@chu.test" else "coord_psl"
    first, second = Staff(dash_app, who), Staff(dash_app, who)
    bystander = Staff(dash_app, "coord_bsa")
    result = dash_app.test_cli_runner().invoke(args=["proapp", "user", *command], input="a brand new password\n")
    assert result.exit_code == 0, result.output
    assert first.get("/staff/").status_code == 303 and second.get("/staff/").status_code == 303
    assert bystander.get("/staff/").status_code == 200
    with dash_app.app_context():
        ended = db.session().scalars(select(AuditEvent.new).where(AuditEvent.action == "user.sessions_ended")).all()
        assert ended == [{"sessions": 2}]


def test_the_last_active_admin_cannot_be_disabled(dash_app):
    result = dash_app.test_cli_runner().invoke(args=["proapp", "user", "disable", "admin@chu.test", "--reason", "x"])
    assert result.exit_code == 2 and "last active admin" in result.output


def test_the_session_cookie_holds_no_credential_the_database_keeps(dash_app):
    from proapp.accounts.models import StaffSession

    staff = _signed_in(dash_app)
    with staff.client.session_transaction() as sess:
        token = sess["staff"]["sid"]
    with dash_app.app_context():
        stored = db.session().scalars(select(StaffSession.token_hash)).all()
    assert len(stored) == 1 and token not in stored[0] and re.fullmatch(r"[0-9a-f]{64}", stored[0])
