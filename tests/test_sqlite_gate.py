"""The SQLite writer gate: writers take turns through a lock file beside the database, readers never wait, and
the gate is given back however a write transaction ends."""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from proapp.db import make_engine
from proapp.sqlite_gate import GatedConnection, gate_path

SHORT = 0.2       # seconds: a connection that would need the gate longer than this fails with "database is locked"


def _connect(path: Path, timeout: float = 30) -> GatedConnection:
    conn = sqlite3.connect(path, timeout=timeout, factory=GatedConnection)
    conn.execute("PRAGMA journal_mode=WAL")
    return conn


@pytest.fixture
def database(tmp_path: Path) -> Path:
    path = tmp_path / "gate.sqlite3"
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT UNIQUE)")
    conn.commit()
    conn.close()
    return path


def _can_write_now(path: Path) -> bool:
    other = _connect(path, timeout=SHORT)
    try:
        other.execute("INSERT INTO t (v) VALUES (?)", (f"probe-{time.monotonic_ns()}",))
        other.rollback()
        return True
    except sqlite3.OperationalError as exc:
        assert "database is locked" in str(exc)
        return False
    finally:
        other.close()


def _gate_taken(path: Path) -> bool:
    fd = os.open(gate_path(str(path)), os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def test_the_engine_of_a_database_file_uses_the_gate(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'app.sqlite3'}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY)"))
        conn.execute(text("INSERT INTO t DEFAULT VALUES"))
        assert isinstance(conn.connection.driver_connection, GatedConnection)
    engine.dispose()
    assert Path(gate_path(str(tmp_path / "app.sqlite3"))).exists()


def test_an_in_memory_database_has_no_gate() -> None:
    assert gate_path(":memory:") is None and gate_path("") is None
    conn = sqlite3.connect(":memory:", factory=GatedConnection)
    conn.execute("CREATE TABLE t (v)")
    conn.execute("INSERT INTO t VALUES (1)")
    conn.commit()
    conn.close()


def test_a_writer_waits_for_the_other_to_commit_then_writes(database: Path) -> None:
    first = _connect(database)
    first.execute("INSERT INTO t (v) VALUES ('first')")             # holds the gate until its commit
    done: list[float] = []

    def second_writer() -> None:
        second = _connect(database)
        second.execute("INSERT INTO t (v) VALUES ('second')")
        second.commit()
        done.append(time.monotonic())
        second.close()

    thread = threading.Thread(target=second_writer)
    thread.start()
    time.sleep(0.3)
    assert not done                                                  # still waiting
    committed_at = time.monotonic()
    first.commit()
    thread.join(10)
    assert done and done[0] >= committed_at
    rows = first.execute("SELECT v FROM t ORDER BY id").fetchall()
    assert rows == [("first",), ("second",)]
    first.close()


def test_a_writer_that_waits_longer_than_its_timeout_gets_database_is_locked(database: Path) -> None:
    holder = _connect(database)
    holder.execute("INSERT INTO t (v) VALUES ('held')")
    assert not _can_write_now(database)
    holder.rollback()
    assert _can_write_now(database)
    holder.close()


def test_readers_never_wait_for_the_gate(database: Path) -> None:
    writer = _connect(database)
    writer.execute("INSERT INTO t (v) VALUES ('uncommitted')")
    reader = _connect(database, timeout=SHORT)
    assert reader.execute("SELECT count(*) FROM t").fetchone() == (0,)   # WAL: the last committed state
    writer.commit()
    reader.execute("SELECT v FROM t").fetchall()
    assert not _gate_taken(database)
    assert reader.execute("SELECT count(*) FROM t").fetchone() == (1,)
    reader.close()
    writer.close()


@pytest.mark.parametrize("ending", ["commit", "rollback", "close", "failed statement", "released savepoint"])
def test_the_gate_is_given_back_however_the_write_transaction_ends(database: Path, ending: str) -> None:
    conn = _connect(database)
    conn.execute("INSERT INTO t (v) VALUES ('taken')")
    conn.commit()
    if ending == "failed statement":
        # The first statement of a transaction fails: pysqlite opened the transaction, the rollback ends it.
        with pytest.raises(sqlite3.IntegrityError):
            conn.execute("INSERT INTO t (v) VALUES ('taken')")
        assert _gate_taken(database) and not _can_write_now(database)
        conn.rollback()
    elif ending == "released savepoint":
        conn.execute("SAVEPOINT s1")                  # opens the transaction ...
        conn.execute("INSERT INTO t (v) VALUES ('in savepoint')")
        assert _gate_taken(database) and not _can_write_now(database)
        conn.execute("RELEASE SAVEPOINT s1")          # ... and releasing it commits and ends it
    else:
        conn.execute("INSERT INTO t (v) VALUES ('pending')")
        assert _gate_taken(database) and not _can_write_now(database)
        getattr(conn, ending)()
    assert not _gate_taken(database) and _can_write_now(database)
    if ending != "close":
        conn.close()


def test_many_writers_in_threads_lose_nothing(database: Path) -> None:
    def writer(k: int) -> None:
        conn = _connect(database)
        for i in range(50):
            conn.execute("INSERT INTO t (v) VALUES (?)", (f"{k}-{i}",))
            if i % 7 == 0:
                conn.rollback()
            else:
                conn.commit()
        conn.close()

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    conn = _connect(database)
    values = {v for (v,) in conn.execute("SELECT v FROM t")}
    assert values == {f"{k}-{i}" for k in range(4) for i in range(50) if i % 7}
    conn.close()


def _flushes(monkeypatch) -> list[tuple[str, bool]]:
    """Record each flush (fdatasync): (file flushed, whether the writer gate was still taken at that moment)."""
    from proapp import sqlite_gate

    calls: list[tuple[str, bool]] = []
    real_flush = sqlite_gate._flush

    def flush(fd: int) -> None:
        path = os.readlink(f"/proc/self/fd/{fd}")
        calls.append((path, _gate_taken(Path(path.removesuffix("-wal")))))
        real_flush(fd)

    monkeypatch.setattr(sqlite_gate, "_flush", flush)
    return calls


def test_a_write_commit_is_flushed_to_disk_after_the_gate_is_free_and_before_commit_returns(database, monkeypatch):
    conn = _connect(database)
    conn.execute("PRAGMA synchronous=NORMAL")
    flushes = _flushes(monkeypatch)
    conn.execute("INSERT INTO t (v) VALUES ('kept')")
    assert flushes == []
    conn.commit()
    assert flushes == [(f"{database}-wal", False)]         # the WAL, flushed once the next writer could go on
    conn.close()


def test_reads_and_rolled_back_writes_flush_nothing(database, monkeypatch):
    conn = _connect(database)
    flushes = _flushes(monkeypatch)
    conn.execute("SELECT count(*) FROM t").fetchall()
    conn.commit()
    conn.execute("INSERT INTO t (v) VALUES ('dropped')")
    conn.rollback()
    assert flushes == []
    conn.close()


def test_a_failed_commit_flushes_nothing_and_gives_the_gate_back(database, monkeypatch):
    conn = _connect(database)
    conn.execute("CREATE TABLE parent (id INTEGER PRIMARY KEY)")
    conn.execute("CREATE TABLE child (p INTEGER REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED)")
    conn.commit()
    conn.execute("PRAGMA foreign_keys=ON")
    flushes = _flushes(monkeypatch)
    conn.execute("INSERT INTO child (p) VALUES (42)")      # checked at commit (deferred): refused there
    with pytest.raises(sqlite3.IntegrityError):
        conn.commit()
    conn.rollback()
    assert flushes == [] and not _gate_taken(database)
    conn.close()
