"""``apply_batch`` without a NATS server: a batch runs through the earn engine in one transaction
without savepoints, and a refused message is decided before anything is written, so it is left out
while its neighbours commit in that same transaction; the reference data memoised per transaction
(programme, system accounts) never outlives it."""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import Engine, event, func, select

from prevenance.common.clock import FrozenClock
from prevenance.db import read_session, unit_of_work
from prevenance.loyalty import ledger, programme
from prevenance.loyalty.tables import CardTransaction
from prevenance.stream.consumer import ACCEPTED, REJECTED, REPLAYED, apply_batch
from tests.conftest import tx_body
from tests.integration.stream.conftest import add_members


def _savepoints_during(engine: Engine, run: Any) -> tuple[Any, int]:
    """What ``run()`` returned and how many SAVEPOINT statements it sent."""
    seen: list[str] = []

    def watch(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.upper().startswith("SAVEPOINT"):
            seen.append(statement)

    event.listen(engine, "before_cursor_execute", watch)
    try:
        return run(), len(seen)
    finally:
        event.remove(engine, "before_cursor_execute", watch)


def _messages(*bodies: dict[str, Any]) -> list[bytes]:
    return [orjson.dumps(body) for body in bodies]


def _stored(engine: Engine) -> set[str]:
    with read_session(engine) as session:
        return set(session.scalars(select(CardTransaction.id)))


def test_a_clean_batch_takes_no_savepoint(engine: Engine, clock: FrozenClock) -> None:
    add_members(engine, clock, ["M1", "M2"])
    batch = _messages(
        tx_body("T1", "M1", "10.00"), tx_body("T2", "M2", "20.00"), tx_body("T1", "M1", "10.00")
    )
    results, savepoints = _savepoints_during(engine, lambda: apply_batch(engine, clock, batch))
    assert [r.status for r in results] == [ACCEPTED, ACCEPTED, REPLAYED]
    assert savepoints == 0
    assert [r.body["points_earned"] for r in results] == [10, 20, 10]
    assert _stored(engine) == {"T1", "T2"}


def test_a_refusal_writes_nothing_and_keeps_its_neighbours_in_the_same_transaction(
    engine: Engine, clock: FrozenClock
) -> None:
    add_members(engine, clock, ["M1"])
    batch = _messages(
        tx_body("T1", "M1", "10.00"),
        tx_body("T2", "NOBODY", "10.00"),  # unknown member: refused
        tx_body("T3", "M1", "30.00"),
        tx_body("T1", "M1", "99.00"),  # T1's id with another body: refused
        tx_body("T4", "M1", "40.00"),
    )
    results, savepoints = _savepoints_during(engine, lambda: apply_batch(engine, clock, batch))
    assert [r.status for r in results] == [ACCEPTED, REJECTED, ACCEPTED, REJECTED, ACCEPTED]
    assert [r.body.get("field") for r in results if r.status == REJECTED] == ["member_ref", "id"]
    assert savepoints == 0  # refusals are decided before the batch's statements: nothing to undo
    assert _stored(engine) == {"T1", "T3", "T4"}
    with read_session(engine) as session:
        report = ledger.audit(session)
        balance = session.scalar(
            select(func.sum(CardTransaction.units_current)).where(CardTransaction.id.in_(["T1", "T3", "T4"]))
        )
    assert report["ok"], report
    assert balance == 80 and results[-1].body["balance"] == 80  # nothing of the first round was kept


def test_the_programme_is_read_once_per_transaction_and_a_new_version_is_seen_at_once(
    engine: Engine, clock: FrozenClock
) -> None:
    with unit_of_work(engine) as session:
        first = programme.current(session)
        assert programme.current(session) is first  # memoised
        programme.set_fx_rate(session, currency="USD", rate="0.5", now=clock.now(), by="test")
        assert str(programme.current(session).fx_rates["USD"]) == "0.5"  # the writer forgot the memo
    with unit_of_work(engine) as session:
        assert str(programme.current(session).fx_rates["USD"]) == "0.5"


def test_nothing_is_memoised_inside_a_savepoint(engine: Engine, clock: FrozenClock) -> None:
    """A value read in a savepoint could be one the savepoint wrote and then rolled back."""
    with unit_of_work(engine) as session:
        with session.begin_nested():
            inside = ledger.system_account(session, name="issuance", unit="points")
        after = ledger.system_account(session, name="issuance", unit="points")
        assert after == inside and after is not inside  # read again, not taken from a memo
        assert ledger.system_account(session, name="issuance", unit="points") is after
        with session.begin_nested():
            assert ledger.system_account(session, name="issuance", unit="points") is not after
    with unit_of_work(engine) as session:  # a new transaction, a new memo
        assert ledger.system_account(session, name="issuance", unit="points") is not after
