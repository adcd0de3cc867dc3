"""The outbox relay: publish undelivered outbox events to JetStream, then hand them to the
in-process handlers and mark them delivered.

Design (no extra column such as ``published_at``): when NATS is configured the relay is the
*only* deliverer of the outbox (``prevenance serve`` then leaves ``outbox_events`` alone), and
``delivered_at`` means "published to JetStream *and* handled in process". A pass has three steps:

1. read up to ``limit`` pending events that are due (not backing off: ``outbox.due`` at the pass's
   clock) in id order (a read-only transaction: no lock is held);
2. publish each to ``prevenance.events.<type>`` with its ``event_id`` as the ``Nats-Msg-Id``
   header and in the payload, and wait for every publish ack (no database transaction is open
   while the network is awaited, so SQLite's single write lock is never held across it);
3. in one write transaction, take those events that are still pending and due (``FOR UPDATE SKIP
   LOCKED`` on PostgreSQL), run the in-process handlers on each and set ``delivered_at``.

Neither side can be lost: an event is marked only after its publish was acknowledged and its
handlers ran in the marking transaction; a crash or a failure anywhere before the commit leaves it
pending and the next pass starts again from step 1. Neither blocks the other beyond one pass: a
NATS outage keeps events pending (and logged) until it recovers. The price is at-least-once
publication: a relay killed between step 2 and step 3 republishes on its next pass, and JetStream
drops the copy because it carries the same ``Nats-Msg-Id`` within the stream's duplicate window
(``names.EVENTS_DUPLICATE_WINDOW``); past that window a consumer deduplicates on ``event_id``.
Handlers are idempotent as before (the same is already true of ``deliver_pending``).

An event whose in-process handlers refuse it is published but not handled, so it is not delivered:
step 3 delivers the others of its pass all the same (``outbox.deliver``: one savepoint per event
when the set-based run fails) and counts the refusal. The refused event then backs off: no pass
reads, publishes or handles it before its ``retry_at`` (``outbox.retry_delay``: 1, 2, 4, … 64 s
after its 1st, 2nd, 3rd, … 7th failure), and the events behind it are not held up meanwhile. Once
due it is read and published again, the same message with the same ``Nats-Msg-Id`` (dropped by
JetStream as above), until its handlers take it or it is parked at its ``outbox.MAX_ATTEMPTS``-th
failure (about two minutes after the first); a parked event is read by no pass (``outbox.PENDING``)
until ``prevenance outbox retry`` sends it back, when it is published once more (at least once, as
after a crash) and handled.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
import structlog
from nats.errors import MaxPayloadError
from nats.js import JetStreamContext
from sqlalchemy import Engine, select, update

from prevenance.common import outbox
from prevenance.common.clock import Clock
from prevenance.common.outbox import OutboxEvent
from prevenance.db import read_session, unit_of_work
from prevenance.stream.names import Names

log = structlog.get_logger()


@dataclass(frozen=True)
class PendingEvent:
    id: int
    event_id: str
    type: str
    payload: dict[str, Any]
    occurred_at: datetime

    def message(self) -> bytes:
        return orjson.dumps(
            {
                "event_id": self.event_id,
                "type": self.type,
                "occurred_at": self.occurred_at.isoformat(),
                "payload": self.payload,
            }
        )

    def envelope(self, why: str) -> bytes:
        """The message without its payload (``payload`` null, ``payload_omitted`` saying why): what
        is published for an event whose whole message can never be (see ``Relay.publish``)."""
        return orjson.dumps(
            {
                "event_id": self.event_id,
                "type": self.type,
                "occurred_at": self.occurred_at.isoformat(),
                "payload": None,
                "payload_omitted": why,
            }
        )


def read_pending(engine: Engine, *, limit: int, now: datetime) -> list[PendingEvent]:
    """Step 1: the oldest pending events (neither delivered nor parked) that are due at ``now`` (not
    backing off after a failure: ``outbox.due``), without locking anything."""
    with read_session(engine) as session:
        rows = session.execute(
            select(
                OutboxEvent.id,
                OutboxEvent.event_id,
                OutboxEvent.type,
                OutboxEvent.payload,
                OutboxEvent.occurred_at,
            )
            .where(outbox.due(now))
            .order_by(OutboxEvent.id)
            .limit(limit)
        ).all()
    return [PendingEvent(*row) for row in rows]


def deliver_published(
    engine: Engine, *, ids: Sequence[int], handlers: dict[str, list[outbox.Handler]], now: datetime
) -> int:
    """Step 3: run the in-process handlers on the published events still pending and due; mark them.

    The rows are claimed with ``FOR UPDATE SKIP LOCKED`` (another relay skips them) and marked with
    one ``UPDATE``; only events that have a handler are loaded as objects. An event its handlers
    refuse is left pending, its failure counted and its ``retry_at`` set (``outbox.deliver``); the
    others are marked. One that another relay refused since step 1 is backing off: it is left alone.
    """
    with unit_of_work(engine) as session:
        claimed = session.execute(
            select(OutboxEvent.id, OutboxEvent.type)
            .where(OutboxEvent.id.in_(list(ids)), outbox.due(now))
            .order_by(OutboxEvent.id)
            .with_for_update(skip_locked=True)
        ).all()
        if not claimed:
            return 0
        handled = [id_ for id_, type_ in claimed if handlers.get(type_) or handlers.get("*")]
        failed: set[int] = set()
        if handled:
            events = session.scalars(
                select(OutboxEvent).where(OutboxEvent.id.in_(handled)).order_by(OutboxEvent.id)
            ).all()
            failed = outbox.deliver(session, events, handlers, now=now)
        done = [id_ for id_, _ in claimed if id_ not in failed]
        if done:
            session.execute(
                update(OutboxEvent)
                .where(OutboxEvent.id.in_(done))
                .values(delivered_at=now)
                .execution_options(synchronize_session=False)
            )
        return len(done)


class Relay:
    """Publishes the outbox to JetStream and runs the in-process handlers (see the module doc)."""

    def __init__(
        self,
        *,
        engine: Engine,
        clock: Clock,
        js: JetStreamContext,
        names: Names,
        handlers: dict[str, list[outbox.Handler]] | None = None,
        limit: int = 500,
        interval: float = 0.2,
        retry_interval: float = 2.0,
        publish_timeout: float = 5.0,
    ) -> None:
        if handlers is None:
            from prevenance.maintenance import HANDLERS

            handlers = HANDLERS
        self.engine, self.clock, self.js, self.names = engine, clock, js, names
        self.handlers, self.limit = handlers, limit
        self.interval, self.retry_interval = interval, retry_interval
        self.publish_timeout = publish_timeout
        self.delivered = 0

    async def publish(self, events: Sequence[PendingEvent]) -> None:
        """Step 2: publish every event and wait for all the acks (raises if any failed).

        An event whose message can never be published — not JSON (an integer beyond 64 bits) or
        larger than the server's ``max_payload`` — is published as its envelope without the payload
        (``PendingEvent.envelope``) and logged. Raising for it would keep it pending, and every pass
        starts from the oldest pending events: it would be read and refused again on every pass,
        and no event behind it would ever be published or handled. Its in-process handlers still
        get the whole event (step 3 reads it from the table)."""
        await asyncio.gather(*(self._publish_one(event) for event in events))

    async def _publish_one(self, event: PendingEvent) -> None:
        try:
            data = event.message()
        except orjson.JSONEncodeError as error:
            data = self._omitted(event, f"the payload cannot be written as JSON ({error})")
        try:
            await self._send(event, data)
        except MaxPayloadError:
            why = f"the message ({len(data)} bytes) is larger than the server's max_payload"
            await self._send(event, self._omitted(event, why))

    def _omitted(self, event: PendingEvent, why: str) -> bytes:
        log.error("outbox_event_published_without_payload", event_id=event.event_id, type=event.type, why=why)
        return event.envelope(why)

    async def _send(self, event: PendingEvent, data: bytes) -> None:
        await self.js.publish(
            self.names.event_subject(event.type),
            data,
            timeout=self.publish_timeout,
            headers={"Nats-Msg-Id": event.event_id},
        )

    async def run_once(self) -> int:
        """One pass; returns the number of events published and marked delivered. Step 1 reads the
        events due at the clock's time; step 3 reads the clock again (``delivered_at``), later, so an
        event due then is still due unless another relay refused it meanwhile."""
        events = await asyncio.to_thread(read_pending, self.engine, limit=self.limit, now=self.clock.now())
        if not events:
            return 0
        await self.publish(events)
        done = await asyncio.to_thread(
            deliver_published,
            self.engine,
            ids=[event.id for event in events],
            handlers=self.handlers,
            now=self.clock.now(),
        )
        self.delivered += done
        return done

    async def run(self, stop: asyncio.Event) -> None:
        """Pass after pass until ``stop``; a full pass is followed at once by the next."""
        while not stop.is_set():
            pause = self.interval
            try:
                done = await self.run_once()
            except Exception as error:
                # NATS or the database is unavailable: the events stay pending.
                log.warning("outbox_relay_failed", error=f"{type(error).__name__}: {error}")
                done, pause = 0, self.retry_interval
            if done < self.limit:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=pause)
