"""Database plumbing: the declarative base, a UTC datetime type and the per-app-context session.

Services receive a ``Session`` and only ``flush``; the caller (a route, a CLI command or a job)
decides when the unit of work commits. Nothing commits implicitly at the end of a request.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, ClassVar, TypeVar

from flask import Flask, current_app, g, has_request_context, request
from sqlalchemy import Connection, DateTime, Engine, MetaData, create_engine, event
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.pool import StaticPool
from sqlalchemy.types import TypeDecorator

F = TypeVar("F")

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
    """The engine of ``url``. PostgreSQL: a pool whose connections are tested before use and renewed every half
    hour (a database restart or a dropped connection costs one 503, see proapp/web.py). SQLite: see
    `_sqlite_connection`."""
    if not url.startswith("sqlite"):
        return create_engine(url, pool_pre_ping=True, pool_recycle=1800)
    kwargs: dict[str, Any] = {"connect_args": {"timeout": 30}}
    if url in ("sqlite://", "sqlite:///:memory:"):
        kwargs["poolclass"] = StaticPool
        kwargs["connect_args"]["check_same_thread"] = False
    engine = create_engine(url, **kwargs)
    event.listen(engine, "connect", _sqlite_connection)
    event.listen(engine, "begin", _sqlite_begin)
    return engine


def _sqlite_connection(dbapi_connection: Any, _record: Any) -> None:
    """SQLite as a multi-process server needs it: WAL (readers never wait for the writer), every commit on disk
    before it returns (``synchronous=FULL``: an answer the patient saw saved survives a power cut), foreign keys,
    and up to 30 s of waiting for the write lock. pysqlite's own BEGIN is turned off so that `_sqlite_begin`
    starts transactions (SQLAlchemy's documented recipe)."""
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
    finally:
        cursor.close()


def _sqlite_begin(conn: Connection) -> None:
    """A writer's transaction takes SQLite's write lock when it begins (BEGIN IMMEDIATE), so writers queue in the
    busy handler; with a plain BEGIN, a transaction that has read fails at once ("database is locked") when it
    then writes after another writer committed meanwhile. Writers are the sessions of requests (but the pages
    declared `read_only`) and of `transaction` (jobs, commands). Other transactions begin deferred: readers never
    wait (WAL). SQLite serves development, the demo and the tests; production runs on PostgreSQL, where this
    changes nothing."""
    conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get(WRITES) else "BEGIN")


WRITES = "proapp_writes"        # execution option of a writing request's connections
READER = "proapp.reader_engine"


def init_app(app: Flask) -> None:
    engine = make_engine(app.config["DATABASE_URL"])
    app.extensions["proapp.engine"] = engine
    app.extensions["proapp.sessionmaker"] = sessionmaker(bind=engine, expire_on_commit=False)
    app.extensions["proapp.writer_engine"] = engine.execution_options(**{WRITES: True})
    # The pages declared `read_only`: on PostgreSQL their transactions are READ ONLY (psycopg begins them so, in
    # the same round trip), which makes it safe to end them with a commit; see `_close_session`.
    app.extensions[READER] = (engine.execution_options(postgresql_readonly=True)
                              if engine.dialect.name == "postgresql" else engine)
    app.teardown_appcontext(_close_session)


def engine() -> Engine:
    return current_app.extensions["proapp.engine"]


def read_only(view: F) -> F:
    """Declares a view whose GET and HEAD requests never write (the patient's question pages): on SQLite their
    transactions do not take the write lock (see `_sqlite_begin`)."""
    view.read_only = True  # type: ignore[attr-defined]
    return view


def _request_writes() -> bool:
    view = current_app.view_functions.get(request.endpoint or "")
    return not (request.method in ("GET", "HEAD") and getattr(view, "read_only", False))


def session(*, writes: bool = False) -> Session:
    """The session of the current app context (one per request, CLI command or job run). It is a writer (see
    `_sqlite_begin`) in a request, unless the page is declared `read_only`, and when ``writes`` asks for it."""
    if "db_session" not in g:
        make = current_app.extensions["proapp.sessionmaker"]
        if writes or (has_request_context() and _request_writes()):
            g.db_session = make(bind=current_app.extensions["proapp.writer_engine"])
        elif has_request_context():
            g.db_session = make(bind=current_app.extensions[READER])
            g.db_reads_only = True
        else:
            g.db_session = make()
    return g.db_session


def _close_session(_exc: BaseException | None) -> None:
    """End of request: nothing uncommitted survives. If the database went away meanwhile, the connection is
    simply dropped: the answer already computed must not turn into a 500 (seen under load with an outage)."""
    held = g.pop("db_session", None)
    if held is None:
        return
    try:
        if g.pop("db_reads_only", False) and _exc is None:
            # A read-only page's transaction ends with a commit, not a rollback: psycopg forgets every prepared
            # statement of the connection on a rollback, so the visit's query would be planned again on each
            # page (most of the database's time for a question page, docs/benchmarks.md). Its transaction is
            # READ ONLY on PostgreSQL, so the commit cannot store anything.
            held.commit()
        held.close()        # rolls back what was not committed; the connection goes back to the pool
    except Exception:
        import logging

        logging.getLogger("proapp").warning("database connection lost at the end of a request")
        held.invalidate()
        held.close()


@contextmanager
def transaction() -> Iterator[Session]:
    """Commit the current session on success, roll back on any error (a writer: see `_sqlite_begin`)."""
    s = session(writes=True)
    try:
        yield s
        s.commit()
    except BaseException:
        s.rollback()
        raise
