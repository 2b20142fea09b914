"""The embedded database's settings: what makes an acknowledged answer durable and consistent on SQLite."""

from sqlalchemy import text

from proapp.db import make_engine


def test_sqlite_commits_reach_the_disk_and_keep_foreign_keys(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'durable.sqlite3'}")
    try:
        with engine.connect() as conn:
            assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            assert conn.execute(text("PRAGMA synchronous")).scalar() == 2        # FULL: fsync at every commit
            assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
            assert conn.execute(text("PRAGMA busy_timeout")).scalar() == 30000
    finally:
        engine.dispose()
