"""The maintenance worker's log: one summary line per run that did work, however many batches the
run took (a backlog of 1,201 events is one line saying 1,201, not three lines of 500); a run with
nothing to do is silent. And ``demo load`` delivers the events it wrote, so a freshly loaded
server has no backlog to log at all."""

from __future__ import annotations

import threading
from typing import Any

import structlog
from sqlalchemy import Engine, func, select

from prevenance import maintenance
from prevenance.common import outbox
from prevenance.common.clock import FrozenClock
from prevenance.db import read_session, unit_of_work
from prevenance.demo.cli import deliver_demo_events


def _emit(engine: Engine, clock: FrozenClock, count: int) -> None:
    with unit_of_work(engine) as session:
        for n in range(count):
            outbox.emit(session, type="test.happened", payload={"n": n}, now=clock.now())


def _pending(engine: Engine) -> int:
    with read_session(engine) as session:
        return int(
            session.scalar(
                select(func.count())
                .select_from(outbox.OutboxEvent)
                .where(outbox.OutboxEvent.delivered_at.is_(None))
            )
            or 0
        )


def _maintenance(engine: Engine, clock: FrozenClock) -> maintenance.Maintenance:
    return maintenance.Maintenance(engine=engine, clock=clock, stop=threading.Event(), deliver_events=True)


def _lines(captured: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [line for line in captured if line["event"].startswith("maintenance")]


def test_a_backlog_is_one_summary_line_and_an_idle_run_is_silent(engine: Engine, clock: FrozenClock) -> None:
    # Events no handler listens to go 20 batches' worth per pass: two full passes, a part, and the
    # pass that finds the backlog gone (a pass of fewer than OUTBOX_BATCH events ends the run).
    per_pass = maintenance.OUTBOX_BATCH * outbox.UNHANDLED_PER_HANDLED
    batches = 2 * per_pass + per_pass // 2
    _emit(engine, clock, batches)
    runner = _maintenance(engine, clock)
    with structlog.testing.capture_logs() as captured:
        done = runner.run_once_logged()
    assert done is not None and done["events_delivered"] == batches and done["passes"] == 4
    lines = _lines(captured)
    assert len(lines) == 1, lines
    assert lines[0]["event"] == "maintenance" and lines[0]["events_delivered"] == batches
    assert lines[0]["passes"] == 4 and lines[0]["log_level"] == "info"
    assert _pending(engine) == 0
    with structlog.testing.capture_logs() as idle:
        assert runner.run_once_logged() == {
            "holds_released": 0,
            "events_delivered": 0,
            "notices_sent": 0,
            "invitations_sent": 0,
            "expiry_warnings_sent": 0,
            "desk_mails_sent": 0,
            "goodwill_mails_sent": 0,
            "steps_failed": 0,
            "passes": 1,
        }
    assert _lines(idle) == []


def test_a_failing_run_is_logged_once_as_a_failure(
    engine: Engine, clock: FrozenClock, monkeypatch: Any
) -> None:
    def broken(*_: Any, **__: Any) -> dict[str, int]:
        raise RuntimeError("database gone")

    monkeypatch.setattr(maintenance, "run_once", broken)
    with structlog.testing.capture_logs() as captured:
        assert _maintenance(engine, clock).run_once_logged() is None
    assert [line["event"] for line in _lines(captured)] == ["maintenance_failed"]


def test_demo_load_delivers_the_events_it_wrote(engine: Engine, clock: FrozenClock, monkeypatch: Any) -> None:
    monkeypatch.delenv("PREVENANCE_NATS_URL", raising=False)
    _emit(engine, clock, maintenance.OUTBOX_BATCH + 3)
    assert deliver_demo_events(engine) == maintenance.OUTBOX_BATCH + 3
    assert _pending(engine) == 0
    with structlog.testing.capture_logs() as captured:
        _maintenance(engine, clock).run_once_logged()
    assert _lines(captured) == []  # the server starts with nothing to catch up on
