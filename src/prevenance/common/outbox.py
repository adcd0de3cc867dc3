"""Transactional outbox: events are written in the transaction that caused them.

A relay delivers them afterwards, at least once, to in-process handlers (and, when configured, to
the message stream). Every event has a unique ``event_id`` so consumers can deduplicate.

One event a handler always refuses (a bug, a payload an old version wrote) must not hold up the
others: a pass runs the handlers set-based in a savepoint and, when that fails, again one event per
savepoint (``deliver``). The refused event alone stays pending, its ``attempts`` counted and its
``last_error`` kept, and it backs off: after its n-th failure no pass hands it out before
``retry_at`` = now + ``BACKOFF_BASE`` × 2^(n-1) (1, 2, 4, … 64 s), while the events behind it go on
being delivered. At its ``MAX_ATTEMPTS``-th failure (about two minutes of failing) it is parked
(``parked_at``: a dead letter no pass picks) until an operator sends it back (``prevenance outbox
retry``, ``unpark``). Pending means neither delivered nor parked (``PENDING``); a pass picks the
pending events that are due (``due``: not backing off).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import (
    JSON,
    BigInteger,
    Index,
    Integer,
    String,
    Table,
    and_,
    insert,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Mapped, Session, mapped_column
from sqlalchemy.sql.elements import ColumnElement

from prevenance.common.base import Base, UtcDateTime
from prevenance.common.bulk import insert_many, rows_changed
from prevenance.common.ids import new_id, new_ids
from prevenance.common.text import one_line

log = structlog.get_logger()

Handler = Callable[[Session, "OutboxEvent"], None]


class ManyEvents:
    """A handler that decides a run of consecutive events of its type together (set-based: a few
    statements per run instead of a few per event). Called with one event, it handles a run of one,
    so it is also a plain ``Handler``."""

    def __init__(self, many: Callable[[Session, Sequence[OutboxEvent]], None]) -> None:
        self.many = many

    def __call__(self, session: Session, event: OutboxEvent) -> None:
        self.many(session, [event])


def run_handlers(session: Session, events: Sequence[OutboxEvent], handlers: dict[str, list[Handler]]) -> None:
    """Run each event's handlers (its type's, then ``"*"``'s), events in order. A ``ManyEvents``
    handler gets each run of consecutive events of its type in one call, before the run's plain
    handlers: the handlers of one event are independent of each other."""
    for kind, run in itertools.groupby(events, key=lambda event: event.type):
        batch = list(run)
        listeners = handlers.get(kind, []) + handlers.get("*", [])
        for handler in listeners:
            if isinstance(handler, ManyEvents):
                handler.many(session, batch)
        plain = [handler for handler in listeners if not isinstance(handler, ManyEvents)]
        for event in batch:
            for handler in plain:
                handler(session, event)


BACKOFF_BASE = timedelta(seconds=1)
"""The wait after an event's first refused delivery, doubled after each further one (``retry_delay``).
Counted in time, not in passes: the relay passes every 0.2 s and maintenance every few seconds, so
counting passes parked an event whose handler failed for a second (a lock timeout, a service
restarting) and left it to an operator."""

MAX_ATTEMPTS = 8
"""Refused deliveries before an event is parked: with ``BACKOFF_BASE`` doubling, the 8th failure
comes after waits of 1+2+4+…+64 s = 127 s, so only a handler that keeps refusing the event for about
two minutes parks it; a transient failure is retried and delivered without anyone. Only a handler
refusing this one event counts (a lost database fails the whole pass, and the count is written in
that pass's transaction); parking is undone by ``prevenance outbox retry``."""

ERROR_LENGTH = 300
"""Characters of ``last_error`` kept: the exception's type and message, enough to find the bug."""

_PENDING_SQL = "delivered_at IS NULL AND parked_at IS NULL"
_PARKED_SQL = "parked_at IS NOT NULL"


class OutboxEvent(Base):
    """A domain event waiting for (or past) delivery, backing off after a failure until
    ``retry_at``, or parked after ``MAX_ATTEMPTS`` failures.

    ``ix_outbox_pending`` holds only the pending rows (partial): every pass reads the oldest of
    them, and the delivered ones (every event ever written) are not in its way; ``retry_at`` is
    tested on those few rows (``due``), so it needs no index. ``ix_outbox_parked`` likewise holds
    the few parked ones (the ``/metrics`` gauge, ``prevenance outbox parked``)."""

    __tablename__ = "outbox_events"
    __table_args__ = (
        Index(
            "ix_outbox_pending",
            "id",
            postgresql_where=text(_PENDING_SQL),
            sqlite_where=text(_PENDING_SQL),
        ),
        Index("ix_outbox_parked", "id", postgresql_where=text(_PARKED_SQL), sqlite_where=text(_PARKED_SQL)),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(40), unique=True)
    type: Mapped[str] = mapped_column(String(80))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    occurred_at: Mapped[datetime] = mapped_column(UtcDateTime())
    delivered_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    last_error: Mapped[str | None] = mapped_column(String(ERROR_LENGTH), nullable=True)
    parked_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    retry_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)


PENDING = and_(OutboxEvent.delivered_at.is_(None), OutboxEvent.parked_at.is_(None))
"""Neither delivered nor parked (the predicate of ``ix_outbox_pending``): the backlog, events backing
off included. A pass picks only those ``due``."""


def due(now: datetime) -> ColumnElement[bool]:
    """Pending and not backing off at ``now`` (the pass's clock): what a pass picks. The
    ``retry_at`` test runs on the rows of ``ix_outbox_pending`` only."""
    return and_(PENDING, or_(OutboxEvent.retry_at.is_(None), OutboxEvent.retry_at <= now))


_EVENTS: Table = OutboxEvent.__table__  # type: ignore[assignment]
_INSERT = insert(_EVENTS)  # built once: every write emits an event


def emit(session: Session, *, type: str, payload: dict[str, Any], now: datetime) -> str:
    """Record an event in the caller's transaction (delivered only if that transaction commits) and
    return its id. Written at once with a Core ``INSERT`` (cheaper than the ORM's unit of work on the
    hot path: every write emits an event)."""
    event_id = new_id("evt")
    session.execute(_INSERT, {"event_id": event_id, "type": type, "payload": payload, "occurred_at": now})
    return event_id


def emit_many(session: Session, *, type: str, payloads: list[dict[str, Any]], now: datetime) -> list[str]:
    """``emit`` for a batch of events of one type, in one multi-row ``INSERT`` (a bulk import)."""
    if not payloads:
        return []
    ids = new_ids("evt", len(payloads))
    insert_many(
        session.connection(),
        _EVENTS,
        [
            {"event_id": event_id, "type": type, "payload": payload, "occurred_at": now}
            for event_id, payload in zip(ids, payloads, strict=True)
        ],
    )
    return ids


UNHANDLED_PER_HANDLED = 20
"""Events no in-process handler listens to are marked delivered this many times as many per pass as
handled ones: one ``UPDATE`` over ids, no row loaded, so a pass stays short all the same."""


def deliver_pending(
    session: Session, *, handlers: dict[str, list[Handler]], now: datetime, limit: int = 500
) -> int:
    """Hand pending events to their in-process handlers and mark them delivered; returns the count.

    Handlers run in the same transaction as the ``delivered_at`` mark, so a crash re-delivers the
    event and the handler's own idempotency absorbs the repeat. Events of a type no handler listens
    to (most of them: every earn emits one) are only marked, set-based, up to ``limit`` ×
    ``UNHANDLED_PER_HANDLED`` of them: loading each one as an object to do nothing with it cost the
    API's earn load a quarter of the server's CPU. An event its handlers refuse stays pending (see
    ``deliver``) and the others are marked all the same; it is picked again once ``retry_at`` has
    passed (``due`` at ``now``).
    """
    handled_types = sorted(kind for kind, listeners in handlers.items() if listeners)
    marked = 0
    pending = due(now)
    handled_only: ColumnElement[bool] = pending
    if "*" not in handled_types:
        unhandled_ids = (
            select(OutboxEvent.id)
            .where(pending, OutboxEvent.type.not_in(handled_types))
            .order_by(OutboxEvent.id)
            .limit(limit * UNHANDLED_PER_HANDLED)
            .with_for_update(skip_locked=True)
        )
        result = session.execute(
            update(OutboxEvent)
            .where(OutboxEvent.id.in_(unhandled_ids))
            .values(delivered_at=now)
            .execution_options(synchronize_session=False)
        )
        marked = rows_changed(result)
        handled_only = OutboxEvent.type.in_(handled_types)
    events = session.scalars(
        select(OutboxEvent)
        .where(pending, handled_only)
        .order_by(OutboxEvent.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    failed = deliver(session, events, handlers, now=now)
    for event in events:
        if event.id not in failed:
            event.delivered_at = now
    return marked + len(events) - len(failed)


def deliver(
    session: Session, events: Sequence[OutboxEvent], handlers: dict[str, list[Handler]], *, now: datetime
) -> set[int]:
    """Run the handlers of ``events`` in the caller's transaction; the ids of the events they
    refused (left pending, their failure recorded by ``record_failure``).

    Set-based in one savepoint first (the usual case: ``ManyEvents`` batches stay whole); when that
    fails, again one event per savepoint, in order, so a refused event is rolled back alone and the
    others are delivered in this same pass. A broken connection is no event's fault: it is raised
    (the pass fails, nothing is counted)."""
    if not events:
        return set()
    try:
        with session.begin_nested():
            run_handlers(session, events, handlers)
        return set()
    except Exception as error:
        _raise_if_broken(session, error)
        log.warning("outbox_batch_failed", events=len(events), error=error_text(error))
    failed: set[int] = set()
    for event in events:
        try:
            with session.begin_nested():
                run_handlers(session, [event], handlers)
        except Exception as error:
            _raise_if_broken(session, error)
            record_failure(event, error, now=now)
            failed.add(event.id)
    return failed


def _raise_if_broken(session: Session, error: Exception) -> None:
    if (isinstance(error, DBAPIError) and error.connection_invalidated) or not session.is_active:
        raise error


def error_text(error: BaseException) -> str:
    """What ``last_error`` keeps of a failure: the exception's type and message on one line, cut to
    the column (no payload is copied into it; a message quoting one is erased with the member)."""
    return one_line(f"{type(error).__name__}: {error}")[:ERROR_LENGTH]


def parks(attempts: int) -> bool:
    """Whether an event that has failed ``attempts`` times is parked (a dead letter)."""
    return attempts >= MAX_ATTEMPTS


def retry_delay(attempts: int) -> timedelta:
    """How long an event that has failed ``attempts`` times (1-based) waits before a pass picks it
    again: ``BACKOFF_BASE`` × 2^(attempts-1), i.e. 1, 2, 4, … 64 s."""
    return BACKOFF_BASE * 2 ** (max(attempts, 1) - 1)


def record_failure(event: OutboxEvent, error: BaseException, *, now: datetime) -> None:
    """Count one refused delivery of ``event``, keep the error, and either let it back off until
    ``retry_at`` (``retry_delay`` from ``now``) or park it at ``MAX_ATTEMPTS``."""
    event.attempts = (event.attempts or 0) + 1
    event.last_error = error_text(error)
    fields = {"event_id": event.event_id, "type": event.type, "attempts": event.attempts}
    if parks(event.attempts):
        event.parked_at = now
        event.retry_at = None
        log.error("outbox_event_parked", **fields, error=event.last_error)
    else:
        event.retry_at = now + retry_delay(event.attempts)
        log.warning(
            "outbox_event_failed", **fields, retry_at=event.retry_at.isoformat(), error=event.last_error
        )


def parked_events(session: Session) -> list[OutboxEvent]:
    """The parked events, oldest first (what ``prevenance outbox parked`` lists)."""
    return list(
        session.scalars(
            select(OutboxEvent).where(OutboxEvent.parked_at.is_not(None)).order_by(OutboxEvent.id)
        ).all()
    )


def find_event(session: Session, event_id: str) -> OutboxEvent | None:
    """The event of that ``event_id``, if any (``prevenance outbox retry`` names one)."""
    return session.scalar(select(OutboxEvent).where(OutboxEvent.event_id == event_id))


def unpark(session: Session, *, event_ids: Sequence[str] | None = None) -> int:
    """Send parked events back to pending with a fresh count and no backoff (all of them when
    ``event_ids`` is None): the next pass delivers them. Returns how many were parked."""
    where = [OutboxEvent.parked_at.is_not(None)]
    if event_ids is not None:
        where.append(OutboxEvent.event_id.in_(list(event_ids)))
    result = session.execute(
        update(OutboxEvent)
        .where(*where)
        .values(parked_at=None, attempts=0, retry_at=None)
        .execution_options(synchronize_session=False)
    )
    return rows_changed(result)
