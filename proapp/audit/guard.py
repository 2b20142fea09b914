"""The database's own refusal to change the audit trail: triggers that reject UPDATE and DELETE (and TRUNCATE on
PostgreSQL) on ``audit_event``. Created by migration 0006; ``suspended`` lifts them for a test that must play
the attacker or start from an empty database."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

POSTGRESQL_CREATE = (
    "CREATE FUNCTION proapp_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ "
    "BEGIN RAISE EXCEPTION 'audit_event is append-only: % refused', TG_OP; END $$",
    "CREATE TRIGGER audit_event_no_update_delete BEFORE UPDATE OR DELETE ON audit_event "
    "FOR EACH ROW EXECUTE FUNCTION proapp_audit_append_only()",
    "CREATE TRIGGER audit_event_no_truncate BEFORE TRUNCATE ON audit_event "
    "FOR EACH STATEMENT EXECUTE FUNCTION proapp_audit_append_only()",
)
POSTGRESQL_DROP = (
    "DROP TRIGGER IF EXISTS audit_event_no_truncate ON audit_event",
    "DROP TRIGGER IF EXISTS audit_event_no_update_delete ON audit_event",
    "DROP FUNCTION IF EXISTS proapp_audit_append_only()",
)
SQLITE_CREATE = (
    "CREATE TRIGGER audit_event_no_update BEFORE UPDATE ON audit_event "
    "BEGIN SELECT RAISE(ABORT, 'audit_event is append-only: UPDATE refused'); END",
    "CREATE TRIGGER audit_event_no_delete BEFORE DELETE ON audit_event "
    "BEGIN SELECT RAISE(ABORT, 'audit_event is append-only: DELETE refused'); END",
)
SQLITE_DROP = ("DROP TRIGGER IF EXISTS audit_event_no_update", "DROP TRIGGER IF EXISTS audit_event_no_delete")


def create_statements(dialect: str) -> tuple[str, ...]:
    return POSTGRESQL_CREATE if dialect == "postgresql" else SQLITE_CREATE


def drop_statements(dialect: str) -> tuple[str, ...]:
    return POSTGRESQL_DROP if dialect == "postgresql" else SQLITE_DROP


@contextmanager
def suspended(conn: Any) -> Iterator[None]:
    """Within ``conn``'s transaction, let UPDATE/DELETE through (PostgreSQL: replica role, which a superuser
    holds; SQLite: the triggers are dropped and created again at the end)."""
    from sqlalchemy import text

    if conn.dialect.name == "postgresql":
        conn.execute(text("SET LOCAL session_replication_role = replica"))
        yield
        return
    for stmt in SQLITE_DROP:
        conn.execute(text(stmt))
    try:
        yield
    finally:
        for stmt in SQLITE_CREATE:
            conn.execute(text(stmt))
