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


def test_0004_gives_existing_occurrences_their_target_day(tmp_path):
    """Occurrences stored before 0004 get due_on = the patient's anchor date + the visit day."""
    from datetime import date, datetime

    from sqlalchemy import MetaData, select

    from proapp.migrate import upgrade

    url = f"sqlite:///{tmp_path / 'old.sqlite3'}"
    upgrade(url, "0003")
    engine = create_engine(url)
    try:
        meta = MetaData()
        meta.reflect(engine)
        t = meta.tables
        when = datetime(2026, 1, 1)
        with engine.begin() as conn:
            conn.execute(t["study"].insert().values(id=1, code="S", title="S", subject_id_pattern="x{site}",
                                                    definition_version="1", definition_sha256="0" * 64, loaded_at=when))
            conn.execute(t["site"].insert().values(id=1, study_id=1, code="AB", name="AB", timezone="Europe/Paris",
                                                   active=True))
            conn.execute(t["patient"].insert().values(
                id=1, study_id=1, site_id=1, subject_id="xAB", language="fr", timezone="Europe/Paris",
                anchor_date=date(2026, 1, 10), sms_hour=10, status="active", schedule_version="1",
                enrolled_at=when, updated_at=when))
            for oid, code, day in ((1, "V0", 0), (2, "V1", 30), (3, "VM", -3)):
                conn.execute(t["occurrence"].insert().values(
                    id=oid, patient_id=1, visit_code=code, visit_day=day, instruments=["DLQI"],
                    window_opens_on=date(2026, 1, 1), window_closes_on=date(2026, 3, 1), window_opens_at=when,
                    window_closes_at=when, status="scheduled"))
        upgrade(url)
        meta = MetaData()
        meta.reflect(engine)
        occ = meta.tables["occurrence"]
        with engine.connect() as conn:
            got = dict(conn.execute(select(occ.c.visit_code, occ.c.due_on)).all())
        assert got == {"V0": date(2026, 1, 10), "V1": date(2026, 2, 9), "VM": date(2026, 1, 7)}
        assert occ.c.due_on.nullable is False
    finally:
        engine.dispose()
