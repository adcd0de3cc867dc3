"""The rows the earn engine writes, and the set-based reads it makes: the tables and their column
orders, the JSON texts written once per earn (stored answer, event payload), the multi-row writer
(``executemany`` on SQLite; on PostgreSQL a batch's statements in one pipeline, large tables by
``COPY``) and look-ups by one IN list or one JSON array.
Shared with the settlement ingest, which writes the same rows."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any, cast

from sqlalchemy import JSON, Table
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from prevenance.common.base import UtcDateTime
from prevenance.common.bulk import copy_rows
from prevenance.common.idempotency import IdempotencyKey
from prevenance.common.outbox import OutboxEvent
from prevenance.loyalty import transactions
from prevenance.loyalty.tables import Account, CardTransaction, Posting, ProgrammeVersion, Referral

PIPELINED_VALUES = 4000
"""PostgreSQL, inside ``Writer.batched``: a table's rows up to this many values go as one multi-row
``INSERT`` queued with the batch's other statements (one round trip for all); more go by ``COPY``,
cheaper per row but two round trips of its own (measured: an API batch holds ~9 earns, ~150 values
a table; a settlement chunk thousands)."""


def _table(model: Any) -> Table:
    return cast(Table, model.__table__)


ACCOUNTS = _table(Account)
CARD_TRANSACTIONS = _table(CardTransaction)
POSTINGS = _table(Posting)
REFERRALS = _table(Referral)
PROGRAMME_VERSIONS = _table(ProgrammeVersion)
KEYS = _table(IdempotencyKey)
EVENTS = _table(OutboxEvent)

CARD_COLUMNS = (
    "id",
    "member_id",
    "amount_minor",
    "currency",
    "merchant",
    "category",
    "occurred_at",
    "fx_rate",
    "amount_eur",
    "product",
    "unit",
    "units_per_euro",
    "minimum_earn",
    "units_earned",
    "units_current",
    "refunded_minor",
    "created_at",
)
POSTING_COLUMNS = (
    "idempotency_key",
    "debit_account_id",
    "credit_account_id",
    "amount",
    "unit",
    "reason",
    "reference",
    "member_id",
    "balance_after",
    "created_at",
)
KEY_COLUMNS = ("scope", "key", "fingerprint", "status_code", "response", "created_at")
EVENT_COLUMNS = ("event_id", "type", "payload", "occurred_at")
SCOPE = "transaction"

encode_json_string = json.encoder.encode_basestring_ascii


def json_text(value: dict[str, Any]) -> str:
    """``json.dumps(value)`` for a flat object of strings and integers, without its generic walk
    (a unit test holds the two equal; anything else goes to ``json.dumps``)."""
    parts = []
    for key, item in value.items():
        if isinstance(item, str):
            text = encode_json_string(item)
        elif type(item) is int:
            text = str(item)
        else:
            return json.dumps(value)
        parts.append(f"{encode_json_string(key)}: {text}")
    return "{" + ", ".join(parts) + "}"


def earn_texts(
    tx: transactions.TransactionInput,
    ref: str,
    units: int,
    unit_text: str,
    balance: int,
    occurred_at: datetime,
) -> tuple[str, str]:
    """``json_text`` of an earn's answer and of its ``points.earned`` payload (the answer and three
    more keys), written out at once: the payload's text is the answer's with its tail extended
    (``unit_text`` is the unit already encoded; a unit test holds both equal to ``json.dumps``)."""
    text = (
        f'{{"id": {encode_json_string(tx.id)}, "member_ref": {encode_json_string(ref)}, '
        f'"points_earned": {units}, "unit": {unit_text}, "balance": {balance}'
    )
    payload = (
        f'{text}, "category": {encode_json_string(tx.category)}, "merchant": {encode_json_string(tx.merchant)}, '
        f'"occurred_at": {encode_json_string(occurred_at.isoformat())}}}'
    )
    return text + "}", payload


def _same(value: Any) -> Any:
    return value


class Writer:
    """Rows handed straight to the driver: ``executemany`` on SQLite; on PostgreSQL multi-row
    ``INSERT``s sent together inside ``batched`` (one round trip), else ``COPY``.

    SQLAlchemy's per-row parameter processing costs more than the database's own work at this
    volume, so values are converted here with the bind processors the ORM would apply (the stored
    bytes are the same: a test compares them) and each statement is rendered once per batch.
    """

    def __init__(self, session: Session) -> None:
        self.connection = session.connection()
        self.dialect = dialect = self.connection.dialect
        self.postgres = dialect.name == "postgresql"
        self.placeholder = "?" if dialect.paramstyle in ("qmark", "numeric") else "%s"
        self.quote = dialect.identifier_preparer.quote
        self.time: Callable[[datetime], Any] = (
            UtcDateTime().dialect_impl(dialect).bind_processor(dialect) or _same
        )
        # Both dialects store ``json.dumps(value)`` unless the engine was given another serializer.
        self.plain_json = getattr(dialect, "_json_serializer", None) in (None, json.dumps)
        if self.plain_json:
            self.json: Callable[[dict[str, Any]], Any] = json_text
        else:
            self.json = JSON().dialect_impl(dialect).bind_processor(dialect) or _same
        self._queued: list[tuple[str, Sequence[Any]]] | None = None

    @contextmanager
    def batched(self) -> Iterator[None]:
        """On PostgreSQL, the inserts and updates written inside go to the server together, in one
        pipeline (one round trip instead of one or two each), when the block ends without an
        error; the first failing statement's error is raised then, in SQLAlchemy's shape. Nothing
        may read what they write before the block ends. On SQLite (no round trips) they run at once."""
        if not self.postgres or self._queued is not None:
            yield
            return
        self._queued = []
        try:
            yield
            queued = self._queued
        finally:
            self._queued = None
        self._send(queued)

    def _send(self, statements: list[tuple[str, Sequence[Any]]]) -> None:
        if not statements:
            return
        driver = self._driver()
        try:
            if len(statements) == 1 or not self.dialect.loaded_dbapi.Pipeline.is_supported():
                # One statement, or a libpq older than 14 (no pipeline mode): one round trip each.
                with driver.cursor() as cursor:
                    for sql, params in statements:
                        cursor.execute(sql, params)
                return
            with driver.pipeline(), driver.cursor() as cursor:
                for sql, params in statements:
                    cursor.execute(sql, params)
        except self.dialect.loaded_dbapi.Error as error:
            raise DBAPIError.instance(
                statements[0][0], None, error, self.dialect.loaded_dbapi.Error
            ) from error

    def _driver(self) -> Any:
        driver = self.connection.connection.driver_connection
        assert driver is not None
        return driver

    def insert(self, table: Table, columns: Sequence[str], rows: list[tuple[Any, ...]]) -> None:
        if not rows:
            return
        names = ", ".join(self.quote(c) for c in columns)
        if self.postgres:
            if self._queued is not None and len(rows) * len(columns) <= PIPELINED_VALUES:
                # An INSERT's VALUES are coerced to its columns' types (the text of a str is sent
                # untyped), as COPY reads them.
                marks = "(" + ", ".join(["%s"] * len(columns)) + ")"
                sql = f"INSERT INTO {self.quote(table.name)} ({names}) VALUES " + ", ".join(
                    [marks] * len(rows)
                )
                self._queued.append((sql, [value for row in rows for value in row]))
                return
            if self._queued:
                queued, self._queued = self._queued, []
                self._send(queued)  # what was queued before this table is written before it
            # A driver error comes in SQLAlchemy's shape (IntegrityError…), so the batch's retry and
            # the callers' error handling see what they see elsewhere.
            copy_rows(self.connection, table, columns, rows)
            return
        marks = ", ".join([self.placeholder] * len(columns))
        sql = f"INSERT INTO {self.quote(table.name)} ({names}) VALUES ({marks})"
        self.connection.exec_driver_sql(sql, rows)

    def update(
        self, table: Table, columns: Sequence[str], where: Sequence[str], rows: list[tuple[Any, ...]]
    ) -> None:
        """``UPDATE table SET columns… WHERE where…``; each row gives the new values, then the keys.

        On PostgreSQL the rows travel as one array per column (``unnest``): one statement, not one
        round trip per row."""
        if not rows:
            return
        name = self.quote(table.name)
        if self.postgres:
            names = [*columns, *where]
            arrays = ", ".join(
                f"unnest(%s::{table.c[c].type.compile(dialect=self.dialect)}[]) AS v{i}"
                for i, c in enumerate(names)
            )
            sets = ", ".join(f"{self.quote(c)} = v.v{i}" for i, c in enumerate(columns))
            keys = " AND ".join(
                f"{name}.{self.quote(c)} = v.v{i}" for i, c in enumerate(where, start=len(columns))
            )
            sql = f"UPDATE {name} SET {sets} FROM (SELECT {arrays}) AS v WHERE {keys}"
            arrays_params = tuple(list(values) for values in zip(*rows, strict=True))
            if self._queued is not None:
                self._queued.append((sql, arrays_params))
            else:
                self.connection.exec_driver_sql(sql, arrays_params)
            return
        sets = ", ".join(f"{self.quote(c)} = {self.placeholder}" for c in columns)
        keys = " AND ".join(f"{self.quote(c)} = {self.placeholder}" for c in where)
        self.connection.exec_driver_sql(f"UPDATE {name} SET {sets} WHERE {keys}", rows)
