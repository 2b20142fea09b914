"""The ``proapp`` command group. Each feature adds its commands to it in its own ``commands.py`` (the app factory
imports them: see ``proapp.load_commands``); ``proapp/__main__.py`` is the console script.

Errors are one line on stderr and exit code 2; nothing is stored from a refused command.
"""

from __future__ import annotations

import sys
from typing import NoReturn

import click
from flask.cli import AppGroup


def fail(message: str) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(2)


proapp_cli = AppGroup("proapp", help="proapp: patient-reported outcomes for clinical trials.")
