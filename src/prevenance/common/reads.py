"""Independent reads sent together: one round trip on PostgreSQL for a view made of many parts.

A view such as the member 360 asks a dozen domains about one member. Each part is a :class:`Read`:
a Core ``SELECT`` built once with bind parameters, the parameters of this call, and the function
that turns its rows into the part's answer. :func:`read_together` runs them:

* on PostgreSQL, in one psycopg pipeline: every statement is sent, then every result read, so the
  view waits for the server once instead of once per part. Under load each wait also waits for a
  CPU the writers keep busy, so the parts' waits, not their work, made most of the view's latency
  (measured in docs/operations.md). The statements are compiled once per dialect and the rows
  decoded with the columns' own result processors (the same values SQLAlchemy would give);
* elsewhere (SQLite, in-process: no round trip to save), one after the other through SQLAlchemy.

Either way a part's rows are read by attribute (``row.id``), by position or by unpacking, so the
shaping functions are the same on both databases. A lone read (``run``) always goes through
SQLAlchemy.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeAlias, TypeVar

from sqlalchemy import exc
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.orm import Session
from sqlalchemy.sql.selectable import CompoundSelect, Select

T = TypeVar("T")
Statement: TypeAlias = "Select[*tuple[Any, ...]] | CompoundSelect[*tuple[Any, ...]]"


@dataclass(frozen=True)
class Read(Generic[T]):
    """One part of a view: a statement built once, this call's parameters, and how its rows become
    the part's answer (``shape`` gets every row, in order)."""

    statement: Statement
    params: Mapping[str, Any]
    shape: Callable[[Sequence[Any]], T]


def run(session: Session, read: Read[T]) -> T:
    """One read on its own, through SQLAlchemy."""
    return read.shape(session.connection().execute(read.statement, dict(read.params)).all())


def read_together(session: Session, reads: Sequence[Read[Any]]) -> list[Any]:
    """The answers of ``reads``, in order: on PostgreSQL sent in one pipeline, else one by one."""
    connection = session.connection()
    if connection.dialect.name != "postgresql" or len(reads) < 2:
        return [run(session, read) for read in reads]
    return _pipelined(connection, reads)


@dataclass
class _Plan:
    """A statement compiled once for a dialect, with what turns parameters and rows to and from it."""

    statement: Statement  # kept alive: plans are found by the statement's id
    sql: str
    defaults: dict[str, Any]
    bind_processors: dict[str, Callable[[Any], Any]]
    row: type
    result_processors: list[tuple[int, Callable[[Any], Any]]] | None = None
    """Known at the first answer: a column's processor may depend on the type the server sent."""

    def parameters(self, params: Mapping[str, Any]) -> dict[str, Any]:
        values = {**self.defaults, **params}
        for name, process in self.bind_processors.items():
            values[name] = process(values[name])
        return values

    def rows(self, raw: Sequence[tuple[Any, ...]], cursor: Any, dialect: Dialect) -> list[Any]:
        if self.result_processors is None:
            description = cursor.description
            found: list[
                tuple[int, Callable[[Any], Any]]
            ] = []  # built whole before it is shared: another thread may read the plan meanwhile
            for index, column in enumerate(self.statement.selected_columns):
                process = column.type.dialect_impl(dialect).result_processor(dialect, description[index][1])
                if process is not None:
                    found.append((index, process))
            self.result_processors = found
        if not self.result_processors:
            return [self.row._make(values) for values in raw]  # type: ignore[attr-defined]
        shaped = []
        for values in raw:
            row = list(values)
            for index, decode in self.result_processors:
                row[index] = decode(row[index])
            shaped.append(self.row._make(row))  # type: ignore[attr-defined]
        return shaped


_PLANS: dict[tuple[int, str], _Plan] = {}
MOST_PLANS = 512
"""Reads are meant to be built once (module constants), so plans are few; a caller building its
statement per call would fill the table, so past this many it starts again rather than grow."""


def plans_held() -> int:
    """How many compiled statements are kept (bounded by ``MOST_PLANS``)."""
    return len(_PLANS)


def _plan(statement: Statement, dialect: Dialect) -> _Plan:
    key = (id(statement), dialect.name)
    plan = _PLANS.get(key)
    if plan is not None and plan.statement is statement:
        return plan
    compiled = statement.compile(dialect=dialect)
    if compiled.positiontup or getattr(compiled, "post_compile_params", None):
        raise ValueError("a read sent in a pipeline takes named parameters and no expanding IN list")
    binds = compiled.binds
    bind_processors: dict[str, Callable[[Any], Any]] = {}
    for name, bind in binds.items():
        process = bind.type.dialect_impl(dialect).bind_processor(dialect)
        if process is not None:
            bind_processors[name] = process
    if len(_PLANS) >= MOST_PLANS:
        _PLANS.clear()
    plan = _Plan(
        statement=statement,
        sql=compiled.string,
        defaults={name: bind.effective_value for name, bind in binds.items() if not bind.required},
        bind_processors=bind_processors,
        row=namedtuple("Row", list(statement.selected_columns.keys()), rename=True),
    )
    _PLANS[key] = plan
    return plan


def _pipelined(connection: Connection, reads: Sequence[Read[Any]]) -> list[Any]:
    dialect = connection.dialect
    plans = [_plan(read.statement, dialect) for read in reads]
    driver = connection.connection.driver_connection
    assert driver is not None
    statement, parameters = "", {}
    try:
        with driver.pipeline():
            cursors = []
            for plan, read in zip(plans, reads, strict=True):
                statement, parameters = plan.sql, plan.parameters(read.params)
                cursors.append(driver.cursor().execute(statement, parameters))
        fetched = [(cursor.fetchall(), cursor) for cursor in cursors]
    except dialect.loaded_dbapi.Error as error:
        invalidated = dialect.is_disconnect(error, connection.connection.dbapi_connection, None)
        if invalidated:
            connection.invalidate(error)
        raise exc.DBAPIError.instance(
            statement,
            parameters,
            error,
            dialect.loaded_dbapi.Error,
            connection_invalidated=invalidated,
            dialect=dialect,
        ) from error
    return [
        read.shape(plan.rows(rows, cursor, dialect))
        for plan, read, (rows, cursor) in zip(plans, reads, fetched, strict=True)
    ]
