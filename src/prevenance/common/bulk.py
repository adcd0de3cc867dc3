"""Multi-row inserts handed straight to the driver, for bulk imports.

SQLAlchemy's ``execute(insert(table), rows)`` rebuilds the parameters of every row through its
statement machinery, which costs more than the database's insert at tens of thousands of rows.
On SQLite each value is still bound by its column type's own processor (what SQLAlchemy would send:
naive UTC datetimes, JSON text), once per value, and the rows go to the driver as a few multi-row
statements. Other databases keep SQLAlchemy's path (PostgreSQL's needs its bind casts, e.g. for JSON).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_for
from itertools import chain
from operator import itemgetter
from typing import Any

from sqlalchemy import Connection, Table, insert
from sqlalchemy.orm import Session

_UNSEEN = object()
_PORTABLE_VARIABLES = 999
"""SQLite's historical limit of bound variables per statement, when the driver cannot say its own."""

Statement = tuple[str, list[Any]]
"""A driver-level statement and its flat list of parameters."""


def insert_many(connection: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """INSERT ``rows`` (dicts with the same keys, column names of ``table``), on SQLite as a few
    multi-row statements (``insert_statements``)."""
    if not rows:
        return
    if connection.dialect.name != "sqlite":
        connection.execute(insert(table), list(rows))
        return
    run_statements(connection, insert_statements(connection, table, rows))


def run_statements(connection: Connection, statements: Sequence[Statement]) -> None:
    """Run driver-level statements, in order, on ``connection``."""
    for sql, params in statements:
        connection.exec_driver_sql(sql, tuple(params))


def insert_statements(
    connection: Connection, table: Table, rows: Sequence[dict[str, Any]]
) -> list[Statement]:
    """SQLite ``INSERT … VALUES (…), (…), …`` statements holding ``rows``, each with as many rows as
    the driver's limit of bound variables allows.

    One multi-row statement costs SQLite less than as many single-row steps of ``executemany``, and
    the driver releases the GIL for the whole of it (``BackgroundWriter`` relies on that). Each value
    is bound by its column type's own processor, as SQLAlchemy's insert would (a test compares the
    stored bytes)."""
    dialect = connection.dialect
    names = list(rows[0])
    quote = dialect.identifier_preparer.quote
    mark = "?" if dialect.paramstyle == "qmark" else "%s"
    head = (
        f"INSERT INTO {dialect.identifier_preparer.format_table(table)} "
        f"({', '.join(quote(name) for name in names)}) VALUES "
    )
    group = f"({', '.join([mark] * len(names))})"
    values = _bound_values(dialect, table, names, rows)
    per_statement = max(1, _variable_limit(connection) // len(names))
    statements: list[Statement] = []
    for first in range(0, len(rows), per_statement):
        count = min(per_statement, len(rows) - first)
        flat = values[first * len(names) : (first + count) * len(names)]
        statements.append((head + ", ".join([group] * count), flat))
    return statements


def _bound_values(dialect: Any, table: Table, names: list[str], rows: Sequence[dict[str, Any]]) -> list[Any]:
    """The rows' values, row after row, each through its column's bind processor (built column by
    column, so a column without a processor costs one ``map`` in C)."""
    columns: list[list[Any]] = []
    for name in names:
        column = list(map(itemgetter(name), rows))
        process = table.c[name].type.bind_processor(dialect)
        columns.append(column if process is None else _processed(column, process))
    return list(chain.from_iterable(zip(*columns, strict=True)))


def _processed(column: list[Any], process: Callable[[Any], Any]) -> list[Any]:
    """``process`` of each value; a value shared by consecutive rows (the batch's ``now``, its event
    type) is processed once."""
    out: list[Any] = []
    seen: Any = _UNSEEN
    done: Any = None
    for value in column:
        if value is not seen:
            seen, done = value, process(value)
        out.append(done)
    return out


def _variable_limit(connection: Connection) -> int:
    driver = connection.connection.driver_connection
    getlimit = getattr(driver, "getlimit", None)
    if getlimit is None:
        return _PORTABLE_VARIABLES
    return int(getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER))


class BackgroundWriter:
    """Runs a bulk load's statements on its connection in a thread of their own, one batch at a
    time, while the caller prepares the next batch.

    SQLite's driver releases the GIL while SQLite executes a statement, so the database's work and
    the Python that checks and builds the next rows overlap on two cores. The caller owns the order:
    it must not use the connection between ``submit`` and the next ``wait`` (the writer is its only
    user then), and ``wait`` re-raises in the caller whatever the writer's statements raised."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self._pending: Future[None] | None = None
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bulk-writer")

    def submit(self, statements: list[Statement]) -> None:
        self.wait()
        self._pending = self._pool.submit(run_statements, self.connection, statements)

    def wait(self) -> None:
        """Until the submitted statements have run (their error raised here)."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def __enter__(self) -> BackgroundWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if exc[0] is None:
                self.wait()
            else:  # the caller's error wins; the writer's statements are rolled back with it
                pending, self._pending = self._pending, None
                if pending is not None:
                    wait_for([pending])
        finally:
            self._pool.shutdown(wait=True)


def rows_changed(result: Any) -> int:
    """How many rows an ``UPDATE`` or ``DELETE`` changed (``Session.execute`` types its result as a
    plain ``Result``, which does not declare the ``rowcount`` its cursor result has)."""
    return int(getattr(result, "rowcount", 0) or 0)


def tune_for_bulk(session: Session, *, cache_mib: int = 256) -> None:
    """Give SQLite a page cache the size of a bulk load's working set (settlement files, survey imports).

    The default (2 MiB) holds a sliver of the indexes a load appends to at random places (a
    member's postings, a random event id), so past a few hundred thousand rows nearly every insert
    re-reads index pages from the operating system. The setting belongs to the connection (the
    cache fills only as pages are used, up to ``cache_mib``) and is harmless for the API's use of it
    afterwards.
    """
    if session.get_bind().dialect.name == "sqlite":
        session.connection().exec_driver_sql(f"PRAGMA cache_size = -{cache_mib * 1024}")
