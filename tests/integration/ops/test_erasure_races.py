"""An erasure and a write about the same member never interleave (PostgreSQL, where write
transactions run side by side): a write in flight when the erasure starts is committed first and
scrubbed by it; a write that starts during the erasure finds no member by the erased reference. Each
side is held open at the point that matters, and the other is let go only once the server shows it
waiting for the row lock, so the interleaving is forced, not hoped for."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import Engine, select, text

from prevenance.common.clock import FrozenClock
from prevenance.common.outbox import OutboxEvent
from prevenance.common.problems import PrevenanceError
from prevenance.customers.errors import UnknownMemberInBody
from prevenance.db import read_session, run_in_transaction, unit_of_work
from prevenance.desk import contacts
from prevenance.desk.tables import Contact
from prevenance.loyalty import earning
from prevenance.loyalty.tables import CardTransaction
from prevenance.loyalty.transactions import TransactionInput
from prevenance.views import privacy
from tests.conftest import Api, member_body
from tests.integration.desk.contact_inputs import contact_input

SECRET = "Lives at 3 rue X, calls at night"
WAIT_SECONDS = 120  # a bound for a stuck test, never a timing the result depends on


def _contact(contact_id: str, ref: str, now: datetime) -> contacts.ContactInput:
    return contact_input(contact_id, ref, now, notes=SECRET)


def _until_a_transaction_waits_for_a_lock(engine: Engine) -> None:
    """Until the server shows a backend of this database waiting for a lock (its own view of it)."""
    deadline = time.monotonic() + WAIT_SECONDS
    with engine.connect() as connection:
        connection.execute(text("SELECT 1")).all()
        while time.monotonic() < deadline:
            waiting = connection.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
            ).scalar_one()
            connection.rollback()  # a fresh snapshot of the activity view each time
            if waiting:
                return
            time.sleep(0.01)
    raise AssertionError("no transaction ever waited for the other one's lock")


def _in_thread(work: Callable[[], Any]) -> tuple[threading.Thread, dict[str, Any]]:
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["result"] = work()
        except BaseException as error:  # handed to the test, which asserts on it
            outcome["error"] = error

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


def _erasure_held_before_commit(
    engine: Engine, clock: FrozenClock, ref: str
) -> tuple[threading.Thread, dict[str, Any], threading.Event]:
    """An erasure of ``ref`` done and held open before its commit until the returned event is set."""
    erased, go = threading.Event(), threading.Event()

    def erase_and_hold() -> None:
        with unit_of_work(engine) as session:
            privacy.erase_member(session, ref=ref, now=clock.now())
            erased.set()
            assert go.wait(WAIT_SECONDS)

    eraser, outcome = _in_thread(erase_and_hold)
    assert erased.wait(WAIT_SECONDS)
    return eraser, outcome, go


def _secret_left(engine: Engine) -> list[str]:
    with read_session(engine) as session:
        notes = [n for n in session.scalars(select(Contact.notes)) if SECRET in (n or "")]
        events = [str(p) for p in session.scalars(select(OutboxEvent.payload)) if SECRET in str(p)]
    return notes + events


# SQLite runs one write transaction at a time: an erasure cannot interleave with a write there.
pytestmark = pytest.mark.parametrize("backend", ["postgresql"], indirect=True)


@pytest.fixture
def postgres(engine: Engine) -> Engine:
    return engine


def test_a_write_in_flight_when_the_erasure_starts_is_committed_first_then_scrubbed(
    postgres: Engine, clock: FrozenClock, api: Api
) -> None:
    assert api.put("/v1/members/R1", member_body()).status_code == 201
    written, go = threading.Event(), threading.Event()

    def write_and_hold() -> None:
        with unit_of_work(postgres) as session:
            contacts.log_contact(session, contact=_contact("C1", "R1", clock.now()), now=clock.now())
            written.set()
            assert go.wait(WAIT_SECONDS)

    writer, written_outcome = _in_thread(write_and_hold)
    assert written.wait(WAIT_SECONDS)
    eraser, erased = _in_thread(
        lambda: run_in_transaction(postgres, lambda s: privacy.erase_member(s, ref="R1", now=clock.now()))
    )
    _until_a_transaction_waits_for_a_lock(postgres)
    go.set()
    writer.join()
    eraser.join()
    assert "error" not in written_outcome and "error" not in erased, (written_outcome, erased)
    assert erased["result"]["changed"]["desk_contacts"] == 1  # the contact committed meanwhile
    assert _secret_left(postgres) == []


def test_a_write_that_starts_during_the_erasure_finds_no_member_and_writes_nothing(
    postgres: Engine, clock: FrozenClock, api: Api
) -> None:
    assert api.put("/v1/members/R1", member_body()).status_code == 201
    eraser, erased_outcome, go = _erasure_held_before_commit(postgres, clock, "R1")
    writer, written = _in_thread(
        lambda: run_in_transaction(
            postgres,
            lambda s: contacts.log_contact(s, contact=_contact("C2", "R1", clock.now()), now=clock.now()),
        )
    )
    _until_a_transaction_waits_for_a_lock(postgres)
    go.set()
    eraser.join()
    writer.join()
    assert "error" not in erased_outcome, erased_outcome
    assert isinstance(written.get("error"), UnknownMemberInBody), written
    assert isinstance(written["error"], PrevenanceError) and written["error"].status == 422
    assert _secret_left(postgres) == []
    with read_session(postgres) as session:
        assert session.get(Contact, "C2") is None


def test_a_batch_of_earns_that_starts_during_the_erasure_refuses_the_erased_member_only(
    postgres: Engine, clock: FrozenClock, api: Api
) -> None:
    """The earn engine reads a batch's members in one statement; it holds them the same way, so the
    erased member's earn finds no member while the other earn of the batch is written."""
    assert api.put("/v1/members/R1", member_body()).status_code == 201
    assert api.put("/v1/members/R2", member_body(email="r2@example.fr")).status_code == 201

    def earn(tx_id: str, ref: str) -> earning.EarnRequest:
        return earning.EarnRequest.of(
            TransactionInput(tx_id, ref, "42.50", "EUR", "Librairie", "books", clock.now())
        )

    eraser, erased_outcome, go = _erasure_held_before_commit(postgres, clock, "R1")
    batch, earned = _in_thread(
        lambda: earning.run_earns(postgres, [earn("T1", "R1"), earn("T2", "R2")], now=clock.now)
    )
    _until_a_transaction_waits_for_a_lock(postgres)
    go.set()
    eraser.join()
    batch.join()
    assert "error" not in erased_outcome and "error" not in earned, (erased_outcome, earned)
    first, second = earned["result"]
    assert isinstance(first, UnknownMemberInBody)
    assert not isinstance(second, PrevenanceError) and second.status_code == 201
    with read_session(postgres) as session:
        assert session.get(CardTransaction, "T1") is None
        assert session.get(CardTransaction, "T2") is not None
