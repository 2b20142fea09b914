"""The migrations build the schema the models describe, on SQLite and PostgreSQL."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from proapp.db import Base
from proapp.migrate import current_revision, head_revision


def test_database_is_at_head_after_upgrade(database_url):
    engine = create_engine(database_url)
    try:
        assert current_revision(engine) == head_revision(database_url)
    finally:
        engine.dispose()


def test_models_and_migrations_agree(database_url):
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"compare_type": True})
            diff = compare_metadata(ctx, Base.metadata)
        assert diff == [], f"autogenerate would change: {diff}"
        tables = set(inspect(engine).get_table_names())
        assert {"study", "site", "patient", "patient_contact", "occurrence", "response", "answer",
                "app_user", "user_scope", "alembic_version"} <= tables
    finally:
        engine.dispose()


def test_upgrade_from_empty_database(tmp_path):
    from proapp.migrate import upgrade

    url = f"sqlite:///{tmp_path / 'empty.sqlite3'}"
    upgrade(url)
    upgrade(url)   # a second run changes nothing and does not fail
    engine = create_engine(url)
    try:
        assert current_revision(engine) == head_revision(url)
    finally:
        engine.dispose()
