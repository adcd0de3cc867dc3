"""``earn_rows.Writer.batched``: on PostgreSQL a batch's inserts and updates go to the server
together when the block ends (one pipeline), in the order they were written, a large table by
``COPY`` after what was queued before it; a failing statement is raised in SQLAlchemy's shape and
the transaction writes nothing. On SQLite the same calls run at once, with the same result."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from prevenance.db import unit_of_work
from prevenance.loyalty import earn_rows

NOW = datetime(2026, 12, 1, tzinfo=UTC)


def _key(writer: earn_rows.Writer, key: str) -> tuple[object, ...]:
    return (earn_rows.SCOPE, key, "f", 201, writer.json({"id": key}), writer.time(NOW))


def _events(writer: earn_rows.Writer, prefix: str, count: int) -> list[tuple[object, ...]]:
    at = writer.time(NOW)
    return [(f"{prefix}{i:05d}", "test.event", writer.json({"n": i}), at) for i in range(count)]


def test_a_batch_is_written_in_order_with_large_tables_by_copy(engine: Engine) -> None:
    big = earn_rows.PIPELINED_VALUES // len(earn_rows.EVENT_COLUMNS) + 1  # past the pipeline: COPY
    with unit_of_work(engine) as session:
        writer = earn_rows.Writer(session)
        with writer.batched():
            writer.insert(earn_rows.KEYS, earn_rows.KEY_COLUMNS, [_key(writer, "k1"), _key(writer, "k2")])
            writer.insert(earn_rows.EVENTS, earn_rows.EVENT_COLUMNS, _events(writer, "small-", 3))
            writer.insert(earn_rows.EVENTS, earn_rows.EVENT_COLUMNS, _events(writer, "big-", big))
            writer.insert(earn_rows.EVENTS, earn_rows.EVENT_COLUMNS, _events(writer, "last-", 2))
    with Session(engine) as session:
        events = earn_rows.EVENTS
        written = session.execute(select(events.c.event_id).order_by(events.c.id)).scalars().all()
        keys = session.execute(select(earn_rows.KEYS.c.key, earn_rows.KEYS.c.response)).all()
    assert written == [f"small-{i:05d}" for i in range(3)] + [f"big-{i:05d}" for i in range(big)] + [
        "last-00000",
        "last-00001",
    ]
    assert sorted(keys) == [("k1", {"id": "k1"}), ("k2", {"id": "k2"})]


def test_a_failing_statement_of_the_batch_raises_integrity_error_and_nothing_is_written(
    engine: Engine,
) -> None:
    with unit_of_work(engine) as session:
        writer = earn_rows.Writer(session)
        writer.insert(earn_rows.KEYS, earn_rows.KEY_COLUMNS, [_key(writer, "taken")])
    with pytest.raises(IntegrityError), unit_of_work(engine) as session:
        writer = earn_rows.Writer(session)
        with writer.batched():
            writer.insert(earn_rows.EVENTS, earn_rows.EVENT_COLUMNS, _events(writer, "before-", 2))
            writer.insert(earn_rows.KEYS, earn_rows.KEY_COLUMNS, [_key(writer, "taken")])
            writer.insert(earn_rows.EVENTS, earn_rows.EVENT_COLUMNS, _events(writer, "after-", 2))
    with Session(engine) as session:
        assert session.execute(select(earn_rows.EVENTS.c.event_id)).scalars().all() == []
        assert session.execute(select(earn_rows.KEYS.c.key)).scalars().all() == ["taken"]


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_without_pipeline_mode_the_batch_goes_one_statement_at_a_time_with_the_same_result(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A libpq older than 14 has no pipeline mode: the queued statements are sent one by one."""
    monkeypatch.setattr(engine.dialect.loaded_dbapi.Pipeline, "is_supported", classmethod(lambda cls: False))
    test_a_batch_is_written_in_order_with_large_tables_by_copy(engine)
