"""Commands of the instruments feature."""

from __future__ import annotations

import click
from flask.cli import with_appcontext

from proapp import runtime


@click.command("instruments")
@with_appcontext
def instruments_cmd() -> None:
    """List the instruments, their versions and whether each language's wording is validated."""
    for inst in runtime.instruments().all():
        langs = ", ".join(f"{lang} {'validated' if st.validated else 'NOT VALIDATED'}"
                          for lang, st in sorted(inst.languages.items()))
        click.echo(f"{inst.code} {inst.version}: {len(inst.items)} items; {langs}")
        for lang, st in sorted(inst.languages.items()):
            for flag in st.flagged:
                click.echo(f"  {lang} flagged by review: {flag}")
