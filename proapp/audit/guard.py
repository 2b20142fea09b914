"""The database's own refusal to change the audit trail: triggers that reject UPDATE and DELETE (and TRUNCATE on
PostgreSQL) on ``audit_event``, created by migration 0006; and, from migration 0018 (``SEAL_*``), the same on
``audit_checkpoint``, any entry without a key id or in the sealed ``legacy`` chain, and any change to the legacy
chain's head. The app's PostgreSQL role cannot drop or disable them (only the tables' owner can).
``suspended`` lifts them for a test that must play the attacker or start from an empty database."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import text

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


SEAL_POSTGRESQL_CREATE = (
    "CREATE FUNCTION proapp_audit_refused() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION "
    "'%: % refused (the audit trail is append-only, its entries keyed, the legacy chain sealed)', TG_TABLE_NAME, "
    "TG_OP; END $$",
    "CREATE TRIGGER audit_event_keyed_only BEFORE INSERT ON audit_event FOR EACH ROW "
    "WHEN (NEW.key_id IS NULL OR NEW.chain = 'legacy') EXECUTE FUNCTION proapp_audit_refused()",
    "CREATE TRIGGER audit_chain_head_legacy_sealed BEFORE UPDATE OR DELETE ON audit_chain_head FOR EACH ROW "
    "WHEN (OLD.chain = 'legacy') EXECUTE FUNCTION proapp_audit_refused()",
    "CREATE TRIGGER audit_chain_head_no_legacy BEFORE INSERT ON audit_chain_head FOR EACH ROW "
    "WHEN (NEW.chain = 'legacy') EXECUTE FUNCTION proapp_audit_refused()",
    "CREATE TRIGGER audit_checkpoint_no_update_delete BEFORE UPDATE OR DELETE ON audit_checkpoint "
    "FOR EACH ROW EXECUTE FUNCTION proapp_audit_refused()",
    "CREATE TRIGGER audit_checkpoint_no_truncate BEFORE TRUNCATE ON audit_checkpoint "
    "FOR EACH STATEMENT EXECUTE FUNCTION proapp_audit_refused()",
)
SEAL_POSTGRESQL_DROP = (
    "DROP TRIGGER IF EXISTS audit_checkpoint_no_truncate ON audit_checkpoint",
    "DROP TRIGGER IF EXISTS audit_checkpoint_no_update_delete ON audit_checkpoint",
    "DROP TRIGGER IF EXISTS audit_chain_head_no_legacy ON audit_chain_head",
    "DROP TRIGGER IF EXISTS audit_chain_head_legacy_sealed ON audit_chain_head",
    "DROP TRIGGER IF EXISTS audit_event_keyed_only ON audit_event",
    "DROP FUNCTION IF EXISTS proapp_audit_refused()",
)
_REFUSED = ("SELECT RAISE(ABORT, '{} refused (the audit trail is append-only, its entries keyed, the legacy chain "
            "sealed)')")
SEAL_SQLITE_CREATE = (
    "CREATE TRIGGER audit_event_keyed_only BEFORE INSERT ON audit_event "
    f"WHEN NEW.key_id IS NULL OR NEW.chain = 'legacy' BEGIN {_REFUSED.format('audit_event: INSERT')}; END",
    "CREATE TRIGGER audit_chain_head_legacy_no_update BEFORE UPDATE ON audit_chain_head WHEN OLD.chain = 'legacy' "
    f"BEGIN {_REFUSED.format('audit_chain_head: UPDATE')}; END",
    "CREATE TRIGGER audit_chain_head_legacy_no_delete BEFORE DELETE ON audit_chain_head WHEN OLD.chain = 'legacy' "
    f"BEGIN {_REFUSED.format('audit_chain_head: DELETE')}; END",
    "CREATE TRIGGER audit_chain_head_no_legacy BEFORE INSERT ON audit_chain_head WHEN NEW.chain = 'legacy' "
    f"BEGIN {_REFUSED.format('audit_chain_head: INSERT')}; END",
    "CREATE TRIGGER audit_checkpoint_no_update BEFORE UPDATE ON audit_checkpoint "
    f"BEGIN {_REFUSED.format('audit_checkpoint: UPDATE')}; END",
    "CREATE TRIGGER audit_checkpoint_no_delete BEFORE DELETE ON audit_checkpoint "
    f"BEGIN {_REFUSED.format('audit_checkpoint: DELETE')}; END",
)
SEAL_SQLITE_DROP = tuple(f"DROP TRIGGER IF EXISTS {stmt.split()[2]}" for stmt in SEAL_SQLITE_CREATE)


def seal_statements(dialect: str, create: bool = True) -> tuple[str, ...]:
    if dialect == "postgresql":
        return SEAL_POSTGRESQL_CREATE if create else SEAL_POSTGRESQL_DROP
    return SEAL_SQLITE_CREATE if create else SEAL_SQLITE_DROP


def create_statements(dialect: str) -> tuple[str, ...]:
    return POSTGRESQL_CREATE if dialect == "postgresql" else SQLITE_CREATE


def drop_statements(dialect: str) -> tuple[str, ...]:
    return POSTGRESQL_DROP if dialect == "postgresql" else SQLITE_DROP


@contextmanager
def suspended(conn: Any) -> Iterator[None]:
    """Within ``conn``'s transaction, let UPDATE/DELETE through (PostgreSQL: replica role, which a superuser
    holds; SQLite: the triggers are dropped and created again at the end)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SET LOCAL session_replication_role = replica"))
        yield
        return
    sealed = conn.execute(text("SELECT count(*) FROM sqlite_master WHERE type = 'trigger' "
                               "AND name = 'audit_event_keyed_only'")).scalar_one()
    for stmt in SQLITE_DROP + (SEAL_SQLITE_DROP if sealed else ()):
        conn.execute(text(stmt))
    try:
        yield
    finally:
        for stmt in SQLITE_CREATE + (SEAL_SQLITE_CREATE if sealed else ()):
            conn.execute(text(stmt))
