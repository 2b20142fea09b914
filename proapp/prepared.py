"""Prebuilt statements of the patient's hot path, run straight on the driver's cursor.

Every tap of a patient runs the same few statements: read the visit and the answers; store an answer, the
navigation state and the audit entry. Around each one, SQLAlchemy builds an execution context, looks up its
compiled form, fires events and wraps a result object: 20 to 35 us a statement, about a seventh of a question
page and of an answer. `Prepared` keeps what SQLAlchemy compiles once per database and driver (the SQL text,
the parameter order and SQLAlchemy's own bind and result processors of each column's type) and each call only
binds, executes and converts.

A statement runs on the cursor of the SQLAlchemy connection it is given, so it is part of that connection's
transaction (or autocommit reads). Errors of the driver are raised as SQLAlchemy's exceptions, as
``Connection.execute`` would (the web layer turns a lost database into a 503), and a connection found dead is
invalidated so that the pool replaces it. Statements that SQLAlchemy expands at execution time (``IN`` lists,
literal execution) are refused when prepared. ``tests/test_prepared.py`` checks each hot statement against
``Connection.execute`` on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.base import Executable

Processor = Callable[[Any], Any] | None


_REQUIRED = object()


@dataclass
class _Compiled:
    sql: str
    # One entry per parameter of the SQL, in the driver's order: (name in the SQL, key in the caller's
    # parameters, value when the caller gives none (or _REQUIRED), SQLAlchemy's bind processor of its type).
    binds: list[tuple[str, str, Any, Processor]]
    positional: bool
    result_types: list[Any]
    result: list[Processor] | None = None           # built at the first run, from the cursor's description


class Prepared:
    """A Core statement run with SQLAlchemy's compilation and types, without its per-call machinery."""

    def __init__(self, statement: Executable) -> None:
        self.statement = statement
        self._by_dialect: dict[tuple[str, str], _Compiled] = {}      # (database, driver)

    def _compiled(self, dialect: Dialect) -> _Compiled:
        found = self._by_dialect.get((dialect.name, dialect.driver))
        if found is None:
            compiled: Any = self.statement.compile(dialect=dialect)
            if compiled.post_compile_params or compiled.literal_execute_params:
                raise ValueError("statements expanded at execution time cannot be prepared")
            binds = []
            for name in compiled.positiontup or compiled.binds:
                bp = compiled.binds[name]
                if bp.callable is not None:
                    raise ValueError("parameters computed at execution time cannot be prepared")
                # As SQLAlchemy's construct_params: the caller's value, else the statement's own.
                fallback = _REQUIRED if bp.required else bp.value
                binds.append((name, bp.key, fallback, bp.type.dialect_impl(dialect).bind_processor(dialect)))
            columns = getattr(self.statement, "exported_columns", ())
            found = _Compiled(compiled.string, binds, compiled.positiontup is not None, [c.type for c in columns])
            self._by_dialect[(dialect.name, dialect.driver)] = found
        return found

    @staticmethod
    def _parameters(c: _Compiled, params: Mapping[str, Any]) -> Any:
        values = []
        for name, key, fallback, proc in c.binds:
            value = params[key] if key in params else params.get(name, fallback)
            if value is _REQUIRED:
                raise sa_exc.InvalidRequestError(f"A value is required for bind parameter {key!r}")
            values.append(value if proc is None else proc(value))
        if c.positional:
            return values
        return {b[0]: v for b, v in zip(c.binds, values, strict=True)}

    def _run(self, conn: Connection, params: Mapping[str, Any] | Sequence[Mapping[str, Any]],
             many: bool = False) -> tuple[list[tuple[Any, ...]], int]:
        dialect = conn.dialect
        c = self._compiled(dialect)
        driver_params: Any = ([self._parameters(c, p) for p in params] if many  # type: ignore[union-attr]
                              else self._parameters(c, params))  # type: ignore[arg-type]
        proxied = conn.connection
        cursor = proxied.driver_connection.cursor()  # type: ignore[union-attr]
        dbapi_error = dialect.loaded_dbapi.Error
        try:
            if many:
                cursor.executemany(c.sql, driver_params)
            else:
                cursor.execute(c.sql, driver_params)
            description = cursor.description
            # An INSERT may come back with the primary key SQLAlchemy added as RETURNING (PostgreSQL): unused.
            rows = cursor.fetchall() if description and c.result_types else []
            count = cursor.rowcount
        except dbapi_error as err:
            gone = dialect.is_disconnect(err, proxied, cursor)
            if gone:
                conn.invalidate(err)
            raise sa_exc.DBAPIError.instance(c.sql, driver_params, err, dbapi_error, connection_invalidated=gone,
                                             dialect=dialect) from err
        finally:
            cursor.close()
        if rows:
            if c.result is None:
                c.result = [t.dialect_impl(dialect).result_processor(dialect, d[1])
                            for t, d in zip(c.result_types, description, strict=True)]
            procs = c.result
            if any(procs):
                rows = [tuple(v if p is None else p(v) for p, v in zip(procs, row, strict=True)) for row in rows]
            else:
                rows = [tuple(row) for row in rows]
        return rows, count

    def rows(self, conn: Connection, params: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:
        """Every row of a query (or of a RETURNING)."""
        return self._run(conn, params or {})[0]

    def first(self, conn: Connection, params: Mapping[str, Any] | None = None) -> tuple[Any, ...] | None:
        rows = self._run(conn, params or {})[0]
        return rows[0] if rows else None

    def run(self, conn: Connection, params: Mapping[str, Any] | None = None) -> int:
        """An INSERT, UPDATE or DELETE; the number of rows it touched."""
        return self._run(conn, params or {})[1]

    def run_many(self, conn: Connection, params: Sequence[Mapping[str, Any]]) -> None:
        """The same INSERT for several rows."""
        if params:
            self._run(conn, params, many=True)
