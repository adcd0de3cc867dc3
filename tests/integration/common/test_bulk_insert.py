"""``common.bulk.insert_many`` stores exactly what SQLAlchemy's own insert stores (datetimes, JSON),
byte for byte as the database holds them, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, Table, insert, text

from prevenance.common.bulk import insert_many
from prevenance.common.outbox import OutboxEvent
from prevenance.db import unit_of_work

EVENTS: Table = OutboxEvent.__table__  # type: ignore[assignment]


def test_insert_many_stores_what_sqlalchemy_stores(engine: Engine) -> None:
    moment = datetime(2026, 1, 15, 10, 0, 0, 120, tzinfo=UTC)
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
