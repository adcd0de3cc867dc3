"""Look-ups of many keys in one statement: ``column IN values`` as the backend takes it best.

Shared by the bulk paths (the earn engine, the settlement ingest, the survey import): one array
parameter on PostgreSQL, one JSON text read by ``json_each`` on SQLite, so a chunk's look-up is one
cached statement whatever its size.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import orjson
from sqlalchemy import ColumnElement, String, any_, bindparam, column, func, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

IN_BATCH = 900
"""Bound parameters per IN list: below SQLite's historical limit of 999 variables."""


def matching(session: Session, column: Any, values: Sequence[Any]) -> Iterator[ColumnElement[bool]]:
    """``column IN values`` as few statements as the backend allows: one array parameter on
    PostgreSQL, batches below SQLite's historical limit of 999 variables elsewhere."""
    if not values:
        return
    if session.get_bind().dialect.name == "postgresql":
        yield column == any_(bindparam(None, list(values), type_=ARRAY(column.type)))
        return
    for start in range(0, len(values), IN_BATCH):
        yield column.in_(values[start : start + IN_BATCH])


def json_values(parameter: str) -> Any:
    """``SELECT value FROM json_each(:parameter)``: a whole list bound as one JSON text on SQLite."""
    return select(column("value")).select_from(func.json_each(bindparam(parameter, type_=String())))


class InQuery:
    """A ``SELECT … WHERE column IN (values)`` built once per backend, so a batch's look-up costs
    one cached statement with one parameter whatever the batch's size: an array (``= ANY``) on
    PostgreSQL, a JSON array read by ``json_each`` on SQLite (no limit on variables, no statement
    expanded and compiled again per list length; SQLite still probes the column's index).
    ``postgres`` replaces the PostgreSQL statement (same columns, same ``p_values`` array)."""

    def __init__(
        self, build: Callable[[ColumnElement[bool]], Any], column: Any, *, postgres: Any = None
    ) -> None:
        self.sqlite = build(column.in_(json_values("p_values")))
        self.sqlite_listed = build(column.in_(bindparam("p_values", expanding=True)))
        self.postgres = (
            postgres
            if postgres is not None
            else build(column == any_(bindparam("p_values", type_=ARRAY(column.type))))
        )

    def rows(self, session: Session, values: Sequence[Any], **params: Any) -> Iterator[Any]:
        if not values:
            return
        connection = session.connection()
        if connection.dialect.name == "postgresql":
            yield from connection.execute(self.postgres, {"p_values": list(values), **params})
            return
        try:
            text = orjson.dumps(list(values)).decode()
        except orjson.JSONEncodeError:  # a lone surrogate: bound as values, as many lists as needed
            for start in range(0, len(values), IN_BATCH):
                chunk = list(values[start : start + IN_BATCH])
                yield from connection.execute(self.sqlite_listed, {"p_values": chunk, **params})
            return
        yield from connection.execute(self.sqlite, {"p_values": text, **params})
