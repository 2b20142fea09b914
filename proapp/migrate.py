"""Alembic, driven from the app's configuration (no alembic.ini to keep in step)."""

from __future__ import annotations

import re

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, text

from proapp.config import PROJECT_ROOT
from proapp.db import make_engine

MIGRATIONS_DIR = PROJECT_ROOT / "migrations"


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)


def head_revision(url: str) -> str | None:
    return ScriptDirectory.from_config(alembic_config(url)).get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


# Least privilege on PostgreSQL: the role that runs migrations owns the tables; the web app and the worker run as
# another role that may append to the audit tables but not change, delete, truncate, alter or disable their
# triggers (only a table's owner can).
APPEND_ONLY = ("audit_event", "audit_checkpoint", "agreement")
READ_ONLY = ("alembic_version",)
NO_DELETE = ("audit_chain_head",)           # heads move (UPDATE), a chain never goes away


def grant_app_role(url: str, role: str) -> list[str]:
    """Grant ``role`` what the app needs on every table of the schema (run by the owner, after ``upgrade``).
    Returns one line per table, for the command's output."""
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", role):
        raise ValueError(f"{role!r} is not a PostgreSQL role name (lower-case letters, digits, _)")
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            if conn.dialect.name != "postgresql":
                raise ValueError("database roles are a PostgreSQL feature (SQLite has none)")
            schema = conn.execute(text("SELECT current_schema()")).scalar_one()
            conn.execute(text(f'GRANT USAGE ON SCHEMA "{schema}" TO "{role}"'))
            lines = []
            tables = conn.execute(text("SELECT tablename FROM pg_tables WHERE schemaname = current_schema() "
                                       "ORDER BY tablename")).scalars().all()
            for table in tables:
                rights = ("SELECT, INSERT" if table in APPEND_ONLY else "SELECT" if table in READ_ONLY
                          else "SELECT, INSERT, UPDATE" if table in NO_DELETE else "SELECT, INSERT, UPDATE, DELETE")
                conn.execute(text(f'REVOKE ALL ON "{table}" FROM "{role}"'))
                conn.execute(text(f'GRANT {rights} ON "{table}" TO "{role}"'))
                lines.append(f"{role}: {rights} on {table}")
            conn.execute(text(f'GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA "{schema}" TO "{role}"'))
            return lines
    finally:
        engine.dispose()


def audit_table_owned_by_current_role(engine: Engine) -> str | None:
    """The role's name when the connected role owns the audit table (it could then rewrite it), else None."""
    with engine.connect() as conn:
        if conn.dialect.name != "postgresql":
            return None
        row = conn.execute(text("SELECT tableowner, current_user FROM pg_tables WHERE schemaname = current_schema() "
                                "AND tablename = 'audit_event'")).first()
    return row[1] if row is not None and row[0] == row[1] else None
