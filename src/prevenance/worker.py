"""Background maintenance inside ``prevenance serve``: release expired travel holds and deliver
outbox events to in-process handlers. Each pass is one short transaction; a crash loses nothing
because the work is re-found on the next pass."""

from __future__ import annotations

import threading

import structlog
from sqlalchemy import Engine

from prevenance.common import outbox
from prevenance.common.clock import Clock
from prevenance.db import unit_of_work
from prevenance.loyalty import service as loyalty

log = structlog.get_logger()
HANDLERS: dict[str, list[outbox.Handler]] = {}


def run_once(engine: Engine, clock: Clock, *, deliver_events: bool = True) -> dict[str, int]:
    """One maintenance pass; returns what it did. With NATS configured the outbox is left to the
    stream relay (``prevenance stream run``), which publishes each event and runs these handlers."""
    with unit_of_work(engine) as session:
        released = loyalty.release_expired_holds(session, now=clock.now())
    delivered = 0
    if deliver_events:
        with unit_of_work(engine) as session:
            delivered = outbox.deliver_pending(session, handlers=HANDLERS, now=clock.now())
    return {"holds_released": released, "events_delivered": delivered}


class Maintenance(threading.Thread):
    """A daemon thread running ``run_once`` every ``interval`` seconds until stopped."""

    def __init__(
        self,
        *,
        engine: Engine,
        clock: Clock,
        stop: threading.Event,
        interval: float = 5.0,
        deliver_events: bool = True,
    ) -> None:
        super().__init__(name="prevenance-maintenance", daemon=True)
        self.engine, self.clock, self.stop, self.interval = engine, clock, stop, interval
        self.deliver_events = deliver_events

    def run(self) -> None:
        while not self.stop.wait(self.interval):
            try:
                done = run_once(self.engine, self.clock, deliver_events=self.deliver_events)
                if any(done.values()):
                    log.info("maintenance", **done)
            except Exception:
                log.exception("maintenance_failed")
