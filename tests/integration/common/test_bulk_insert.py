"""``common.bulk.insert_many`` stores exactly what SQLAlchemy's own insert stores (datetimes, JSON),
byte for byte as the database holds them, on SQLite and PostgreSQL."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, Table, insert, text

from prevenance.common.bulk import insert_many, insert_statements, run_statements
from prevenance.common.outbox import OutboxEvent
from prevenance.db import make_engine, unit_of_work
from prevenance.migrate import upgrade

EVENTS: Table = OutboxEvent.__table__  # type: ignore[assignment]


@pytest.mark.parametrize(
    "moment",
    [
        datetime(2026, 1, 15, 10, 0, 0, 120, tzinfo=UTC),
        # A whole second: SQLite's driver would write it without microseconds, which sorts as text
        # before the bound SQLAlchemy writes for the same second (``... 10:00:00.000000``).
        datetime(2026, 2, 1, 0, 0, 0, tzinfo=UTC),
    ],
    ids=["microseconds", "whole-second"],
)
def test_insert_many_stores_what_sqlalchemy_stores(engine: Engine, moment: datetime) -> None:
    payload: dict[str, Any] = {"é": [1, None, "x"], "n": 2.5, "nested": {"a": True}}
    row = {"type": "t", "payload": payload, "occurred_at": moment}
    with unit_of_work(engine) as session:
        connection = session.connection()
        insert_many(connection, EVENTS, [{**row, "event_id": "evt_bulk"}])
        connection.execute(insert(EVENTS), [{**row, "event_id": "evt_core"}])
        insert_many(connection, EVENTS, [])
    with engine.connect() as connection:
        raw = {
            event_id: (str(occurred), str(body))
            for event_id, occurred, body in connection.execute(
                text("SELECT event_id, occurred_at, payload FROM outbox_events WHERE type = 't'")
            )
        }
    assert raw["evt_bulk"] == raw["evt_core"]
    with unit_of_work(engine) as session:
        stored = session.query(OutboxEvent).filter_by(event_id="evt_bulk").one()
        assert stored.payload == payload and stored.occurred_at == moment
        # Found by a range starting at its own instant, as every report's month bounds are.
        in_range = session.query(OutboxEvent).filter(
            OutboxEvent.type == "t", OutboxEvent.occurred_at >= moment
        )
        assert {event.event_id for event in in_range} == {"evt_bulk", "evt_core"}


def test_rows_beyond_the_drivers_variable_limit_go_in_several_statements(engine: Engine) -> None:
    """On SQLite the rows are sent as multi-row statements of as many rows as the driver's limit of
    bound variables allows (here lowered to 10: two rows of four columns a statement)."""
    moment = datetime(2026, 1, 15, 10, 0, tzinfo=UTC)
    rows = [
        {"event_id": f"evt_split_{i}", "type": "split", "payload": {"i": i}, "occurred_at": moment}
        for i in range(5)
    ]
    with unit_of_work(engine) as session:
        connection = session.connection()
        if engine.dialect.name == "sqlite":
            driver = connection.connection.driver_connection
            assert driver is not None
            before = driver.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
            driver.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 10)
            try:
                statements = insert_statements(connection, EVENTS, rows)
                assert [len(params) for _, params in statements] == [8, 8, 4]
                run_statements(connection, statements)
            finally:
                driver.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, before)
        else:
            insert_many(connection, EVENTS, rows)
    with unit_of_work(engine) as session:
        stored = session.query(OutboxEvent).filter_by(type="split").order_by(OutboxEvent.event_id).all()
    assert [event.payload for event in stored] == [{"i": i} for i in range(5)]


def test_the_migration_gives_whole_second_times_written_in_bulk_their_microseconds(tmp_path: Path) -> None:
    """Before revision a4c7e1f3b9d2 the bulk insert let SQLite's driver write a whole second as
    ``2026-02-01 00:00:00``; the migration rewrites such times as SQLAlchemy writes them, so they
    sort (as text) at their own second again. Other times are left as they are."""
    engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    upgrade(engine, "f3b8d2e6a9c1")
    with engine.begin() as connection:
        for event_id, occurred in (
            ("evt_short", "2026-02-01 00:00:00"),
            ("evt_full", "2026-02-01 00:00:00.000120"),
        ):
            connection.exec_driver_sql(
                "INSERT INTO outbox_events (event_id, type, payload, occurred_at) VALUES (?, 'old', '{}', ?)",
                (event_id, occurred),
            )
    upgrade(engine)
    with engine.connect() as connection:
        rows = connection.exec_driver_sql(
            "SELECT event_id, occurred_at FROM outbox_events WHERE type = 'old'"
        )
        stored = {event_id: occurred for event_id, occurred in rows}
    assert stored == {"evt_short": "2026-02-01 00:00:00.000000", "evt_full": "2026-02-01 00:00:00.000120"}
    with unit_of_work(engine) as session:
        since = datetime(2026, 2, 1, tzinfo=UTC)
        found = session.query(OutboxEvent).filter(OutboxEvent.type == "old", OutboxEvent.occurred_at >= since)
        assert {event.event_id for event in found} == {"evt_short", "evt_full"}
    engine.dispose()


def test_an_old_sqlite_gets_at_most_500_rows_a_statement(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite before 3.8.8 counted each row of a ``VALUES`` clause as a compound SELECT (500 at most)."""
    monkeypatch.setattr(sqlite3, "sqlite_version_info", (3, 8, 7))
    engine = make_engine(f"sqlite:///{tmp_path / 'statements.db'}")
    moment = datetime(2026, 1, 15, 10, 0, tzinfo=UTC)
    rows = [
        {"event_id": f"evt_old_{i}", "type": "old", "payload": {}, "occurred_at": moment} for i in range(1201)
    ]
    with engine.connect() as connection:
        statements = insert_statements(connection, EVENTS, rows)
    engine.dispose()
    assert [len(params) // 4 for _, params in statements] == [500, 500, 201]
