"""Writers to one SQLite file take turns through a lock file, instead of SQLite's sleeping busy handler.

SQLite lets one connection write at a time. A connection that finds the database busy calls its busy handler,
which sleeps 1, 2, 5, 10, 15, 20, 25 ... ms between tries (Python's ``sqlite3`` offers no other handler). A
patient's answer holds the write lock for well under a millisecond (a few statements and the commit's fsync),
so a writer that arrived a moment too late slept several times longer than the wait it needed, and under load
the gunicorn workers spent more time asleep than writing (measured in ``tests/benchmarks/bench_rps.py`` and in
the README).

Here every connection to the same file first takes an exclusive ``flock`` on ``<database>-writer`` before the
statement that opens its write transaction, and gives it back as soon as the transaction ends (commit, rollback,
close, or a ``RELEASE`` that ended it). A waiting writer tries again every 50 us for 2 ms, then less often, so it goes
as soon as the other has committed. SQLite's own locking is unchanged underneath: a program that does not use the
gate (the ``sqlite3`` shell, a backup) is still waited for by the busy handler, and the gate gives up with the
same "database is locked" error as SQLite after the connection's timeout.

Reads never take the gate (WAL: readers do not wait for the writer). Only plain database files have a gate; an
in-memory database has one connection.

Durable commits, with the disk flush outside the gate (group commit). With ``synchronous=FULL`` SQLite flushes
the WAL to disk inside the commit, while the writer still holds the lock: about 0.3 ms of every answer during
which no other answer could be written. These connections run with ``synchronous=NORMAL`` (SQLite flushes only
at checkpoints) and flush the WAL themselves (``fsync``) right after a write transaction has committed and the
gate is free, before ``commit()`` returns. So a commit the application sees return, and every answer it
acknowledges, is on disk, as with FULL; meanwhile the next writer is already writing, and one flush often covers
several commits. The difference with FULL: for that fraction of a millisecond another connection can read a
commit that is not yet on disk; a power cut in that instant loses it (never acknowledged to its writer), as it
loses any commit still in progress. WAL frames are checksummed and replayed in order, so a later commit is never
kept without an earlier one.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import time
from typing import Any

# Statements after which pysqlite (or SQLite) has a transaction open that will write, or may.
_OPENS_WRITE = ("INSERT", "UPDATE", "DELETE", "REPLACE", "SAVEPOINT", "BEGIN")
# A waiting writer looks again every 50 us during the first 2 ms (an answer holds the gate for about 0.2 ms), then
# less and less often, up to every 1 ms.
_SHORT_WAIT, _SHORT_WAITS_FOR, _LONGEST_WAIT = 0.00005, 0.002, 0.001
# As SQLite itself flushes its files on Linux: the data and the size, not the modification time.
_flush = getattr(os, "fdatasync", os.fsync)


def gate_path(database: str) -> str | None:
    """The lock file for a database path, or None for an in-memory or URI database (no gate)."""
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return f"{database}-writer"


def wal_path(database: str) -> str:
    return f"{database}-wal"


class GatedConnection(sqlite3.Connection):
    """A ``sqlite3`` connection whose write transactions take the database's writer gate first."""

    def __init__(self, database: Any, timeout: float = 5.0, *args: Any, **kwargs: Any) -> None:
        super().__init__(database, timeout, *args, **kwargs)
        path = os.fsdecode(database) if isinstance(database, str | bytes | os.PathLike) else ""
        self._gate_path = gate_path(path)
        self._wal_path = wal_path(path)
        self._gate_timeout = timeout
        self._gate_fd: int | None = None          # opened at the first write (read-only connections need none)
        self._gate_held = False

    @property
    def flushes_its_commits(self) -> bool:
        """Whether this connection puts its write commits on disk itself (then SQLite may run NORMAL)."""
        return self._gate_path is not None

    def cursor(self, factory: Any = None) -> sqlite3.Cursor:  # type: ignore[override]
        return super().cursor(factory or GatedCursor)

    # sqlite3's shortcuts would run the statement without the cursor's execute (SQLAlchemy uses cursors).
    def execute(self, sql: str, parameters: Any = (), /) -> sqlite3.Cursor:  # type: ignore[override]
        return self.cursor().execute(sql, parameters)

    def executemany(self, sql: str, seq_of_parameters: Any, /) -> sqlite3.Cursor:  # type: ignore[override]
        return self.cursor().executemany(sql, seq_of_parameters)

    # Taking and giving back -----------------------------------------------------------------------------------

    def _gate_before(self, sql: str) -> None:
        if self._gate_held or self._gate_path is None or self.in_transaction:
            return
        if sql.lstrip()[:9].upper().startswith(_OPENS_WRITE):
            self._take_gate()

    def _gate_after(self) -> None:
        if self._gate_held and not self.in_transaction:
            self._give_back_gate()

    def _fd(self) -> int:
        if self._gate_fd is None:
            self._gate_fd = os.open(self._gate_path, os.O_RDWR | os.O_CREAT, 0o600)  # type: ignore[arg-type]
        return self._gate_fd

    def _take_gate(self) -> None:
        fd = self._fd()
        start = time.monotonic()
        wait, deadline = _SHORT_WAIT, start + self._gate_timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                now = time.monotonic()
                if now >= deadline:
                    raise sqlite3.OperationalError("database is locked") from None
                time.sleep(wait)
                if now - start > _SHORT_WAITS_FOR:
                    wait = min(wait * 2, _LONGEST_WAIT)
        self._gate_held = True

    def _give_back_gate(self) -> None:
        self._gate_held = False
        fcntl.flock(self._fd(), fcntl.LOCK_UN)

    # The ends of a transaction ------------------------------------------------------------------------------

    def commit(self) -> None:
        wrote = self._gate_held
        try:
            super().commit()
        finally:
            self._gate_after()
        if wrote:
            self._flush_wal()

    def _flush_wal(self) -> None:
        """Put this commit on disk (and any commit before it). Opened each time: SQLite may delete and recreate
        the WAL file; a missing WAL means a checkpoint already copied everything into the flushed database."""
        try:
            fd = os.open(self._wal_path, os.O_RDONLY)
        except FileNotFoundError:
            return
        try:
            _flush(fd)
        finally:
            os.close(fd)

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            self._gate_after()

    def close(self) -> None:
        try:
            super().close()
        finally:
            if self._gate_held:
                self._give_back_gate()
            if self._gate_fd is not None:
                os.close(self._gate_fd)
                self._gate_fd = None


class GatedCursor(sqlite3.Cursor):
    connection: GatedConnection

    def execute(self, sql: str, parameters: Any = (), /) -> sqlite3.Cursor:  # type: ignore[override]
        conn = self.connection
        conn._gate_before(sql)
        try:
            return super().execute(sql, parameters)
        finally:
            conn._gate_after()

    def executemany(self, sql: str, seq_of_parameters: Any, /) -> sqlite3.Cursor:  # type: ignore[override]
        conn = self.connection
        conn._gate_before(sql)
        try:
            return super().executemany(sql, seq_of_parameters)
        finally:
            conn._gate_after()
