"""Multi-row inserts handed straight to the driver, for bulk imports.

SQLAlchemy's ``execute(insert(table), rows)`` rebuilds the parameters of every row through its
statement machinery, which costs more than the database's insert at tens of thousands of rows.
Each value is still bound by its column type's own processor (what SQLAlchemy would send: on SQLite
naive UTC datetimes and JSON text, on PostgreSQL psycopg's JSON wrapper), once per value, and the rows
go to the driver as a few multi-row statements on SQLite, as one ``COPY … FROM STDIN`` on PostgreSQL.
Other databases keep SQLAlchemy's path.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Sequence
from itertools import chain
from operator import itemgetter
from typing import Any

from sqlalchemy import Connection, Table, insert
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

_UNSEEN = object()
_PORTABLE_VARIABLES = 999
"""SQLite's historical limit of bound variables per statement, when the driver cannot say its own."""

_OLD_COMPOUND_LIMIT = 500
"""Rows of one ``VALUES`` clause that SQLite before 3.8.8 accepted (its compound SELECT limit)."""

Statement = tuple[str, tuple[Any, ...]]
"""A driver-level statement and its parameters, row after row."""


def insert_many(connection: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """INSERT ``rows`` (dicts with the same keys, column names of ``table``), on SQLite as a few
    multi-row statements (``insert_statements``), on PostgreSQL by ``COPY`` (``copy_rows``)."""
    if not rows:
        return
    dialect = connection.dialect
    if dialect.name == "postgresql" and dialect.driver == "psycopg":
        names = list(rows[0])
        copy_rows(connection, table, names, zip(*_bound_columns(dialect, table, names, rows), strict=True))
        return
    if dialect.name != "sqlite":
        connection.execute(insert(table), list(rows))
        return
    run_statements(connection, insert_statements(connection, table, rows))


def copy_rows(
    connection: Connection, table: Table, names: Sequence[str], rows: Iterable[Sequence[Any]]
) -> None:
    """PostgreSQL (psycopg): ``rows`` (values already bound, in the order of ``names``) into ``table``
    by one ``COPY … FROM STDIN`` on the connection's own transaction: the rows stream to the server,
    which parses and indexes them in its process while this one formats the next (several times
    cheaper per row than multi-row ``INSERT``s). A driver error is raised in SQLAlchemy's shape
    (``IntegrityError``…), as from any statement."""
    dialect = connection.dialect
    quote = dialect.identifier_preparer.quote
    sql = (
        f"COPY {dialect.identifier_preparer.format_table(table)} "
        f"({', '.join(quote(name) for name in names)}) FROM STDIN"
    )
    driver = connection.connection.driver_connection
    assert driver is not None
    try:
        with driver.cursor() as cursor, cursor.copy(sql) as copy:
            for row in rows:
                copy.write_row(row)
    except dialect.loaded_dbapi.Error as error:
        raise DBAPIError.instance(sql, None, error, dialect.loaded_dbapi.Error) from error


def run_statements(connection: Connection, statements: Sequence[Statement]) -> None:
    """Run driver-level statements, in order, on ``connection``."""
    for sql, params in statements:
        connection.exec_driver_sql(sql, params)


def insert_statements(
    connection: Connection, table: Table, rows: Sequence[dict[str, Any]]
) -> list[Statement]:
    """SQLite ``INSERT … VALUES (…), (…), …`` statements holding ``rows``, each with as many rows as
    the driver's limit of bound variables allows.

    One multi-row statement costs SQLite less than as many single-row steps of ``executemany``
    (measured on the survey import: the database's own time for its rows fell by about a third).
    Each value is bound by its column type's own processor, as SQLAlchemy's insert would (a test
    compares the stored bytes)."""
    dialect = connection.dialect
    names = list(rows[0])
    values = list(chain.from_iterable(zip(*_bound_columns(dialect, table, names, rows), strict=True)))
    quote = dialect.identifier_preparer.quote
    mark = "?" if dialect.paramstyle == "qmark" else "%s"
    head = (
        f"INSERT INTO {dialect.identifier_preparer.format_table(table)} "
        f"({', '.join(quote(name) for name in names)}) VALUES "
    )
    group = f"({', '.join([mark] * len(names))})"
    width = len(names)
    per_statement = max(1, _variable_limit(connection) // width)
    if sqlite3.sqlite_version_info < (3, 8, 8):  # before it, VALUES rows counted as compound SELECTs
        per_statement = min(per_statement, _OLD_COMPOUND_LIMIT)
    statements: list[Statement] = []
    for first in range(0, len(rows), per_statement):
        flat = tuple(values[first * width : (first + per_statement) * width])
        statements.append((head + ", ".join([group] * (len(flat) // width)), flat))
    return statements


def _bound_columns(
    dialect: Any, table: Table, names: list[str], rows: Sequence[dict[str, Any]]
) -> list[list[Any]]:
    """The rows' values, column by column, each through its column's bind processor for this dialect
    (the dialect's own, as SQLAlchemy's insert applies it: on SQLite a time becomes the text
    SQLAlchemy writes, microseconds included, not what the driver's default adapter would make of a
    datetime), so a column without a processor costs one ``map`` in C."""
    columns: list[list[Any]] = []
    for name in names:
        column = list(map(itemgetter(name), rows))
        process = table.c[name].type.dialect_impl(dialect).bind_processor(dialect)
        columns.append(column if process is None else _processed(column, process))
    return columns


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


def rows_changed(result: Any) -> int:
    """How many rows an ``UPDATE`` or ``DELETE`` changed (``Session.execute`` types its result as a
    plain ``Result``, which does not declare the ``rowcount`` its cursor result has)."""
    return int(getattr(result, "rowcount", 0) or 0)


def tune_for_bulk(session: Session, *, cache_mib: int = 256) -> None:
    """Tune the transaction of a bulk load (settlement files, survey imports) for tables that grow
    under it.

    PostgreSQL: plans are made for each execution (``plan_cache_mode = force_custom_plan``, for this
    transaction only). psycopg prepares a statement run five times on a connection, and the server
    then keeps a generic plan once it looks no dearer than the custom ones; a load's look-ups (ids
    already stored, by one ``IN`` list or array a chunk) were planned while their table was nearly
    empty, and the generic plan kept scanning it as it grew: measured, 100,000 survey answers
    imported at 2,972 a second with 80% of the time in that look-up, 8,750 with custom plans, the
    planning of each look-up costing well under a millisecond.

    SQLite: a page cache the size of the load's working set. The default (2 MiB) holds a sliver of
    the indexes a load appends to at random places (a member's postings, a random event id), so past
    a few hundred thousand rows nearly every insert re-reads index pages from the operating system. The setting belongs to the connection (the
    cache fills only as pages are used, up to ``cache_mib``) and is harmless for the API's use of it
    afterwards.
    """
    dialect = session.get_bind().dialect.name
    if dialect == "sqlite":
        session.connection().exec_driver_sql(f"PRAGMA cache_size = -{cache_mib * 1024}")
    elif dialect == "postgresql":
        session.connection().exec_driver_sql("SET LOCAL plan_cache_mode = force_custom_plan")
