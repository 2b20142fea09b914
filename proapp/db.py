"""Database plumbing: the declarative base, a UTC datetime type and the per-app-context session.

Services receive a ``Session`` and only ``flush``; the caller (a route, a CLI command or a job)
decides when the unit of work commits. Nothing commits implicitly at the end of a request.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from time import monotonic
from typing import Any, ClassVar

from flask import Flask, current_app, g, has_request_context
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
        # Every commit reaches the disk before commit() returns: an answer the patient saw saved survives a power
        # cut. SQLite's own flush ("FULL") would happen while the writer holds the lock; the connection flushes
        # the WAL itself right after the lock is free instead (proapp/sqlite_gate.py), so SQLite is told NORMAL.
        flushes_itself = getattr(dbapi_connection, "flushes_its_commits", False)
        cursor.execute("PRAGMA synchronous=NORMAL" if flushes_itself else "PRAGMA synchronous=FULL")
    finally:
        cursor.close()


def init_app(app: Flask) -> None:
    from proapp.audit.services import install

    install()
    engine = make_engine(app.config["DATABASE_URL"])
    app.extensions["proapp.engine"] = engine
    app.extensions["proapp.sessionmaker"] = sessionmaker(bind=engine, expire_on_commit=False)
    readers = app.extensions["proapp.readers"] = _Kept()
    writers = app.extensions["proapp.writers"] = _Kept()
    event.listen(engine, "engine_disposed", lambda _engine: (readers.close_all(), writers.close_all()))
    app.teardown_appcontext(_close_session)


def engine() -> Engine:
    return current_app.extensions["proapp.engine"]


def session() -> Session:
    """The session of the current app context (one per request, CLI command or job run). In a request it works
    on this thread's kept writer connection (no pool check-out and ping for every answer), unless another
    session of this thread has a transaction open on it; then, as outside requests, on a pool connection."""
    if "db_session" not in g:
        make = current_app.extensions["proapp.sessionmaker"]
        conn = _kept_writer() if has_request_context() else None
        if conn is not None:
            g.db_writer = conn
            g.db_session = make(bind=conn)
        else:
            g.db_session = make()
    return g.db_session


def _kept_writer() -> Connection | None:
    kept: _Kept = current_app.extensions["proapp.writers"]
    conn = kept.get()
    if conn is None:
        conn = current_app.extensions["proapp.engine"].connect()
        kept.keep(conn)
    elif conn.in_transaction():
        return None
    return conn


KEPT_IDLE_SECONDS = 1.0


class _Kept:
    """Each thread's kept connection (the reader, see `reader`; the writer, see `session`), and all of them, to
    close them when the engine is disposed (shutdown, tests)."""

    def __init__(self) -> None:
        self._mine = threading.local()
        # Weak: when a thread ends (a threaded server may start one per request), its connection is given back
        # to the pool as the thread's locals go (SQLAlchemy checks in a collected connection).
        self._all: weakref.WeakSet[Connection] = weakref.WeakSet()
        self._lock = threading.Lock()

    def get(self) -> Connection | None:
        """This thread's connection, unless it was dropped or has been idle too long (then it is closed)."""
        conn = getattr(self._mine, "conn", None)
        if conn is not None and (conn.closed or conn.invalidated
                                 or monotonic() - self._mine.last_used > KEPT_IDLE_SECONDS):
            self.forget()
            conn = None
        return conn

    def keep(self, conn: Connection) -> None:
        self._mine.conn, self._mine.last_used = conn, monotonic()
        with self._lock:
            self._all.add(conn)

    def used(self) -> None:
        self._mine.last_used = monotonic()

    def forget(self) -> None:
        conn = getattr(self._mine, "conn", None)
        self._mine.conn = None
        if conn is not None:
            with self._lock:
                self._all.discard(conn)
            _drop(conn)

    def close_all(self) -> None:
        """After the engine was disposed: its pool is gone, so each kept driver connection is closed outright
        (invalidated) rather than given back."""
        with self._lock:
            everyone, self._all = list(self._all), weakref.WeakSet()
        for conn in everyone:
            if not conn.closed:
                conn.invalidate()
                conn.close()
        self._mine.conn = None


def reader() -> Connection:
    """A Core connection for this request's reads. Once the request has an ORM session (it writes), that
    session's own connection, so reads and writes share one transaction; otherwise this thread's reader: a
    connection kept from one request to the next (no pool check-out, ping and reset on every patient page),
    autocommit on PostgreSQL. A connection left idle for KEPT_IDLE_SECONDS goes back to the pool, whose next
    check-out tests it, and one the database dropped is replaced at the end of the request."""
    if "db_session" in g:
        return g.db_session.connection()
    conn = g.get("db_reader")
    if conn is None:
        kept: _Kept = current_app.extensions["proapp.readers"]
        conn = kept.get()
        if conn is None:
            conn = current_app.extensions["proapp.engine"].connect()
            if conn.dialect.name == "postgresql":
                # Reads only: no BEGIN before them and no ROLLBACK after (two round trips fewer on every patient
                # page). Each statement sees what was committed when it ran, as it would inside a READ COMMITTED
                # transaction.
                conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            kept.keep(conn)
        g.db_reader = conn
    return conn


def _drop(conn: Connection) -> None:
    try:
        conn.close()
    except Exception:
        conn.invalidate()
        conn.close()


def _end_use(conn: Connection, kept: _Kept) -> None:
    """End of a request that used one of this thread's kept connections: nothing stays open on it (SQLite: no
    read transaction holding back the WAL); one that failed is given up."""
    try:
        if conn.invalidated:
            raise ConnectionError("the database dropped this connection")
        if conn.in_transaction():
            conn.rollback()
        kept.used()
    except Exception:
        import logging

        logging.getLogger("proapp").warning("kept connection given up at the end of a request")
        kept.forget()


def _close_session(_exc: BaseException | None) -> None:
    """End of request: nothing uncommitted survives. If the database went away meanwhile, the connection is
    simply dropped: the answer already computed must not turn into a 500 (seen under load with an outage)."""
    reads = g.pop("db_reader", None)
    if reads is not None:
        _end_use(reads, current_app.extensions["proapp.readers"])
    held = g.pop("db_session", None)
    writer = g.pop("db_writer", None)
    if held is not None:
        try:
            held.close()    # rolls back what was not committed; a pool connection goes back to the pool
        except Exception:
            import logging

            logging.getLogger("proapp").warning("database connection lost at the end of a request")
            held.invalidate()
            held.close()
    if writer is not None:
        _end_use(writer, current_app.extensions["proapp.writers"])


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
