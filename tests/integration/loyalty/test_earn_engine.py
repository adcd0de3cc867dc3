"""The earn engine (``loyalty.earning``) against the one-at-a-time reference path.

The same earns are applied twice in one database, to two mirrored sets of members: one at a time
through ``service.record_transaction`` (side ``one``), and in batches through the engine (side
``bat``). Everything each side wrote — answers, card transactions, postings with their running
balances, balances, idempotency records, outbox events, referrals — must be identical once the
side's prefix is masked. Batches hold replays of an earlier earn of the same batch, replays across
batches, conflicting bodies, refused earns and several earns of one member; with a hook installed,
the hook sees and pays what it would have one at a time.
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from prevenance.common.clock import FrozenClock
from prevenance.common.idempotency import IdempotencyKey, Outcome
from prevenance.common.outbox import OutboxEvent
from prevenance.common.problems import InvalidInput, PrevenanceError
from prevenance.customers import service as customers
from prevenance.customers.tables import Member
from prevenance.db import read_session, run_in_transaction, unit_of_work
from prevenance.loyalty import batcher, earn_rows, earning, ledger, service
from prevenance.loyalty import hooks as loyalty_hooks
from prevenance.loyalty.tables import Account, CardTransaction, Posting, Referral

SIDES = ("one", "bat")
MEMBERS = {"M1": "gold", "M2": "platinum", "M3": "cobrand-airline", "M4": "gold", "M5": "gold"}
REFERRALS = (("M1", "M4"), ("M2", "M5"))

# (id, member, amount, currency, category, merchant)
EARNS: list[tuple[str, str, str, str, str, str]] = [
    ("T1", "M1", "10.00", "EUR", "books", "Librairie"),
    ("T2", "M2", "120.00", "EUR", "travel", "Air"),
    ("T3", "M1", "5.50", "GBP", "books", "Librairie"),
    ("T1", "M1", "10.00", "EUR", "books", "Librairie"),  # replay inside the batch
    ("T1", "M1", "11.00", "EUR", "books", "Librairie"),  # same id, other body: 409
    ("T4", "NOPE", "10.00", "EUR", "books", "Librairie"),  # unknown member: 422
    ("T5", "M3", "33.33", "USD", "dining", "Bistro"),  # miles
    ("T6", "M4", "12.00", "EUR", "books", "Librairie"),  # referee's first earn: M1's bonus
    ("T7", "M4", "8.00", "EUR", "books", "Librairie"),
    ("T8", "M1", "1.00", "EUR", "books", "Librairie"),
    ("T9", "M2", "0.01", "EUR", "books", "Librairie"),  # the minimum earn
    ("T10", "M5", "20.00", "XXX", "books", "Librairie"),  # no rate: 422
    ("T11", "M5", "20.00", "EUR", "books", "   "),  # blank merchant: 422
    ("T12", "M5", "15.00", "EUR", "books", "Librairie"),  # M2's bonus
    ("T3", "M1", "5.50", "GBP", "books", "Librairie"),  # replay across batches
    ("T13", "M2", "0.00", "EUR", "books", "Librairie"),
    ("T14", "M3", "1000000000000.00", "EUR", "books", "Librairie"),  # too large: 422
    ("T15", "M1", "250.00", "EUR", "travel", "Air"),
    ("T16", "M1", "300.00", "EUR", "travel", "Air"),
]
BATCH_SIZES = (4, 1, 6, 3, 100)


def _tx(side: str, tx_id: str, ref: str, amount: str, currency: str, category: str, merchant: str,
        at: datetime) -> service.TransactionInput:  # fmt: skip
    return service.TransactionInput(
        id=f"{side}-{tx_id}",
        member_ref=f"{side}-{ref}",
        amount=amount,
        currency=currency,
        merchant=merchant,
        category=category,
        occurred_at=at,
    )


def _setup(engine: Engine, clock: FrozenClock, side: str) -> None:
    with unit_of_work(engine) as session:
        for ref, product in MEMBERS.items():
            data = customers.MemberData("Camille Martin", "camille@example.fr", "fr", "FR", product)
            customers.upsert(session, ref=f"{side}-{ref}", data=data, now=clock.now())
    for referrer, referee in REFERRALS:
        run_in_transaction(
            engine,
            lambda s, a=referrer, b=referee: service.create_referral(
                s, referrer_ref=f"{side}-{a}", referee_ref=f"{side}-{b}", key=None, now=clock.now()
            ),
        )


def _answer(result: Outcome | PrevenanceError) -> Any:
    if isinstance(result, PrevenanceError):
        return ("refused", result.to_problem())
    return (result.status_code, result.body, result.replayed)


def _one_at_a_time(engine: Engine, clock: FrozenClock, txs: list[service.TransactionInput]) -> list[Any]:
    answers = []
    for tx in txs:
        try:
            outcome = run_in_transaction(
                engine, lambda s, t=tx: service.record_transaction(s, tx=t, now=clock.now())
            )
        except PrevenanceError as error:
            answers.append(_answer(error))
        else:
            answers.append(_answer(outcome))
    return answers


def _batched(
    engine: Engine, clock: FrozenClock, txs: list[service.TransactionInput], sizes: Iterator[int]
) -> list[Any]:
    answers: list[Any] = []
    start = 0
    while start < len(txs):
        size = next(sizes)
        requests = [earning.EarnRequest.of(tx) for tx in txs[start : start + size]]
        answers.extend(_answer(r) for r in earning.run_earns(engine, requests, now=clock.now))
        start += size
    return answers


def _mask(value: Any, side: str) -> Any:
    if isinstance(value, str):
        return re.sub(rf"\b{side}-", "X-", value)
    if isinstance(value, dict):
        return {k: _mask(v, side) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_mask(v, side) for v in value)
    return value


def _ledger_of(engine: Engine, side: str) -> dict[str, Any]:
    """Everything the side wrote, with its prefix masked and database ids left out."""
    like = f"{side}-%"
    with read_session(engine) as s:
        members = dict(s.execute(select(Member.id, Member.ref).where(Member.ref.like(like))).all())
        ids = list(members)
        table = earn_rows.CARD_TRANSACTIONS
        cards = [
            tuple(v for k, v in row._mapping.items() if k != "member_id")
            for row in s.execute(select(table).where(table.c.id.like(like)).order_by(table.c.id)).all()
        ]
        postings = [
            (
                members.get(r.member_id),
                r.reason,
                r.reference,
                r.amount,
                r.unit,
                r.balance_after,
                r.idempotency_key,
            )
            for r in s.execute(
                select(Posting).where(Posting.member_id.in_(ids)).order_by(Posting.member_id, Posting.id)
            ).scalars()
        ]
        balances = sorted(
            (members[r.member_id], r.unit, r.balance)
            for r in s.execute(select(Account).where(Account.member_id.in_(ids))).scalars()
        )
        keys = sorted(
            (r.key, r.status_code, r.response)
            for r in s.execute(
                select(IdempotencyKey).where(
                    IdempotencyKey.scope == "transaction", IdempotencyKey.key.like(like)
                )
            ).scalars()
        )
        events = [
            (r.type, r.payload)
            for r in s.execute(select(OutboxEvent).order_by(OutboxEvent.id)).scalars()
            if f"{side}-" in repr(r.payload) and r.type in ("points.earned", "referral.rewarded")
        ]
        events.sort(key=repr)
        referrals = sorted(
            (r.id, r.status, r.rewarding_transaction_id, r.bonus)
            for r in s.execute(select(Referral).where(Referral.id.like(like))).scalars()
        )
    return _mask(
        {
            "cards": cards,
            "postings": postings,
            "balances": balances,
            "keys": keys,
            "events": events,
            "referrals": referrals,
        },
        side,
    )


def _audit_ok(engine: Engine) -> None:
    with read_session(engine) as s:
        report = ledger.audit(s)
    assert report["ok"], [c for c in report["checks"] if not c["ok"]]


def _reward_hook(session: Session, *, member_id: int, transaction: Any, now: datetime) -> dict[str, Any]:
    """A hook that reads what one-at-a-time would have written (the member's transactions so far)
    and pays a reward on big payments, as the offers hook does."""
    seen = session.execute(
        select(func.count()).select_from(CardTransaction).where(CardTransaction.member_id == member_id)
    ).scalar_one()
    extra: dict[str, Any] = {"seen": int(seen)}
    if transaction.unit == "points" and transaction.amount_eur >= 100:
        extra["balance"] = service.award_bonus(
            session,
            member_id=member_id,
            points=7,
            reason=service.OFFER_REWARD,
            reference=transaction.id,
            key=f"offer:{transaction.id}",
            now=now,
        )
        extra["offer_rewards"] = [{"points": 7}]
    return extra


@pytest.fixture
def hooks(monkeypatch: pytest.MonkeyPatch) -> Callable[[dict[str, Any]], None]:
    """Replace the installed transaction hooks for the test."""

    def install(registry: dict[str, Any]) -> None:
        monkeypatch.setattr(loyalty_hooks, "_TRANSACTION_HOOKS", dict(registry))

    install({})
    return install


@pytest.mark.parametrize("hooked", [False, True], ids=["no-hook", "reward-hook"])
def test_batches_give_what_one_at_a_time_gives(
    engine: Engine, clock: FrozenClock, hooks: Callable[[dict[str, Any]], None], hooked: bool
) -> None:
    hooks({"reward": _reward_hook} if hooked else {})
    for side in SIDES:
        _setup(engine, clock, side)
    at = clock.now()
    one = _one_at_a_time(engine, clock, [_tx("one", *e, at) for e in EARNS])
    bat = _batched(engine, clock, [_tx("bat", *e, at) for e in EARNS], iter(BATCH_SIZES))
    assert _mask(bat, "bat") == _mask(one, "one")
    assert [a[0] for a in one].count(201) >= 13  # the scenario does what it says
    assert _ledger_of(engine, "bat") == _ledger_of(engine, "one")
    _audit_ok(engine)


@settings(
    max_examples=12,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    data=st.lists(
        st.tuples(
            st.integers(0, 9),  # transaction number (a repeat is a replay or, with another amount, a 409)
            st.sampled_from(["M1", "M2", "M3", "M4", "M5", "NOPE"]),
            st.sampled_from(["0.00", "0.40", "9.99", "150.00", "12.345"]),
        ),
        min_size=1,
        max_size=14,
    ),
    sizes=st.lists(st.integers(1, 6), min_size=14, max_size=14),
    hooked=st.booleans(),
)
def test_random_batches_match_one_at_a_time(
    engine: Engine,
    clock: FrozenClock,
    hooks: Callable[[dict[str, Any]], None],
    data: list[tuple[int, str, str]],
    sizes: list[int],
    hooked: bool,
) -> None:
    hooks({"reward": _reward_hook} if hooked else {})
    run = _next_run()
    sides = (f"o{run}", f"b{run}")
    for side in sides:
        _setup(engine, clock, side)
    at = clock.now()
    earns = [(f"T{n}", ref, amount, "EUR", "books", "Librairie") for n, ref, amount in data]
    one = _one_at_a_time(engine, clock, [_tx(sides[0], *e, at) for e in earns])
    bat = _batched(engine, clock, [_tx(sides[1], *e, at) for e in earns], iter(sizes))
    assert _mask(bat, sides[1]) == _mask(one, sides[0])
    assert _ledger_of(engine, sides[1]) == _ledger_of(engine, sides[0])


_runs = iter(range(1_000_000))


def _next_run() -> int:
    return next(_runs)


def test_an_earn_a_hook_refuses_fails_alone_and_writes_nothing(
    engine: Engine, clock: FrozenClock, hooks: Callable[[dict[str, Any]], None]
) -> None:
    def refuse_t2(session: Session, *, member_id: int, transaction: Any, now: datetime) -> None:
        if transaction.id == "bat-T2":
            raise InvalidInput("refused by the hook", field="merchant")

    hooks({"refuse": refuse_t2})
    _setup(engine, clock, "bat")
    at = clock.now()
    txs = [_tx("bat", f"T{i}", "M1", "10.00", "EUR", "books", "Librairie", at) for i in range(1, 5)]
    results = earning.run_earns(engine, [earning.EarnRequest.of(tx) for tx in txs], now=clock.now)
    assert [type(r).__name__ for r in results] == ["Outcome", "InvalidInput", "Outcome", "Outcome"]
    assert [r.body["balance"] for r in results if isinstance(r, Outcome)] == [10, 20, 30]
    with read_session(engine) as s:
        assert set(s.scalars(select(CardTransaction.id))) == {"bat-T1", "bat-T3", "bat-T4"}
        assert s.scalar(select(func.count()).select_from(Posting).where(Posting.reference == "bat-T2")) == 0
        assert s.get(IdempotencyKey, ("transaction", "bat-T2")) is None
    # Its retry, once the hook agrees, posts once.
    hooks({})
    again = earning.run_earns(engine, [earning.EarnRequest.of(txs[1])], now=clock.now)
    assert isinstance(again[0], Outcome) and again[0].body["balance"] == 40
    _audit_ok(engine)


def test_a_failing_batch_raises_and_commits_nothing(
    engine: Engine, clock: FrozenClock, hooks: Callable[[dict[str, Any]], None]
) -> None:
    def crash(session: Session, *, member_id: int, transaction: Any, now: datetime) -> None:
        raise RuntimeError("a bug")

    hooks({"crash": crash})
    _setup(engine, clock, "bat")
    at = clock.now()
    txs = [_tx("bat", f"T{i}", "M1", "10.00", "EUR", "books", "Librairie", at) for i in range(1, 4)]
    with pytest.raises(RuntimeError):
        earning.run_earns(engine, [earning.EarnRequest.of(tx) for tx in txs], now=clock.now)
    with read_session(engine) as s:
        assert s.scalar(select(func.count()).select_from(CardTransaction)) == 0
        assert s.scalar(select(func.count()).select_from(Posting).where(Posting.reason == "earn")) == 0


def test_concurrent_batches_post_each_earn_once(engine: Engine, clock: FrozenClock) -> None:
    """Four writers, batches over the same members and partly the same transaction ids (a replay
    racing its original): every id is recorded once, balances add up, the audit passes."""
    _setup(engine, clock, "bat")
    at = clock.now()
    errors: list[BaseException] = []

    def writer(worker: int) -> None:
        try:
            for batch in range(6):
                txs = [
                    _tx(
                        "bat",
                        f"T{batch}-{i if i % 2 else f'{worker}-{i}'}",
                        f"M{1 + i % 3}",
                        "10.00",
                        "EUR",
                        "books",
                        "Librairie",
                        at,
                    )
                    for i in range(8)
                ]
                results = earning.run_earns(engine, [earning.EarnRequest.of(tx) for tx in txs], now=clock.now)
                assert all(isinstance(r, Outcome) and r.status_code == 201 for r in results), results
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    shared = 6 * 4  # odd i: one id per batch number, written by every worker
    own = 6 * 4 * 4  # even i: one id per worker
    with read_session(engine) as s:
        assert s.scalar(select(func.count()).select_from(CardTransaction)) == shared + own
        earned = s.scalar(select(func.sum(Posting.amount)).where(Posting.reason == "earn"))
        assert earned == 10 * (shared + own)
    _audit_ok(engine)


def test_the_batcher_groups_concurrent_earns_and_answers_each(
    engine: Engine, clock: FrozenClock, hooks: Callable[[dict[str, Any]], None]
) -> None:
    _setup(engine, clock, "bat")
    at = clock.now()
    txs = [_tx("bat", f"T{i}", f"M{1 + i % 2}", "10.00", "EUR", "books", "Librairie", at) for i in range(30)]
    txs.append(_tx("bat", "T0", "M1", "10.00", "EUR", "books", "Librairie", at))  # a replay
    txs.append(_tx("bat", "T99", "NOPE", "10.00", "EUR", "books", "Librairie", at))  # refused

    async def scenario() -> tuple[list[Any], batcher.EarnBatcher]:
        earns = batcher.EarnBatcher(engine=engine, now=clock.now, max_batch=8, linger=0.005)
        answers = await asyncio.gather(
            *(earns.submit(earning.EarnRequest.of(tx)) for tx in txs), return_exceptions=True
        )
        return list(answers), earns

    answers, earns = asyncio.run(scenario())
    assert earns.batches < len(txs) and earns.earns == len(txs)
    assert [a.body["balance"] for a in answers[:30] if a.body["member_ref"] == "bat-M1"] == [
        10 * (n + 1) for n in range(15)
    ]
    assert answers[30].replayed and answers[30].body == answers[0].body
    assert isinstance(answers[31], PrevenanceError) and answers[31].to_problem()["status"] == 422
    _audit_ok(engine)


@pytest.mark.parametrize("run_hooks", [True, False], ids=["hooks", "no-hooks"])
def test_a_settlement_file_runs_the_hooks_unless_told_not_to(
    engine: Engine,
    clock: FrozenClock,
    hooks: Callable[[dict[str, Any]], None],
    tmp_path: Any,
    run_hooks: bool,
) -> None:
    from prevenance.loyalty import ingest

    seen: list[str] = []

    def record(session: Session, *, member_id: int, transaction: Any, now: datetime) -> dict[str, Any]:
        seen.append(transaction.id)
        return {"hooked": True}

    hooks({"record": record})
    _setup(engine, clock, "bat")
    path = tmp_path / "settlement.csv"
    lines = ["id,member_ref,amount,currency,merchant,category,occurred_at"]
    lines += [f"bat-F{i},bat-M{1 + i % 2},10.00,EUR,Librairie,books,2026-01-01T10:00:00Z" for i in range(5)]
    path.write_text("\n".join(lines) + "\n")
    report = ingest.ingest_transactions(engine, path, clock=clock, hooks=run_hooks, chunk_size=3)
    assert report.counts == {"posted": 5, "replayed": 0}
    assert seen == ([f"bat-F{i}" for i in range(5)] if run_hooks else [])
    with read_session(engine) as s:
        stored = s.get(IdempotencyKey, ("transaction", "bat-F0"))
        assert stored is not None and (stored.response or {}).get("hooked") is (True if run_hooks else None)


BATCH_KILLER = """
import os, signal, sys
from datetime import datetime
from prevenance.db import make_engine
from prevenance.loyalty import earn_rows, earning, service

url, now, step = sys.argv[1], datetime.fromisoformat(sys.argv[2]), int(sys.argv[3])
original = earn_rows.Writer.insert
calls = {"n": 0}

def insert(self, table, columns, rows):
    original(self, table, columns, rows)
    calls["n"] += 1
    if calls["n"] == step:  # 1 card transactions, 2 postings, 3 outbox events, 4 idempotency records
        print("written, dying", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)

earn_rows.Writer.insert = insert
engine = make_engine(url)
txs = [
    service.TransactionInput(
        id=f"bat-K{i}", member_ref=f"bat-M{1 + i % 3}", amount="10.00", currency="EUR",
        merchant="Librairie", category="books", occurred_at=now,
    )
    for i in range(6)
]
earning.run_earns(engine, [earning.EarnRequest.of(tx) for tx in txs], now=lambda: now)
print("survived", flush=True)
"""


@pytest.mark.slow
@pytest.mark.parametrize("step", [1, 2, 3, 4])
def test_sigkill_at_each_step_of_a_batch_leaves_nothing_and_the_retry_posts_once(
    engine: Engine, clock: FrozenClock, tmp_path: Any, step: int
) -> None:
    import os
    import signal
    import subprocess
    import sys

    from tests.integration.loyalty.test_crash_safety import snapshot

    _setup(engine, clock, "bat")
    before = snapshot(engine)
    script = tmp_path / "die.py"
    script.write_text(BATCH_KILLER)
    url = engine.url.render_as_string(hide_password=False)
    child = subprocess.run(
        [sys.executable, str(script), url, clock.now().isoformat(), str(step)],
        capture_output=True,
        text=True,
        env={**os.environ},
        check=False,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr
    assert "written, dying" in child.stdout and "survived" not in child.stdout
    assert snapshot(engine) == before, "a killed batch left something behind"
    at = clock.now()
    txs = [_tx("bat", f"K{i}", f"M{1 + i % 3}", "10.00", "EUR", "books", "Librairie", at) for i in range(6)]
    first = earning.run_earns(engine, [earning.EarnRequest.of(tx) for tx in txs], now=clock.now)
    assert all(isinstance(r, Outcome) and not r.replayed for r in first)
    again = earning.run_earns(engine, [earning.EarnRequest.of(tx) for tx in txs], now=clock.now)
    assert [r.body for r in again if isinstance(r, Outcome) and r.replayed] == [
        r.body for r in first if isinstance(r, Outcome)
    ]
    with read_session(engine) as s:
        assert s.scalar(select(func.count()).select_from(Posting).where(Posting.reason == "earn")) == 6
    _audit_ok(engine)
