"""In-process delivery of the outbox: events a handler listens to reach it once, in id order; the
others (every earn's) are only marked delivered, set-based, so they never cost a loaded row. On
SQLite and PostgreSQL."""

from __future__ import annotations

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from prevenance.common import outbox
from prevenance.common.clock import FrozenClock
from prevenance.db import read_session, unit_of_work


def _emit(engine: Engine, clock: FrozenClock, types: list[str]) -> None:
    with unit_of_work(engine) as session:
        for n, kind in enumerate(types):
            outbox.emit(session, type=kind, payload={"n": n}, now=clock.now())


def _undelivered(engine: Engine) -> list[str]:
    with read_session(engine) as session:
        return list(
            session.scalars(select(outbox.OutboxEvent.type).where(outbox.OutboxEvent.delivered_at.is_(None)))
        )


def test_handled_events_reach_their_handler_and_the_others_are_only_marked(
    engine: Engine, clock: FrozenClock
) -> None:
    kinds = ["points.earned", "contact.closed", "points.earned", "contact.closed", "other.thing"] * 4
    _emit(engine, clock, kinds)
    seen: list[int] = []

    def on_closed(session: Session, event: outbox.OutboxEvent) -> None:
        assert event.type == "contact.closed"
        seen.append(event.payload["n"])

    with unit_of_work(engine) as session:
        done = outbox.deliver_pending(
            session, handlers={"contact.closed": [on_closed]}, now=clock.now(), limit=3
        )
    # Three handled (the limit), and every unhandled one (up to 3 x UNHANDLED_PER_HANDLED).
    assert seen == [1, 3, 6]
    assert done == 3 + 12
    assert sorted(_undelivered(engine)) == ["contact.closed"] * 5
    with unit_of_work(engine) as session:
        assert outbox.deliver_pending(session, handlers={"contact.closed": [on_closed]}, now=clock.now()) == 5
    assert seen == [1, 3, 6, 8, 11, 13, 16, 18]
    assert _undelivered(engine) == []


def test_a_failing_handler_leaves_only_its_own_event_pending(engine: Engine, clock: FrozenClock) -> None:
    # The rest of the pass is delivered (``test_outbox_poison`` follows the refused event further).
    _emit(engine, clock, ["points.earned", "contact.closed", "points.earned"])

    def broken(session: Session, event: outbox.OutboxEvent) -> None:
        raise RuntimeError("handler down")

    with unit_of_work(engine) as session:
        assert outbox.deliver_pending(session, handlers={"contact.closed": [broken]}, now=clock.now()) == 2
    assert _undelivered(engine) == ["contact.closed"]


def test_a_catch_all_handler_sees_every_event(engine: Engine, clock: FrozenClock) -> None:
    _emit(engine, clock, ["a.b", "c.d", "e.f"])
    seen: list[str] = []
    with unit_of_work(engine) as session:
        outbox.deliver_pending(
            session, handlers={"*": [lambda _s, event: seen.append(event.type)]}, now=clock.now()
        )
    assert seen == ["a.b", "c.d", "e.f"]
    assert _undelivered(engine) == []
