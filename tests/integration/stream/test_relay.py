"""The outbox relay: every event reaches ``prevenance.events.<type>`` with its ``event_id`` (header
and payload), is handed to the in-process handlers once and only then marked delivered; a relay
that dies between the publish and the mark does not duplicate the event in the stream."""

from __future__ import annotations

import asyncio
from typing import Any

import nats
import orjson
from nats.js import JetStreamContext
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from prevenance.common.clock import FrozenClock
from prevenance.common.outbox import OutboxEvent
from prevenance.db import read_session, run_in_transaction
from prevenance.loyalty import service
from prevenance.maintenance import run_once
from prevenance.stream.names import Names
from prevenance.stream.relay import Relay, read_pending
from tests.conftest import tx_body
from tests.integration.stream.conftest import add_members


def earn(engine: Engine, clock: FrozenClock, count: int) -> None:
    """Record ``count`` transactions: each writes one ``points.earned`` event to the outbox."""
    add_members(engine, clock, ["M1"])
    for i in range(count):
        body = tx_body(f"T{i}", "M1", "10.00")
        tx = service.TransactionInput(**{**body, "occurred_at": clock.now()})
        run_in_transaction(engine, lambda s, tx=tx: service.record_transaction(s, tx=tx, now=clock.now()))


def outbox_rows(engine: Engine) -> list[OutboxEvent]:
    with read_session(engine) as session:
        return list(session.scalars(select(OutboxEvent).order_by(OutboxEvent.id)).all())


async def stream_messages(js: JetStreamContext, names: Names) -> list[tuple[str | None, dict[str, Any]]]:
    """Every message of the events stream: (Nats-Msg-Id header, decoded payload)."""
    info = await js.stream_info(names.events_stream)
    out = []
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        if info.state.messages == 0:
            break
        raw = await js.get_msg(names.events_stream, seq)
        out.append(((raw.headers or {}).get("Nats-Msg-Id"), orjson.loads(raw.data or b"{}")))
    return out


def test_relay_publishes_each_event_then_handles_and_marks_it(
    engine: Engine, clock: FrozenClock, names: Names, nats_url: str
) -> None:
    earn(engine, clock, 12)
    handled: list[str] = []

    def handler(_session: Session, event: OutboxEvent) -> None:
        handled.append(event.event_id)

    async def scenario() -> list[tuple[str | None, dict[str, Any]]]:
        nc = await nats.connect(nats_url)
        js = nc.jetstream()
        relay = Relay(
            engine=engine, clock=clock, js=js, names=names, handlers={"points.earned": [handler]}, limit=5
        )
        while await relay.run_once():
            pass
        messages = await stream_messages(js, names)
        await nc.close()
        return messages

    messages = asyncio.run(scenario())
    rows = outbox_rows(engine)
    assert len(rows) == 12 and all(row.delivered_at == clock.now() for row in rows)
    assert handled == [row.event_id for row in rows]
    assert [header for header, _ in messages] == [row.event_id for row in rows]
    assert [body["event_id"] for _, body in messages] == [row.event_id for row in rows]
    assert all(body["type"] == "points.earned" for _, body in messages)
    assert [body["payload"] for _, body in messages] == [row.payload for row in rows]

    async def subjects() -> set[str]:
        nc = await nats.connect(nats_url)
        js = nc.jetstream()
        raw = await js.get_msg(names.events_stream, 1)
        await nc.close()
        return {raw.subject or ""}

    assert asyncio.run(subjects()) == {names.event_subject("points.earned")}


def test_relay_crash_between_publish_and_mark_does_not_duplicate(
    engine: Engine, clock: FrozenClock, names: Names, nats_url: str
) -> None:
    earn(engine, clock, 8)
    handled: list[str] = []

    def handler(_session: Session, event: OutboxEvent) -> None:
        handled.append(event.event_id)

    async def scenario() -> list[tuple[str | None, dict[str, Any]]]:
        nc = await nats.connect(nats_url)
        js = nc.jetstream()
        relay = Relay(engine=engine, clock=clock, js=js, names=names, handlers={"*": [handler]})
        # The first relay publishes and dies before marking anything.
        await relay.publish(read_pending(engine, limit=100, now=clock.now())[:5])
        assert all(row.delivered_at is None for row in outbox_rows(engine))
        # Its successor starts again from the outbox.
        assert await relay.run_once() == 8
        assert await relay.run_once() == 0
        messages = await stream_messages(js, names)
        await nc.close()
        return messages

    messages = asyncio.run(scenario())
    rows = outbox_rows(engine)
    assert all(row.delivered_at is not None for row in rows)
    assert handled == [row.event_id for row in rows]
    # JetStream dropped the five republished copies: one message per event.
    assert sorted(header or "" for header, _ in messages) == sorted(row.event_id for row in rows)


def test_relay_failure_to_publish_marks_nothing(
    engine: Engine, clock: FrozenClock, names: Names, nats_url: str
) -> None:
    earn(engine, clock, 3)
    handled: list[str] = []

    async def scenario() -> None:
        nc = await nats.connect(nats_url)
        js = nc.jetstream()
        await js.delete_stream(names.events_stream)  # nothing listens on the subjects any more
        relay = Relay(
            engine=engine,
            clock=clock,
            js=js,
            names=names,
            handlers={"*": [lambda _s, e: handled.append(e.event_id)]},
            publish_timeout=1,
        )
        try:
            await relay.run_once()
        except Exception:
            pass
        else:
            raise AssertionError("publishing to a missing stream should fail")
        await nc.close()

    asyncio.run(scenario())
    assert handled == []
    assert all(row.delivered_at is None for row in outbox_rows(engine))


def test_without_nats_the_maintenance_pass_still_delivers(engine: Engine, clock: FrozenClock) -> None:
    earn(engine, clock, 2)
    assert run_once(engine, clock, deliver_events=False)["events_delivered"] == 0
    assert run_once(engine, clock)["events_delivered"] == 2
    assert all(row.delivered_at is not None for row in outbox_rows(engine))


def test_an_event_the_server_cannot_take_is_published_without_its_payload_and_blocks_nothing(
    engine: Engine, clock: FrozenClock, names: Names, nats_url: str
) -> None:
    """An event whose message the server refuses (larger than its ``max_payload``) or that cannot be
    written as JSON (an integer beyond 64 bits) used to fail every pass: the relay read the same
    oldest events again and again, so no event behind it was ever published or handled. It is now
    published as its envelope with ``payload`` null and ``payload_omitted`` saying why (consumers
    learn that the event happened and why its payload is missing), handled in process with its whole payload, and
    marked; the events around it go through as usual."""
    from prevenance.common import outbox
    from prevenance.db import unit_of_work

    earn(engine, clock, 1)
    with unit_of_work(engine) as session:
        outbox.emit(session, type="test.large", payload={"text": "x" * 1_100_000}, now=clock.now())
        outbox.emit(session, type="test.huge_int", payload={"n": 2**70}, now=clock.now())
    with unit_of_work(engine) as session:
        outbox.emit(session, type="test.small", payload={"text": "after"}, now=clock.now())
    handled: list[str] = []

    async def scenario() -> list[tuple[str | None, dict[str, Any]]]:
        nc = await nats.connect(nats_url)
        js = nc.jetstream()
        relay = Relay(
            engine=engine,
            clock=clock,
            js=js,
            names=names,
            handlers={"*": [lambda _s, e: handled.append(e.type)]},
        )
        assert await relay.run_once() == 4
        assert await relay.run_once() == 0
        messages = await stream_messages(js, names)
        await nc.close()
        return messages

    messages = asyncio.run(scenario())
    rows = outbox_rows(engine)
    assert all(row.delivered_at is not None for row in rows)
    assert handled == ["points.earned", "test.large", "test.huge_int", "test.small"]
    assert [header for header, _ in messages] == [row.event_id for row in rows]
    bodies = [body for _, body in messages]
    assert bodies[0]["payload"] == rows[0].payload and bodies[3]["payload"] == {"text": "after"}
    for body in bodies[1:3]:
        assert body["payload"] is None and body["payload_omitted"], body
        assert set(body) == {"event_id", "type", "occurred_at", "payload", "payload_omitted"}
    assert "max_payload" in bodies[1]["payload_omitted"]
    assert "JSON" in bodies[2]["payload_omitted"]
