"""Background maintenance inside ``prevenance serve``: release expired travel holds, deliver
outbox events to in-process handlers (a closed contact becomes a survey invitation) and, with
``PREVENANCE_SMTP_URL`` set, send pending incident notices, survey invitations and points expiry
warnings; once a day, run the points expiry policy (``loyalty.expiry``). Each pass is one
short transaction; a crash loses nothing because the work is re-found on the next pass."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import date
from functools import partial

import structlog
from sqlalchemy import Engine

from prevenance import wiring
from prevenance.common import outbox
from prevenance.common.clock import Clock
from prevenance.db import unit_of_work
from prevenance.desk import goodwill_mail, incidents, recovery
from prevenance.desk.mail_in import relay as desk_mail
from prevenance.loyalty import service as loyalty
from prevenance.settings import Settings
from prevenance.voice import invitations as voice_invitations

log = structlog.get_logger()
HANDLERS: dict[str, list[outbox.Handler]] = {
    "contact.closed": [voice_invitations.on_contact_closed],
    "survey.answered": [recovery.on_survey_answered],  # a detractor opens a recovery case
    "card_replacement.delivered": [wiring.on_card_delivered],  # a late card earns goodwill
    "goodwill.granted": [goodwill_mail.on_goodwill_granted],  # the member is told, in the log
}
# Events per maintenance transaction: small enough that the API's writers never wait long behind
# it (the SQLite writer is shared), large enough that a backlog drains in few passes.
OUTBOX_BATCH = 25


def run_once(
    engine: Engine,
    clock: Clock,
    *,
    deliver_events: bool = True,
    smtp_url: str | None = None,
    settings: Settings | None = None,
) -> dict[str, int]:
    """One maintenance pass; returns what it did, and ``steps_failed``. With NATS configured the
    outbox is left to the stream relay (``prevenance stream run``), which publishes each event and
    runs these handlers. Without an SMTP server incident notices and survey invitations wait
    (``prevenance desk send-notices`` and ``prevenance voice send-invitations`` send them).

    Each step runs on its own: one that fails is logged (``maintenance_step_failed``) and counted,
    and the others run all the same, so a failing delivery never stops the mail."""
    steps: list[tuple[str, Callable[[], int]]] = [("holds_released", lambda: _release_holds(engine, clock))]
    if deliver_events:
        steps.append(("events_delivered", lambda: _deliver_events(engine, clock)))
    if smtp_url:
        mail: dict[str, Callable[..., int]] = {
            "expiry_warnings_sent": loyalty.send_pending_warnings,
            "goodwill_mails_sent": goodwill_mail.send_pending,
            "notices_sent": incidents.send_pending_notices,
            "desk_mails_sent": desk_mail.send_pending,
            # Survey links are signed with the settings' secret key: the same settings as the survey page.
            "invitations_sent": partial(voice_invitations.send_pending_invitations, settings=settings),
        }
        for name, send in mail.items():
            steps.append((name, partial(_send, send, engine, smtp_url, clock)))
    done = dict.fromkeys(PASS_COUNTS, 0)
    for name, step in steps:
        try:
            done[name] = step()
        except Exception:
            log.exception("maintenance_step_failed", step=name)
            done["steps_failed"] += 1
    return done


PASS_COUNTS = (
    "holds_released",
    "events_delivered",
    "notices_sent",
    "invitations_sent",
    "expiry_warnings_sent",
    "desk_mails_sent",
    "goodwill_mails_sent",
    "steps_failed",
)
"""What a pass reports, in this order (a step not run reports 0)."""


def _release_holds(engine: Engine, clock: Clock) -> int:
    with unit_of_work(engine) as session:
        return loyalty.release_expired_holds(session, now=clock.now())


def _send(send: Callable[..., int], engine: Engine, smtp_url: str, clock: Clock) -> int:
    return send(engine, smtp_url=smtp_url, now=clock.now())


def _deliver_events(engine: Engine, clock: Clock) -> int:
    with unit_of_work(engine) as session:
        return outbox.deliver_pending(session, handlers=HANDLERS, now=clock.now(), limit=OUTBOX_BATCH)


def drain(
    engine: Engine,
    clock: Clock,
    *,
    deliver_events: bool = True,
    smtp_url: str | None = None,
    settings: Settings | None = None,
    stop: threading.Event | None = None,
) -> dict[str, int]:
    """Maintenance passes until no full outbox batch is left (or ``stop`` is set); the work done,
    summed, with the number of ``passes``. One run of the worker, and one line of its log: a backlog
    of thousands of events is one summary, not a line per batch."""
    totals: dict[str, int] = {}
    passes = 0
    while True:
        done = run_once(engine, clock, deliver_events=deliver_events, smtp_url=smtp_url, settings=settings)
        passes += 1
        for name, count in done.items():
            totals[name] = totals.get(name, 0) + count
        if done.get("events_delivered", 0) < OUTBOX_BATCH or (stop is not None and stop.is_set()):
            return {**totals, "passes": passes}


def did_work(done: dict[str, int]) -> bool:
    """True when a run changed something (the pass count alone is no work)."""
    return any(count for name, count in done.items() if name != "passes")


class Maintenance(threading.Thread):
    """A daemon thread draining the maintenance work every ``interval`` seconds until stopped;
    one log line per run that did something."""

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
        while not self.stop.wait(self.interval):
            self.run_once_logged()

    expired_on: date | None = None

    def expire_daily(self) -> dict[str, int] | None:
        """The points expiry policy, once a day (at the first run of the day; a re-run for a day
        already done is a no-op anyway), logged as one line when it expired or warned."""
        today = self.clock.now().date()
        if self.expired_on == today:
            return None
        try:
            report = loyalty.expire(self.engine, as_of=today, now=self.clock.now())
        except Exception:
            log.exception("expiry_failed")
            return None
        self.expired_on = today
        done = report.as_dict()
        if report.points_expired or report.warnings:
            log.info("expiry", **done)
        return done

    def run_once_logged(self) -> dict[str, int] | None:
        """One run (drain), logged as one summary line when it did work; failures are logged."""
        self.expire_daily()
        try:
            done = drain(
                self.engine,
                self.clock,
                deliver_events=self.deliver_events,
                smtp_url=self.smtp_url,
                settings=self.settings,
                stop=self.stop,
            )
        except Exception:
            log.exception("maintenance_failed")
            return None
        if did_work(done):
            log.info("maintenance", **done)
        return done
