"""Commands of the alerts feature: ``proapp alerts list``."""

from __future__ import annotations

import click
from flask.cli import AppGroup
from sqlalchemy import true

from proapp import db
from proapp.alerts.raising import alerts_page


@click.group("alerts", cls=AppGroup)
def alerts_cli() -> None:
    """Safety-signal alerts raised by the study files' rules."""


@alerts_cli.command("list")
@click.option("--study", default=None, help="Only this study (code).")
@click.option("--site", default=None, help="Only this site (code).")
@click.option("--open", "only_open", is_flag=True, help="Only the alerts nobody acknowledged yet.")
def list_cmd(study: str | None, site: str | None, only_open: bool) -> None:
    """One line per alert: subject, visit, rule, severity, state, raised at (UTC)."""
    rows = alerts_page(db.session(), true(), study=study, site=site, state="open" if only_open else "all",
                       limit=100_000)
    for a, subject, study_code, site_code, visit in rows:
        state = a.state.value if a.state.value == "open" else \
            f"acknowledged {a.acknowledged_at:%Y-%m-%dT%H:%MZ} {a.ack_action.value if a.ack_action else ''}".strip()
        click.echo(f"{study_code}\t{site_code}\t{subject}\t{visit}\t{a.rule_code}\t{a.severity}\t{state}\t"
                   f"{a.raised_at:%Y-%m-%dT%H:%MZ}")
    if not rows:
        click.echo("no alert", err=True)
