"""Commands of the staff accounts: create, new password, disable, enable, end sessions."""

from __future__ import annotations

import sys

import click
from flask.cli import AppGroup
from flask_babel import force_locale
from sqlalchemy import select

from proapp import db, runtime
from proapp.accounts.models import Role, User
from proapp.accounts.staff import AccountError, create_user, end_all_sessions, set_active, set_password
from proapp.cli import fail


@click.group("user", cls=AppGroup)
def user_group() -> None:
    """Staff accounts."""


@user_group.command("create")
@click.option("--email", required=True)
@click.option("--role", required=True, type=click.Choice(["admin", "coordinator", "monitor"]))
@click.option("--study", default=None)
@click.option("--site", multiple=True, help="A site of the study (repeat for several); none: every site.")
@click.option("--language", default="fr", type=click.Choice(["fr", "en"]))
def user_create_cmd(email: str, role: str, study: str | None, site: tuple[str, ...], language: str) -> None:
    """Create an account; the password is read from standard input."""
    password = sys.stdin.readline().rstrip("\n")
    try:
        with force_locale("en"), db.transaction() as s:       # the commands speak English
            create_user(s, email=email, password=password, role=Role(role), now=runtime.now(),
                        study_code=study, site_code=site, language=language)
    except AccountError as exc:
        fail(str(exc))
    click.echo(f"account {email.strip().lower()} created ({role})")


def _account(s, email: str):
    user = s.scalar(select(User).where(User.email == email.strip().lower()))
    if user is None:
        fail(f"no account {email.strip().lower()}")
    return user


@user_group.command("set-password")
@click.argument("email")
def user_password_cmd(email: str) -> None:
    """Set a new password (read from standard input); every open session of the account ends."""
    password = sys.stdin.readline().rstrip("\n")
    try:
        with force_locale("en"), db.transaction() as s:
            set_password(s, _account(s, email), password, runtime.now(), actor="cli")
    except AccountError as exc:
        fail(str(exc))
    click.echo(f"password of {email.strip().lower()} changed; its sessions ended")


def _set_active(email: str, active: bool, reason: str) -> None:
    try:
        with db.transaction() as s:
            set_active(s, _account(s, email), active, runtime.now(), actor="cli", reason=reason)
    except AccountError as exc:
        fail(str(exc))
    click.echo(f"account {email.strip().lower()} {'enabled' if active else 'disabled'}")


@user_group.command("disable")
@click.argument("email")
@click.option("--reason", required=True)
def user_disable_cmd(email: str, reason: str) -> None:
    """Disable an account (it cannot sign in; its sessions end at once)."""
    _set_active(email, False, reason)


@user_group.command("enable")
@click.argument("email")
@click.option("--reason", required=True)
def user_enable_cmd(email: str, reason: str) -> None:
    """Enable a disabled account again."""
    _set_active(email, True, reason)


@user_group.command("end-sessions")
@click.argument("email")
@click.option("--reason", required=True)
def user_end_sessions_cmd(email: str, reason: str) -> None:
    """End every open session of an account at once (e.g. a lost laptop)."""
    with db.transaction() as s:
        user = _account(s, email)
        ended = end_all_sessions(s, user.id, runtime.now(), actor="cli", reason=reason)
    click.echo(f"{ended} session(s) of {email.strip().lower()} ended")
