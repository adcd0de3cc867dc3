"""Crash injection: a use case dies part-way (after it has already written a posting inside its
transaction) and the database must show nothing of it, byte for byte; retrying the same request
afterwards must succeed exactly once.

Three ways to die: an exception raised from inside a step (``ledger.post``, ``ledger.credit_member``,
``outbox.emit`` or the earn engine's bulk writes patched to fail on their n-th call), the process killed with SIGKILL in the middle of the
transaction (no Python clean-up at all), and a crash after the commit but before the answer reached
the caller (the retry must replay, not post again).
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import structlog
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from prevenance.common import outbox
from prevenance.common.clock import FrozenClock
from prevenance.common.idempotency import Outcome
from prevenance.db import read_session, run_in_transaction
from prevenance.loyalty import api as loyalty_api
from prevenance.loyalty import earn_rows, ledger, service
from prevenance.loyalty.tables import CardTransaction, Posting
from prevenance.metadata import metadata
from tests.conftest import Api, member_body, tx_body
from tests.factories import store_member


class Crash(RuntimeError):
    """The injected failure."""


@pytest.fixture(autouse=True)
def plain_error_logs() -> Iterator[None]:
    """Log the injected 500s as plain text: structlog's default console renderer draws each traceback
    with rich and every frame's locals, which takes seconds for a SQLAlchemy stack."""
    previous = structlog.get_config()
    structlog.configure(
        processors=[structlog.processors.format_exc_info, structlog.processors.KeyValueRenderer()],
        logger_factory=structlog.PrintLoggerFactory(file=io.StringIO()),
        cache_logger_on_first_use=False,
    )
    yield
    structlog.configure(**previous)


def crash_on(monkeypatch: pytest.MonkeyPatch, owner: Any, name: str, *, call: int, after: bool) -> None:
    """Make ``owner.name`` raise on its ``call``-th use: before doing its work, or just after it."""
    original = getattr(owner, name)
    calls = {"n": 0}

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == call and not after:
            raise Crash(f"{name} crashed before call {call}")
        result = original(*args, **kwargs)
        if calls["n"] == call:
            raise Crash(f"{name} crashed after call {call}")
        return result

    monkeypatch.setattr(owner, name, wrapper)


def snapshot(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table: what "nothing partial was written" is compared against."""
    with read_session(engine) as s:
        return {
            table.name: sorted((tuple(row) for row in s.execute(select(table))), key=repr)
            for table in metadata.sorted_tables
        }


def posting_count(engine: Engine) -> int:
    with read_session(engine) as s:
        return int(s.execute(select(func.count()).select_from(Posting)).scalar_one())


def audit_ok(engine: Engine) -> None:
    with read_session(engine) as s:
        report = ledger.audit(s)
    assert report["ok"], [c for c in report["checks"] if not c["ok"]]


# --- the world every scenario starts from -----------------------------------------------------------


def member(engine: Engine, clock: FrozenClock, ref: str, product: str = "gold") -> None:
    store_member(engine, clock, ref, name="Simone Veil", email="simone@example.fr", product=product)


def earn_input(tx_id: str, ref: str, amount: str, clock: FrozenClock) -> service.TransactionInput:
    return service.TransactionInput(
        id=tx_id,
        member_ref=ref,
        amount=amount,
        currency="EUR",
        merchant="Monoprix",
        category="groceries",
        occurred_at=clock.now(),
    )


def world(engine: Engine, clock: FrozenClock) -> None:
    """Members with points, a referral waiting, a catalogue, partners, codes and two travel holds."""
    now = clock.now()
    for ref in ("A", "B", "NEW"):
        member(engine, clock, ref)
    member(engine, clock, "C", product="cobrand-airline")
    for tx_id, ref, amount in [("T-A", "A", "5000.00"), ("T-B", "B", "800.00"), ("T-C", "C", "300.00")]:
        tx = earn_input(tx_id, ref, amount, clock)
        run_in_transaction(engine, lambda s, tx=tx: service.record_transaction(s, tx=tx, now=now))

    def set_up(s: Session) -> None:
        service.put_catalogue_item(s, sku="mug", name="Mug", points=300, stock=4, now=now)
        service.put_partner(
            s, code="air", kind="airline", name="Air", points_per_block=1000, units_per_block=1000, now=now
        )
        service.put_partner(
            s, code="shop", kind="merchant", name="Shop", points_per_block=1, units_per_block=1, now=now
        )
        service.load_ecodes(s, partner_code="shop", points=250, codes=["E1", "E2"], now=now)
        service.create_referral(s, referrer_ref="A", referee_ref="NEW", key=None, now=now)

    run_in_transaction(engine, set_up)
    for hold_id in ("H1", "H2"):
        request = {"id": hold_id, "kind": "travel", "booking_ref": "PNR", "amount": "120.00", "points": 400}
        run_in_transaction(engine, lambda s, r=request: service.redeem(s, member_ref="A", request=r, now=now))


# --- scenarios: a use case, where it dies, and what a successful retry posts ---------------------------


@dataclass(frozen=True)
class Scenario:
    name: str
    call: Callable[[Session, FrozenClock], Any]
    crash: tuple[Any, str, int, bool]  # owner, attribute, on which call, after the call's work?
    postings: int  # postings the successful run adds
    keyed: bool = True  # an idempotency key: a second retry replays
    expire_first: bool = False


def _redeem(ref: str, request: dict[str, Any]) -> Callable[[Session, FrozenClock], Any]:
    return lambda s, clock: service.redeem(s, member_ref=ref, request=request, now=clock.now())


def _resolve(hold_id: str, action: str) -> Callable[[Session, FrozenClock], Any]:
    return lambda s, clock: service.resolve_hold(s, redemption_id=hold_id, action=action, now=clock.now())


SCENARIOS = [
    Scenario(
        "earn, dying after the posting (at the outbox)",
        lambda s, clock: service.record_transaction(
            s, tx=earn_input("T-1", "B", "64.00", clock), now=clock.now()
        ),
        (outbox, "emit", 1, False),
        postings=1,
    ),
    Scenario(
        "earn of miles, dying right after the posting",
        lambda s, clock: service.record_transaction(
            s, tx=earn_input("T-2", "C", "90.00", clock), now=clock.now()
        ),
        (ledger, "credit_member", 1, True),
        postings=1,
    ),
    Scenario(
        "referee's first earn, dying at the referral bonus (second posting)",
        lambda s, clock: service.record_transaction(
            s, tx=earn_input("T-3", "NEW", "12.00", clock), now=clock.now()
        ),
        (ledger, "post", 1, True),  # the earn credits through credit_member; the bonus through post
        postings=2,
    ),
    Scenario(
        "refund, dying after the reversal posting",
        lambda s, clock: service.refund_transaction(
            s, transaction_id="T-B", refund_id="R-1", amount="300.00", now=clock.now()
        ),
        (outbox, "emit", 1, False),
        postings=1,
    ),
    Scenario(
        "catalogue redemption, dying between the debit and the stock",
        _redeem("A", {"id": "D-1", "kind": "catalogue", "sku": "mug", "quantity": 2}),
        (ledger, "post", 1, True),
        postings=1,
    ),
    Scenario(
        "e-code redemption, dying between the debit and taking the code",
        _redeem("A", {"id": "D-2", "kind": "ecode", "partner": "shop", "points": None}),
        (ledger, "post", 1, True),
        postings=1,
    ),
    Scenario(
        "transfer, dying at the outbox",
        _redeem("A", {"id": "D-3", "kind": "transfer", "partner": "air", "points": 2000}),
        (outbox, "emit", 1, False),
        postings=1,
    ),
    Scenario(
        "travel hold, dying after the hold posting",
        _redeem("A", {"id": "D-4", "kind": "travel", "booking_ref": "X", "amount": "30.00", "points": 9000}),
        (ledger, "post", 1, True),
        postings=1,
    ),
    Scenario(
        "redemption that first releases expired holds, dying at its own debit",
        _redeem("A", {"id": "D-5", "kind": "catalogue", "sku": "mug", "quantity": 1}),
        (ledger, "post", 3, True),
        postings=3,
        expire_first=True,
    ),
    Scenario(
        "confirm of a hold, dying after the posting",
        _resolve("H1", "confirm"),
        (outbox, "emit", 1, False),
        postings=1,
        keyed=False,
    ),
    Scenario(
        "void of a hold, dying after the release posting",
        _resolve("H1", "void"),
        (ledger, "post", 1, True),
        postings=1,
        keyed=False,
    ),
    Scenario(
        "maintenance releasing two expired holds, dying at the second",
        lambda s, clock: service.release_expired_holds(s, now=clock.now()),
        (ledger, "post", 2, False),
        postings=2,
        keyed=False,
        expire_first=True,
    ),
]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_a_crash_mid_use_case_leaves_nothing_and_the_retry_posts_once(
    engine: Engine, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch, scenario: Scenario
) -> None:
    world(engine, clock)
    if scenario.expire_first:
        clock.advance(timedelta(hours=1))
    before = snapshot(engine)
    owner, attribute, call, after = scenario.crash

    with monkeypatch.context() as patch:
        crash_on(patch, owner, attribute, call=call, after=after)
        with pytest.raises(Crash):
            run_in_transaction(engine, lambda s: scenario.call(s, clock))

    assert snapshot(engine) == before, "the crashed use case left something behind"

    first = run_in_transaction(engine, lambda s: scenario.call(s, clock))
    assert posting_count(engine) == len(before["postings"]) + scenario.postings
    again = run_in_transaction(engine, lambda s: scenario.call(s, clock))
    if scenario.keyed:
        assert isinstance(again, Outcome) and again.replayed
        assert (again.status_code, again.body) == (first.status_code, first.body)
    assert posting_count(engine) == len(before["postings"]) + scenario.postings, "the retry posted twice"
    audit_ok(engine)


# --- through the API: a 500, nothing written, then the retry ---------------------------------------------


def test_a_request_that_crashes_answers_500_writes_nothing_and_its_retry_posts_once(
    api: Api, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert api.put("/v1/members/M1", member_body()).status_code == 201
    before = snapshot(engine)
    with monkeypatch.context() as patch:
        # The earn engine's third bulk write (outbox events), after the card transaction and postings.
        crash_on(patch, earn_rows.Writer, "insert", call=3, after=False)
        crashed = api.post("/v1/transactions", tx_body("T1", "M1", "75.00"), role="integrator")
    assert crashed.status_code == 500
    assert snapshot(engine) == before
    retried = api.post("/v1/transactions", tx_body("T1", "M1", "75.00"), role="integrator")
    assert retried.status_code == 201 and retried.json()["balance"] == 75
    assert (
        api.post("/v1/transactions", tx_body("T1", "M1", "75.00"), role="integrator").json() == retried.json()
    )
    assert posting_count(engine) == 1
    assert api.get("/v1/ledger/audit").status_code == 200


def test_a_crash_after_the_commit_is_answered_by_replaying_on_retry(
    api: Api, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The work was committed but the answer was lost: the caller's retry gets it, nothing twice."""
    assert api.put("/v1/members/M1", member_body()).status_code == 201
    assert api.post("/v1/transactions", tx_body("T1", "M1", "900.00"), role="integrator").status_code == 201
    assert (
        api.put("/v1/catalogue/pen", {"name": "Pen", "points": 200, "stock": 9}, role="marketing").status_code
        == 201
    )
    redemption = {"id": "D1", "kind": "catalogue", "sku": "pen", "quantity": 2}
    with monkeypatch.context() as patch:
        crash_on(patch, loyalty_api, "_respond", call=1, after=False)
        lost = api.post("/v1/members/M1/redemptions", redemption, role="agent")
    assert lost.status_code == 500
    retried = api.post("/v1/members/M1/redemptions", redemption, role="agent")
    assert retried.status_code == 201
    assert retried.headers.get("idempotent-replayed") == "true"
    assert retried.json()["points_debited"] == 400 and retried.json()["balance"] == 500
    assert api.get("/v1/members/M1/balance").json()["points"] == 500
    assert [i["reason"] for i in api.get("/v1/members/M1/movements").json()["items"]] == [
        "redemption_catalogue",
        "earn",
    ]
    assert api.get("/v1/catalogue").json()[0]["stock"] == 7


# --- SIGKILL in the middle of the transaction ---------------------------------------------------------------

CHILD = textwrap.dedent(
    """
    import os, signal, sys
    from datetime import datetime
    from prevenance.db import make_engine, run_in_transaction
    from prevenance.loyalty import ledger, service

    url, now = sys.argv[1], datetime.fromisoformat(sys.argv[2])
    original = ledger.post

    def post(session, **kwargs):
        result = original(session, **kwargs)
        session.flush()
        print("posted, dying", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
        return result

    ledger.post = post
    engine = make_engine(url)
    tx = service.TransactionInput(
        id="T-KILL", member_ref="NEW", amount="33.00", currency="EUR", merchant="Monoprix",
        category="groceries", occurred_at=now,
    )
    run_in_transaction(engine, lambda s: service.record_transaction(s, tx=tx, now=now))
    print("survived", flush=True)
    """
)


@pytest.mark.slow
def test_sigkill_mid_transaction_leaves_nothing_and_the_retry_posts_once(
    engine: Engine, clock: FrozenClock, tmp_path: Path
) -> None:
    world(engine, clock)
    before = snapshot(engine)
    script = tmp_path / "die.py"
    script.write_text(CHILD)
    url = engine.url.render_as_string(hide_password=False)
    child = subprocess.run(
        [sys.executable, str(script), url, clock.now().isoformat()],
        capture_output=True,
        text=True,
        env={**os.environ},
        check=False,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr
    assert "posted, dying" in child.stdout and "survived" not in child.stdout

    assert snapshot(engine) == before, "a killed transaction left something behind"
    tx = earn_input("T-KILL", "NEW", "33.00", clock)
    first = run_in_transaction(engine, lambda s: service.record_transaction(s, tx=tx, now=clock.now()))
    assert first.status_code == 201 and not first.replayed
    again = run_in_transaction(engine, lambda s: service.record_transaction(s, tx=tx, now=clock.now()))
    assert again.replayed and again.body == first.body
    with read_session(engine) as s:
        assert s.get(CardTransaction, "T-KILL") is not None
        references = s.execute(
            select(Posting.reason).where(Posting.reference.in_(["T-KILL", "A->NEW"]))
        ).scalars()
        assert sorted(references) == ["earn", "referral"]
    audit_ok(engine)
