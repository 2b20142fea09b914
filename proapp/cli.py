"""The ``proapp`` command group. Each feature defines its commands in its own ``commands.py`` (``click.command``
with Flask's ``with_appcontext``, or a ``click.group`` of class ``AppGroup``), and ``proapp.load_commands`` adds
each one to the group by name; ``proapp/__main__.py`` is the console script.

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
