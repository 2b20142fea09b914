"""The ``proapp`` console script: the commands of every feature, with the app built from the environment."""

from __future__ import annotations

import sys

from flask.cli import ScriptInfo


def main() -> None:
    """Console-script entry point: the same commands, with the app built from the environment."""
    from proapp import create_app, load_commands

    group = load_commands()
    if sys.argv[1:2] == ["check"]:                 # before building the app: it may refuse to start
        from proapp.ops import run_check

        raise SystemExit(run_check())
    group.main(obj=ScriptInfo(create_app=lambda: create_app()), prog_name="proapp")


if __name__ == "__main__":
    main()
