"""Multi-row inserts through the driver's ``executemany``, for bulk imports.

SQLAlchemy's ``execute(insert(table), rows)`` rebuilds the parameters of every row through its
statement machinery, which costs more than the database's insert at tens of thousands of rows.
On SQLite each value is still bound by its column type's own processor (what SQLAlchemy would send:
naive UTC datetimes, JSON text), once per value, and the rows go to the driver in one call. Other
databases keep SQLAlchemy's path (PostgreSQL's needs its bind casts, e.g. for JSON).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Table, insert
from sqlalchemy.orm import Session


def insert_many(connection: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """INSERT ``rows`` (dicts with the same keys, column names of ``table``) in one ``executemany``."""
    if not rows:
        return
    dialect = connection.dialect
    if dialect.name != "sqlite":
        connection.execute(insert(table), list(rows))
        return
    names = list(rows[0])
    quote = dialect.identifier_preparer.quote
    mark = "?" if dialect.paramstyle == "qmark" else "%s"
    sql = (
        f"INSERT INTO {dialect.identifier_preparer.format_table(table)} "
        f"({', '.join(quote(name) for name in names)}) VALUES ({', '.join([mark] * len(names))})"
    )
    processors = [table.c[name].type.bind_processor(dialect) for name in names]
    plain = [i for i, p in enumerate(processors) if p is None]
    if len(plain) == len(names):
        params = [tuple(row[name] for name in names) for row in rows]
    else:
        bound = [(i, p) for i, p in enumerate(processors) if p is not None]
        params = []
        for row in rows:
            values = [row[name] for name in names]
            for i, process in bound:
                values[i] = process(values[i])
            params.append(tuple(values))
    connection.exec_driver_sql(sql, params)


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
