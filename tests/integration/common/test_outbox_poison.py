"""One event a handler always refuses (a poison event) holds up nothing: the other events of its pass
are delivered in that same pass, the refused one is counted, keeps its error and backs off (no pass
picks it before its ``retry_at``: 1, 2, 4, … s after its 1st, 2nd, 3rd failure), so a handler
failing for a moment delays it and no more; it is parked at its ``outbox.MAX_ATTEMPTS``-th failure;
a parked event is picked by no pass until ``prevenance outbox retry`` sends it back, and once its
handler is fixed it is delivered once. The same in the stream relay's step 3 and in the maintenance
pass, whose other steps run when one fails. The frozen clock is moved between passes. On SQLite and
PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from datetime import timedelta
from typing import Any

import pytest
import structlog
from sqlalchemy import Column, Engine, Integer, MetaData, Table, insert, select, update
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from prevenance import maintenance
from prevenance.cli import app as cli
from prevenance.common import outbox
from prevenance.common.clock import FrozenClock
from prevenance.common.outbox import ManyEvents, OutboxEvent
from prevenance.db import read_session, unit_of_work
from prevenance.observability import read_database_gauges
from prevenance.stream.relay import deliver_published, read_pending


def _emit(engine: Engine, clock: FrozenClock, types: list[str]) -> list[str]:
    with unit_of_work(engine) as session:
        return [
            outbox.emit(session, type=kind, payload={"n": n}, now=clock.now()) for n, kind in enumerate(types)
        ]


def _rows(engine: Engine) -> dict[str, OutboxEvent]:
    with read_session(engine) as session:
        return {row.event_id: row for row in session.scalars(select(OutboxEvent).order_by(OutboxEvent.id))}


SEEN = Table(
    "test_outbox_seen",
    MetaData(),
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("n", Integer, nullable=False),
)
"""What the test handlers did, written in the delivering transaction: rolled back with it."""


@pytest.fixture(autouse=True)
def seen_table(engine: Engine) -> Iterator[None]:
    SEEN.create(engine)
    yield
    SEEN.drop(engine)


class Handlers:
    """``contact.closed`` handled set-based (``ManyEvents``), ``survey.answered`` one by one; the
    event whose payload ``n`` is in ``poison`` is refused by the set-based handler. What they did
    (committed) is ``seen``; every event handed to the set-based one (refused or not) is ``handed``."""

    def __init__(self, engine: Engine, poison: set[int]) -> None:
        self.engine, self.poison = engine, poison
        self.handed: list[int] = []

    def closed(self, session: Session, events: Sequence[OutboxEvent]) -> None:
        self.handed.extend(event.payload["n"] for event in events)
        session.execute(insert(SEEN), [{"n": event.payload["n"]} for event in events])
        for event in events:
            if event.payload["n"] in self.poison:
                raise ValueError(f"cannot read payload version of event {event.payload['n']}\nsecond line")

    def answered(self, session: Session, event: OutboxEvent) -> None:
        session.execute(insert(SEEN), {"n": event.payload["n"]})

    def table(self) -> dict[str, list[outbox.Handler]]:
        return {"contact.closed": [ManyEvents(self.closed)], "survey.answered": [self.answered]}

    @property
    def seen(self) -> list[int]:
        with read_session(self.engine) as session:
            return list(session.scalars(select(SEEN.c.n).order_by(SEEN.c.id)))


def _pass(engine: Engine, clock: FrozenClock, handlers: Handlers, limit: int = 500) -> int:
    with unit_of_work(engine) as session:
        return outbox.deliver_pending(session, handlers=handlers.table(), now=clock.now(), limit=limit)


def _fail_until_parked(engine: Engine, clock: FrozenClock, handlers: Handlers, event_id: str) -> None:
    """Passes until ``event_id`` (refused by ``handlers``) is parked, the clock moved to each
    ``retry_at`` in between."""
    for attempt in range(1, outbox.MAX_ATTEMPTS + 1):
        if attempt > 1:
            clock.advance(outbox.retry_delay(attempt - 1))
        _pass(engine, clock, handlers)
        assert _rows(engine)[event_id].attempts == attempt
    assert _rows(engine)[event_id].parked_at == clock.now()


KINDS = ["contact.closed", "contact.closed", "points.earned", "survey.answered", "contact.closed"]


def test_a_poison_event_does_not_block_the_others_of_its_pass(engine: Engine, clock: FrozenClock) -> None:
    ids = _emit(engine, clock, KINDS)
    handlers = Handlers(engine, poison={1})
    with structlog.testing.capture_logs() as captured:
        assert _pass(engine, clock, handlers) == 4
    assert handlers.seen == [0, 3, 4]  # in order, the poison one left out
    rows = _rows(engine)
    assert [rows[i].delivered_at is not None for i in ids] == [True, False, True, True, True]
    poison = rows[ids[1]]
    assert poison.attempts == 1 and poison.parked_at is None
    assert poison.retry_at == clock.now() + outbox.BACKOFF_BASE
    assert poison.last_error == "ValueError: cannot read payload version of event 1 second line"
    failed = [line for line in captured if line["event"] == "outbox_event_failed"]
    assert failed == [
        {
            "event": "outbox_event_failed",
            "log_level": "warning",
            "event_id": ids[1],
            "type": "contact.closed",
            "attempts": 1,
            "retry_at": poison.retry_at.isoformat(),
            "error": poison.last_error,
        }
    ]


def test_the_poison_event_backs_off_then_is_parked_after_two_minutes_and_picked_no_more(
    engine: Engine, clock: FrozenClock
) -> None:
    ids = _emit(engine, clock, ["contact.closed", "contact.closed"])
    handlers = Handlers(engine, poison={0})
    first_failure = clock.now()
    for attempt in range(1, outbox.MAX_ATTEMPTS + 1):
        if attempt > 1:
            # Just before its retry_at a pass leaves it alone; at its retry_at it is tried again.
            retry_at = _rows(engine)[ids[0]].retry_at
            assert retry_at == clock.now() + outbox.retry_delay(attempt - 1)
            clock.current = retry_at - timedelta(milliseconds=1)
            assert _pass(engine, clock, handlers) == 0
            assert _rows(engine)[ids[0]].attempts == attempt - 1
            clock.current = retry_at
        with structlog.testing.capture_logs() as captured:
            _pass(engine, clock, handlers)
        assert _rows(engine)[ids[0]].attempts == attempt
    # Set-based, then alone: twice per retry, never in between.
    assert handlers.handed == [0, 1, 0, 1] + [0, 0] * (outbox.MAX_ATTEMPTS - 1)
    poison = _rows(engine)[ids[0]]
    assert poison.parked_at == clock.now() and poison.delivered_at is None and poison.retry_at is None
    # 1 + 2 + 4 + … + 64 s: about two minutes of failing before an operator is needed.
    assert clock.now() - first_failure == timedelta(seconds=127)
    assert poison.last_error is not None and len(poison.last_error) <= outbox.ERROR_LENGTH
    parked = [line for line in captured if line["event"] == "outbox_event_parked"]
    assert len(parked) == 1 and parked[0]["log_level"] == "error"
    assert (parked[0]["event_id"], parked[0]["type"]) == (ids[0], "contact.closed")
    assert parked[0]["error"].startswith("ValueError: cannot read payload version")
    # Parked: no pass loads it again (its handler is not called, its count stays).
    handlers.poison = set()
    assert _pass(engine, clock, handlers) == 0
    assert handlers.seen == [1]
    assert _rows(engine)[ids[0]].attempts == outbox.MAX_ATTEMPTS
    # Left out of the backlog (and its lag), counted apart for the operator.
    gauges = read_database_gauges(engine)
    assert gauges["prevenance_outbox_parked_events"] == 1
    assert (gauges["prevenance_outbox_pending_events"], gauges["prevenance_outbox_lag_seconds"]) == (0, 0)


def test_failing_events_do_not_hold_the_window_of_later_events(engine: Engine, clock: FrozenClock) -> None:
    """A window (``limit``) full of refused events still lets the events behind it through: backing
    off, the refused ones leave the window at once (and for good once parked)."""
    ids = _emit(engine, clock, ["contact.closed"] * 5)
    handlers = Handlers(engine, poison={0, 1})
    for _ in range(3):
        _pass(engine, clock, handlers, limit=2)
        clock.advance(timedelta(milliseconds=200))
    assert handlers.seen == [2, 3, 4]
    assert handlers.handed == [0, 1, 0, 1, 2, 3, 4]  # the refused ones tried once each, alone
    assert [row.attempts for row in _rows(engine).values()] == [1, 1, 0, 0, 0]
    for _ in range(outbox.MAX_ATTEMPTS - 1):
        clock.advance(timedelta(seconds=64))
        _pass(engine, clock, handlers, limit=2)
    assert all(_rows(engine)[i].parked_at is not None for i in ids[:2])


def test_a_long_error_is_cut_to_the_column(engine: Engine, clock: FrozenClock) -> None:
    ids = _emit(engine, clock, ["survey.answered"])

    def broken(session: Session, event: OutboxEvent) -> None:
        raise RuntimeError("x" * 2000)

    with unit_of_work(engine) as session:
        outbox.deliver_pending(session, handlers={"survey.answered": [broken]}, now=clock.now())
    error = _rows(engine)[ids[0]].last_error
    assert error is not None and len(error) == outbox.ERROR_LENGTH and error.startswith("RuntimeError: xxx")


def test_the_relay_step_3_delivers_the_others_and_counts_the_poison_event(
    engine: Engine, clock: FrozenClock
) -> None:
    ids = _emit(engine, clock, KINDS)
    handlers = Handlers(engine, poison={4})
    for attempt in range(1, outbox.MAX_ATTEMPTS + 1):
        if attempt > 1:
            clock.advance(outbox.retry_delay(attempt - 1) / 2)
            assert read_pending(engine, limit=500, now=clock.now()) == []  # backing off: not published
            clock.advance(outbox.retry_delay(attempt - 1) / 2)
        published = read_pending(engine, limit=500, now=clock.now())
        done = deliver_published(
            engine, ids=[event.id for event in published], handlers=handlers.table(), now=clock.now()
        )
        assert done == (4 if attempt == 1 else 0)
        assert [event.event_id for event in published] == (ids if attempt == 1 else [ids[4]])
        assert _rows(engine)[ids[4]].attempts == attempt
    assert handlers.seen == [0, 1, 3]
    rows = _rows(engine)
    assert all(rows[i].delivered_at is not None for i in ids[:4])
    assert rows[ids[4]].parked_at is not None and rows[ids[4]].delivered_at is None
    clock.advance(timedelta(hours=1))
    assert read_pending(engine, limit=500, now=clock.now()) == []  # parked: not published again


def test_the_relay_step_3_leaves_alone_an_event_that_began_backing_off_since_step_1(
    engine: Engine, clock: FrozenClock
) -> None:
    """Two relays read the same event; the first refuses it: the second's step 3 does not run its
    handler again before its retry_at."""
    ids = _emit(engine, clock, ["contact.closed"])
    handlers = Handlers(engine, poison={0})
    published = read_pending(engine, limit=500, now=clock.now())
    assert [event.event_id for event in published] == ids
    for _ in range(2):
        deliver_published(engine, ids=[published[0].id], handlers=handlers.table(), now=clock.now())
    assert handlers.handed == [0, 0] and _rows(engine)[ids[0]].attempts == 1  # set-based, then alone


@pytest.fixture
def cli_database(cli_env: Engine) -> CliRunner:
    """A command-line runner on the test database."""
    return CliRunner()


def test_the_cli_lists_parked_events_and_retry_sends_one_back_delivered_once(
    engine: Engine, clock: FrozenClock, cli_database: CliRunner
) -> None:
    ids = _emit(engine, clock, ["contact.closed", "contact.closed", "contact.closed"])
    handlers = Handlers(engine, poison={0, 2})
    _fail_until_parked(engine, clock, handlers, ids[0])
    assert _rows(engine)[ids[2]].parked_at is not None
    listed = cli_database.invoke(cli, ["outbox", "parked", "--json"])
    assert listed.exit_code == 0, listed.output
    rows = json.loads(listed.output)
    assert [(row["event_id"], row["type"], row["attempts"]) for row in rows] == [
        (ids[0], "contact.closed", outbox.MAX_ATTEMPTS),
        (ids[2], "contact.closed", outbox.MAX_ATTEMPTS),
    ]
    assert all(row["parked_at"] and row["last_error"].startswith("ValueError:") for row in rows)
    text = cli_database.invoke(cli, ["outbox", "parked"])
    assert text.exit_code == 0 and ids[0] in text.output and "2 parked event(s)" in text.output

    unknown = cli_database.invoke(cli, ["outbox", "retry", "evt_nope"])
    assert unknown.exit_code == 2 and unknown.output.strip() == "error: no outbox event 'evt_nope'"
    delivered = cli_database.invoke(cli, ["outbox", "retry", ids[1]])
    assert (
        delivered.exit_code == 2 and delivered.output.strip() == f"error: {ids[1]} is not parked (delivered)"
    )
    assert cli_database.invoke(cli, ["outbox", "retry"]).exit_code == 2

    handlers.poison = set()  # the handler is fixed
    retried = cli_database.invoke(cli, ["outbox", "retry", ids[0]])
    assert retried.exit_code == 0, retried.output
    event = _rows(engine)[ids[0]]
    assert (event.attempts, event.parked_at, event.delivered_at, event.retry_at) == (0, None, None, None)
    assert _pass(engine, clock, handlers) == 1 and _pass(engine, clock, handlers) == 0
    assert handlers.seen == [1, 0]  # delivered once; the other parked event still waits
    assert _rows(engine)[ids[2]].parked_at is not None

    every = cli_database.invoke(cli, ["outbox", "retry", "--all"])
    assert every.exit_code == 0 and every.output.startswith("1 event(s) back to pending")
    assert _pass(engine, clock, handlers) == 1
    assert handlers.seen == [1, 0, 2]
    assert json.loads(cli_database.invoke(cli, ["outbox", "parked", "--json"]).output) == []


def test_a_failing_maintenance_step_does_not_stop_the_others(
    engine: Engine, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    ran: list[str] = []

    def sender(name: str) -> Any:
        def send(*_: Any, **__: Any) -> int:
            ran.append(name)
            return 1

        return send

    monkeypatch.setattr(maintenance.loyalty, "send_pending_warnings", sender("warnings"))
    monkeypatch.setattr(maintenance.goodwill_mail, "send_pending", sender("goodwill"))
    monkeypatch.setattr(maintenance.incidents, "send_pending_notices", sender("notices"))
    monkeypatch.setattr(maintenance.desk_mail, "send_pending", sender("desk"))
    monkeypatch.setattr(maintenance.voice_invitations, "send_pending_invitations", sender("invitations"))

    def broken(*_: Any, **__: Any) -> int:
        raise RuntimeError("database gone")

    deliver_pending = outbox.deliver_pending
    monkeypatch.setattr(maintenance.outbox, "deliver_pending", broken)
    with structlog.testing.capture_logs() as captured:
        done = maintenance.run_once(engine, clock, smtp_url="smtp://127.0.0.1:1")
    assert ran == ["warnings", "goodwill", "notices", "desk", "invitations"]
    assert done["steps_failed"] == 1 and done["events_delivered"] == 0 and done["notices_sent"] == 1
    failures = [line for line in captured if line["event"] == "maintenance_step_failed"]
    assert [(line["step"], line["log_level"]) for line in failures] == [("events_delivered", "error")]

    # The first step failing: the outbox is still delivered.
    monkeypatch.setattr(maintenance.outbox, "deliver_pending", deliver_pending)
    monkeypatch.setattr(maintenance.loyalty, "release_expired_holds", broken)
    _emit(engine, clock, ["points.earned"])
    done = maintenance.run_once(engine, clock)
    assert (done["steps_failed"], done["events_delivered"]) == (1, 1)


def test_a_poison_event_in_maintenance_delivers_the_rest_and_the_mail_runs(
    engine: Engine, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    handlers = Handlers(engine, poison={0})
    monkeypatch.setattr(maintenance, "HANDLERS", handlers.table())
    sent: list[str] = []
    monkeypatch.setattr(
        maintenance.incidents, "send_pending_notices", lambda *_, **__: sent.append("notices") or 0
    )
    ids = _emit(engine, clock, ["contact.closed", "survey.answered"])
    done = maintenance.run_once(engine, clock, smtp_url="smtp://127.0.0.1:1")
    assert done["events_delivered"] == 1 and done["steps_failed"] == 0 and sent == ["notices"]
    assert handlers.seen == [1] and _rows(engine)[ids[0]].attempts == 1


def test_erasing_the_member_blanks_the_error_a_handler_gave_for_their_event(
    engine: Engine, clock: FrozenClock
) -> None:
    from prevenance import wiring
    from prevenance.customers import service as customers
    from prevenance.views import privacy

    wiring.install_erasers()

    with unit_of_work(engine) as session:
        data = customers.MemberData("Camille Martin", "camille@example.fr", "fr", "FR", "gold")
        customers.upsert(session, ref="P1", data=data, now=clock.now())
        event_id = outbox.emit(session, type="survey.answered", payload={"member_ref": "P1"}, now=clock.now())

    def broken(session: Session, event: OutboxEvent) -> None:
        raise LookupError(f"no contact for member {event.payload['member_ref']} (Camille Martin)")

    with unit_of_work(engine) as session:
        outbox.deliver_pending(session, handlers={"survey.answered": [broken]}, now=clock.now())
    assert "Camille Martin" in (_rows(engine)[event_id].last_error or "")
    with unit_of_work(engine) as session:
        privacy.erase_member(session, ref="P1", now=clock.now())
    assert _rows(engine)[event_id].last_error is None


def test_a_failing_event_is_not_retried_before_its_retry_at_and_holds_up_no_later_event(
    engine: Engine, clock: FrozenClock
) -> None:
    ids = _emit(engine, clock, ["contact.closed"])
    handlers = Handlers(engine, poison={0})
    assert _pass(engine, clock, handlers) == 0
    first = _rows(engine)[ids[0]]
    assert (first.attempts, first.retry_at) == (1, clock.now() + timedelta(seconds=1))
    later = _emit(engine, clock, ["survey.answered", "contact.closed"])
    handlers.handed.clear()

    clock.advance(timedelta(milliseconds=500))
    assert _pass(engine, clock, handlers) == 2  # the events behind it are not delayed
    assert all(_rows(engine)[i].delivered_at == clock.now() for i in later)
    assert handlers.handed == [1]  # not handed to its handler
    assert read_pending(engine, limit=500, now=clock.now()) == []  # nor to the relay
    untouched = _rows(engine)[ids[0]]
    assert (untouched.attempts, untouched.retry_at, untouched.last_error) == (
        1,
        first.retry_at,
        first.last_error,
    )

    clock.advance(timedelta(milliseconds=500))  # its retry_at
    assert [event.event_id for event in read_pending(engine, limit=500, now=clock.now())] == ids
    assert _pass(engine, clock, handlers) == 0
    assert handlers.handed == [1, 0, 0]  # set-based, then alone
    retried = _rows(engine)[ids[0]]
    assert (retried.attempts, retried.retry_at) == (2, clock.now() + timedelta(seconds=2))


def test_a_handler_failing_for_a_second_delays_the_event_and_delivers_it_once(
    engine: Engine, clock: FrozenClock
) -> None:
    """Passes every 0.2 s (the relay's pace) while the handler fails for 1.5 s: it is refused twice
    (at 0 s and at its retry_at 1 s), then handled at 3 s, once, never parked. Counting passes, it
    was parked within a second."""
    start = clock.now()
    calls: list[float] = []

    def flaky(session: Session, event: OutboxEvent) -> None:
        calls.append((clock.now() - start).total_seconds())
        if clock.now() < start + timedelta(seconds=1.5):
            raise TimeoutError("lock timeout")
        session.execute(insert(SEEN), {"n": event.payload["n"]})

    ids = _emit(engine, clock, ["survey.answered"])
    delivered = 0
    for _ in range(50):  # 10 s
        with unit_of_work(engine) as session:
            delivered += outbox.deliver_pending(
                session, handlers={"survey.answered": [flaky]}, now=clock.now()
            )
        clock.advance(timedelta(milliseconds=200))
    assert calls == [0.0, 0.0, 1.0, 1.0, 3.0]  # a failing pass tries it set-based, then alone
    assert delivered == 1
    with read_session(engine) as session:
        assert list(session.scalars(select(SEEN.c.n))) == [0]
    event = _rows(engine)[ids[0]]
    assert event.delivered_at == start + timedelta(seconds=3) and event.parked_at is None
    assert event.attempts == 2 and event.last_error == "TimeoutError: lock timeout"


def test_the_backoff_doubles_from_one_second_and_parking_comes_after_about_two_minutes() -> None:
    delays = [outbox.retry_delay(attempt).total_seconds() for attempt in range(1, outbox.MAX_ATTEMPTS)]
    assert delays == [1, 2, 4, 8, 16, 32, 64]
    assert not outbox.parks(outbox.MAX_ATTEMPTS - 1) and outbox.parks(outbox.MAX_ATTEMPTS)


def test_retry_clears_the_backoff_of_a_parked_event(
    engine: Engine, clock: FrozenClock, cli_database: CliRunner
) -> None:
    """A parked event still carrying a retry_at to come (parked by hand, or by a version counting
    fewer attempts) is delivered by the first pass after ``outbox retry``, not at that retry_at."""
    ids = _emit(engine, clock, ["contact.closed", "contact.closed"])
    with unit_of_work(engine) as session:
        session.execute(
            update(OutboxEvent)
            .where(OutboxEvent.event_id.in_(ids))
            .values(parked_at=clock.now(), attempts=3, retry_at=clock.now() + timedelta(minutes=5))
        )
    handlers = Handlers(engine, poison=set())
    assert cli_database.invoke(cli, ["outbox", "retry", ids[0]]).exit_code == 0
    assert _rows(engine)[ids[0]].retry_at is None
    assert _pass(engine, clock, handlers) == 1 and handlers.seen == [0]
    assert cli_database.invoke(cli, ["outbox", "retry", "--all"]).exit_code == 0
    assert _rows(engine)[ids[1]].retry_at is None
    assert _pass(engine, clock, handlers) == 1 and handlers.seen == [0, 1]
