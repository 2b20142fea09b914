"""Database plumbing: the declarative base, a UTC datetime type and the per-app-context session.

Services receive a ``Session`` and only ``flush``; the caller (a route, a CLI command or a job)
decides when the unit of work commits. Nothing commits implicitly at the end of a request.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, ClassVar

from flask import Flask, current_app, g
from sqlalchemy import Connection, DateTime, Engine, MetaData, create_engine, event
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.pool import StaticPool
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware datetimes, always stored and returned in UTC.

    PostgreSQL keeps ``timestamptz``; SQLite keeps the UTC wall time. A naive datetime is refused,
    so no local time can slip into the database unnoticed.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value!r} refused: store aware UTC datetimes")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime()}


def dialect_insert(dialect_name: str):
    """``insert`` with ON CONFLICT support for this database (PostgreSQL or SQLite)."""
    if dialect_name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert


def utcnow() -> datetime:
    return datetime.now(UTC)


def make_engine(url: str) -> Engine:
    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        from proapp.sqlite_gate import GatedConnection

        # Writers take turns through a lock file beside the database (see sqlite_gate).
        kwargs["connect_args"] = {"timeout": 30, "factory": GatedConnection}
        if url in ("sqlite://", "sqlite:///:memory:"):
            kwargs["poolclass"] = StaticPool
            kwargs["connect_args"]["check_same_thread"] = False
    else:
        kwargs["pool_pre_ping"] = True
    engine = create_engine(url, **kwargs)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        # Every commit reaches the disk before it returns: an answer the patient saw saved survives a power cut
        # (WAL's "NORMAL" would be faster and could lose the last commits).
        cursor.execute("PRAGMA synchronous=FULL")
    finally:
        cursor.close()


def init_app(app: Flask) -> None:
    from proapp.audit.services import install

    install()
    engine = make_engine(app.config["DATABASE_URL"])
    app.extensions["proapp.engine"] = engine
    app.extensions["proapp.sessionmaker"] = sessionmaker(bind=engine, expire_on_commit=False)
    app.teardown_appcontext(_close_session)


def engine() -> Engine:
    return current_app.extensions["proapp.engine"]


def session() -> Session:
    """The session of the current app context (one per request, CLI command or job run)."""
    if "db_session" not in g:
        g.db_session = current_app.extensions["proapp.sessionmaker"]()
    return g.db_session


def reader() -> Connection:
    """A Core connection for this request's reads. Once the request has an ORM session (it writes), that
    session's own connection, so reads and writes share one transaction; otherwise a plain pooled connection,
    with none of the session's bookkeeping (the patient's question pages, read on every tap)."""
    if "db_session" in g:
        return g.db_session.connection()
    if "db_reader" not in g:
        conn = current_app.extensions["proapp.engine"].connect()
        if conn.dialect.name == "postgresql":
            # Reads only: no BEGIN before them and no ROLLBACK after (two round trips fewer on every patient
            # page). Each statement sees what was committed when it ran, as it would inside a READ COMMITTED
            # transaction.
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        g.db_reader = conn
    return g.db_reader


def _close_session(_exc: BaseException | None) -> None:
    """End of request: nothing uncommitted survives. If the database went away meanwhile, the connection is
    simply dropped: the answer already computed must not turn into a 500 (seen under load with an outage)."""
    for key in ("db_reader", "db_session"):
        held = g.pop(key, None)
        if held is None:
            continue
        try:
            held.close()        # gives the connection back to the pool, which rolls back what was not committed
        except Exception:
            import logging

            logging.getLogger("proapp").warning("database connection lost at the end of a request")
            held.invalidate()
            held.close()


@contextmanager
def transaction() -> Iterator[Session]:
    """Commit the current session on success, roll back on any error."""
    s = session()
    try:
        yield s
        s.commit()
    except BaseException:
        s.rollback()
        raise
