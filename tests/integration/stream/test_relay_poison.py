"""The relay with an event its in-process handler always refuses: the others of the pass are
published, handled and marked; the refused one backs off (neither published nor handled by a pass
before its ``retry_at``), is published again by the passes after it (one message in the stream all
the same: JetStream drops the copies by ``Nats-Msg-Id``), counted, parked at its
``outbox.MAX_ATTEMPTS``-th failure and then neither published nor handled until it is sent back; once
its handler is fixed it is handled once. The frozen clock is moved between passes."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from datetime import timedelta

import nats
import pytest
from sqlalchemy import Column, Engine, Integer, MetaData, String, Table, insert, select
from sqlalchemy.orm import Session

from prevenance.common import outbox
from prevenance.common.clock import FrozenClock
from prevenance.common.outbox import OutboxEvent
from prevenance.db import read_session, unit_of_work
from prevenance.stream.names import Names
from prevenance.stream.relay import PendingEvent, Relay
from tests.integration.stream.test_relay import outbox_rows, stream_messages

HANDLED = Table(
    "test_relay_handled",
    MetaData(),
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("event_id", String(40), nullable=False),
)
"""What the test handler did, written in the relay's step-3 transaction: rolled back with it."""


@pytest.fixture
def handled_table(engine: Engine) -> Iterator[None]:
    HANDLED.create(engine)
    yield
    HANDLED.drop(engine)


def _handled(engine: Engine) -> list[str]:
    with read_session(engine) as session:
        return list(session.scalars(select(HANDLED.c.event_id).order_by(HANDLED.c.id)))


class CountingRelay(Relay):
    """A relay that remembers every event it published."""

    published: list[str]

    async def publish(self, events: Sequence[PendingEvent]) -> None:
        self.published = [*getattr(self, "published", []), *(event.event_id for event in events)]
        await super().publish(events)


def test_a_poison_event_is_retried_then_parked_without_blocking_or_duplicating(
    engine: Engine, clock: FrozenClock, names: Names, nats_url: str, handled_table: None
) -> None:
    with unit_of_work(engine) as session:
        ids = [
            outbox.emit(session, type="test.case", payload={"n": n}, now=clock.now()) for n in range(3)
        ] + [outbox.emit(session, type="points.earned", payload={"n": 3}, now=clock.now())]
    poison = {ids[1]}

    def handler(session: Session, event: OutboxEvent) -> None:
        session.execute(insert(HANDLED), {"event_id": event.event_id})
        if event.event_id in poison:
            raise RuntimeError("payload written by an old version")

    async def scenario() -> tuple[CountingRelay, int, int]:
        nc = await nats.connect(nats_url)
        js = nc.jetstream()
        relay = CountingRelay(
            engine=engine, clock=clock, js=js, names=names, handlers={"test.case": [handler]}
        )
        assert await relay.run_once() == 3  # the other three in the first pass
        for attempt in range(2, outbox.MAX_ATTEMPTS + 1):
            delay = outbox.retry_delay(attempt - 1)
            clock.advance(delay - timedelta(milliseconds=1))
            published = len(relay.published)
            assert await relay.run_once() == 0  # backing off: neither published nor handled
            assert len(relay.published) == published and outbox_rows(engine)[1].attempts == attempt - 1
            clock.advance(timedelta(milliseconds=1))
            assert await relay.run_once() == 0
            assert outbox_rows(engine)[1].attempts == attempt
        clock.advance(timedelta(hours=1))
        assert await relay.run_once() == 0  # parked: read, published and handled no more
        publishes = len(relay.published)
        poison.clear()  # the handler is fixed and the operator sends the event back
        with unit_of_work(engine) as session:
            assert outbox.unpark(session, event_ids=[ids[1]]) == 1
        assert await relay.run_once() == 1
        assert await relay.run_once() == 0
        messages = await stream_messages(js, names)
        await nc.close()
        return relay, publishes, len(messages)

    relay, publishes, messages = asyncio.run(scenario())
    assert relay.published[:4] == ids and relay.published[4:publishes] == [ids[1]] * (outbox.MAX_ATTEMPTS - 1)
    assert publishes == 4 + outbox.MAX_ATTEMPTS - 1 and relay.published[publishes:] == [ids[1]]
    assert messages == 4  # one message per event: the republished copies were dropped
    assert _handled(engine) == [ids[0], ids[2], ids[1]]  # each handled once, the poison one after its fix
    rows = outbox_rows(engine)
    assert all(row.delivered_at is not None and row.parked_at is None for row in rows)
    assert rows[1].attempts == 0 and rows[1].last_error == "RuntimeError: payload written by an old version"
