"""Real concurrency on the desk's writes: threads released together, each in its own transaction.

The outcome must be one some serial order would give: one contact per id, every contact counted
in its case, one event per state change.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, TypeVar

import pytest
from sqlalchemy import Engine, func, select

from prevenance.common.clock import FrozenClock
from prevenance.common.idempotency import Outcome
from prevenance.common.outbox import OutboxEvent
from prevenance.customers import service as customers
from prevenance.db import read_session, run_in_transaction
from prevenance.desk import service
from prevenance.desk.tables import Case, Contact
from tests.races import race

pytestmark = pytest.mark.slow
T = TypeVar("T")
THREADS = 8


def setup_member(engine: Engine, clock: FrozenClock) -> None:
    data = customers.MemberData(
        name="Marie Curie", email="marie@example.fr", language="fr", country="FR", product="gold"
    )
    run_in_transaction(engine, lambda s: customers.upsert(s, ref="M1", data=data, now=clock.now()))


def log(engine: Engine, clock: FrozenClock, contact_id: str, case_id: str | None = None) -> Outcome:
    data = service.ContactInput(
        id=contact_id,
        member_ref="M1",
        channel="phone",
        direction="inbound",
        agent="alice",
        team="t1",
        reason="statement.question",
        started_at=clock.now(),
        ended_at=clock.now() + timedelta(minutes=5),
        notes="",
        outcome="pending",
        case_id=case_id,
    )
    return run_in_transaction(engine, lambda s: service.log_contact(s, contact=data, now=clock.now()))


def count(engine: Engine, statement: Any) -> int:
    with read_session(engine) as session:
        return int(session.scalar(statement) or 0)


def test_one_contact_id_logged_at_once_by_many_is_logged_once(engine: Engine, clock: FrozenClock) -> None:
    setup_member(engine, clock)
    results = race(THREADS, lambda _: log(engine, clock, "C1"))
    assert all(isinstance(r, Outcome) for r in results), results
    assert len({r.body["case_id"] for r in results if isinstance(r, Outcome)}) == 1
    assert count(engine, select(func.count()).select_from(Contact)) == 1
    assert count(engine, select(func.count()).select_from(Case)) == 1
    closed = select(func.count()).select_from(OutboxEvent).where(OutboxEvent.type == "contact.closed")
    assert count(engine, closed) == 1


def test_contacts_filed_in_one_case_at_once_are_all_counted(engine: Engine, clock: FrozenClock) -> None:
    setup_member(engine, clock)
    case_id = log(engine, clock, "FIRST").body["case_id"]
    results = race(THREADS, lambda i: log(engine, clock, f"C{i}", case_id=case_id))
    assert all(isinstance(r, Outcome) and r.status_code == 201 for r in results), results
    with read_session(engine) as session:
        case = session.get(Case, case_id)
        assert case is not None and case.contact_count == THREADS + 1


def test_a_card_dispatched_by_many_at_once_is_dispatched_once(engine: Engine, clock: FrozenClock) -> None:
    setup_member(engine, clock)
    order = service.CardReplacementInput(id="R1", member_ref="M1", city="Paris", country="FR", address="")
    run_in_transaction(engine, lambda s: service.order_card_replacement(s, order=order, now=clock.now()))
    results = race(
        THREADS,
        lambda _: run_in_transaction(
            engine,
            lambda s: service.advance_card_replacement(
                s, replacement_id="R1", action="dispatch", now=clock.now()
            ),
        ),
    )
    assert all(isinstance(r, dict) and r["status"] == "dispatched" for r in results), results
    events = (
        select(func.count()).select_from(OutboxEvent).where(OutboxEvent.type == "card_replacement.dispatched")
    )
    assert count(engine, events) == 1
