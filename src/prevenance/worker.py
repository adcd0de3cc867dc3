"""Background maintenance inside ``prevenance serve``: release expired travel holds, deliver
outbox events to in-process handlers (a closed contact becomes a survey invitation) and, with
``PREVENANCE_SMTP_URL`` set, send pending incident notices and survey invitations. Each pass is one
short transaction; a crash loses nothing because the work is re-found on the next pass."""

from __future__ import annotations

import threading

import structlog
from sqlalchemy import Engine

from prevenance.common import outbox
from prevenance.common.clock import Clock
from prevenance.db import unit_of_work
from prevenance.desk import incidents
from prevenance.loyalty import service as loyalty
from prevenance.settings import Settings
from prevenance.voice import invitations as voice_invitations

log = structlog.get_logger()
HANDLERS: dict[str, list[outbox.Handler]] = {"contact.closed": [voice_invitations.on_contact_closed]}
OUTBOX_BATCH = 500  # events per maintenance transaction


def run_once(
    engine: Engine,
    clock: Clock,
    *,
    deliver_events: bool = True,
    smtp_url: str | None = None,
    settings: Settings | None = None,
) -> dict[str, int]:
    """One maintenance pass; returns what it did. With NATS configured the outbox is left to the
    stream relay (``prevenance stream run``), which publishes each event and runs these handlers.
    Without an SMTP server incident notices and survey invitations wait (``prevenance desk
    send-notices`` and ``prevenance voice send-invitations`` send them)."""
    with unit_of_work(engine) as session:
        released = loyalty.release_expired_holds(session, now=clock.now())
    delivered = 0
    if deliver_events:
        with unit_of_work(engine) as session:
            delivered = outbox.deliver_pending(
                session, handlers=HANDLERS, now=clock.now(), limit=OUTBOX_BATCH
            )
    notices = invitations = 0
    if smtp_url:
        notices = incidents.send_pending_notices(engine, smtp_url=smtp_url, now=clock.now())
        # Survey links are signed with the settings' secret key: the same settings as the survey page.
        invitations = voice_invitations.send_pending_invitations(
            engine, smtp_url=smtp_url, now=clock.now(), settings=settings
        )
    return {
        "holds_released": released,
        "events_delivered": delivered,
        "notices_sent": notices,
        "invitations_sent": invitations,
    }


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
        smtp_url: str | None = None,
        settings: Settings | None = None,
    ) -> None:
        super().__init__(name="prevenance-maintenance", daemon=True)
        self.engine, self.clock, self.stop, self.interval = engine, clock, stop, interval
        self.deliver_events, self.smtp_url, self.settings = deliver_events, smtp_url, settings

    def run(self) -> None:
        backlog = False
        # After a full batch there is probably more: go again at once instead of sleeping.
        while not self.stop.wait(0 if backlog else self.interval):
            backlog = False
            try:
                done = run_once(
                    self.engine,
                    self.clock,
                    deliver_events=self.deliver_events,
                    smtp_url=self.smtp_url,
                    settings=self.settings,
                )
                if any(done.values()):
                    log.info("maintenance", **done)
                backlog = done.get("events_delivered", 0) >= OUTBOX_BATCH
            except Exception:
                log.exception("maintenance_failed")
