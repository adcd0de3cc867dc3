"""Real concurrency against the database: threads released together by a barrier, each running its
own transaction (``run_in_transaction``, as the API does), or real HTTP requests to a uvicorn server.

On SQLite writers are serialised (``BEGIN IMMEDIATE`` and the busy timeout); on PostgreSQL races are
settled by row locks and by re-running a use case that lost a unique-key race. Either way the
outcome must be one that some serial order of the same requests would give: nothing overdrawn,
nothing paid twice, nothing lost. No assertion here is about time.
"""

from __future__ import annotations

import random
import socket
import threading
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from typing import Any, TypeVar

import httpx
import pytest
import uvicorn
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from prevenance.app import create_app
from prevenance.common.clock import FrozenClock
from prevenance.common.idempotency import IdempotencyKey, Outcome
from prevenance.common.problems import IdempotencyConflict, PrevenanceError
from prevenance.db import read_session, run_in_transaction
from prevenance.loyalty import ledger, rules, service
from prevenance.loyalty.errors import (
    HoldNotPending,
    InsufficientPoints,
    InvalidReferral,
    NoCodesLeft,
    OutOfStock,
    RefundTooLarge,
)
from prevenance.loyalty.tables import (
    CardTransaction,
    CatalogueItem,
    ECode,
    MilesExport,
    MilesExportLine,
    Posting,
    Redemption,
    Referral,
    Refund,
)
from tests.conftest import Api, member_body, tx_body
from tests.factories import store_member
from tests.races import race

pytestmark = pytest.mark.slow
T = TypeVar("T")


# --- helpers --------------------------------------------------------------------------------------


def split(results: list[Any]) -> tuple[list[Outcome], list[BaseException]]:
    accepted = [r for r in results if isinstance(r, Outcome)]
    refused = [r for r in results if not isinstance(r, Outcome)]
    return accepted, refused


def only(refused: list[BaseException], *kinds: type[PrevenanceError]) -> None:
    """Every refusal is one of the expected domain errors (never a 500, never a database error)."""
    unexpected = [r for r in refused if not isinstance(r, kinds)]
    assert not unexpected, unexpected[:3]


def member(engine: Engine, clock: FrozenClock, ref: str, product: str = "gold") -> int:
    return store_member(engine, clock, ref, product=product)


def earn(
    engine: Engine, clock: FrozenClock, tx_id: str, ref: str, amount: str, category: str = "books"
) -> Outcome:
    tx = service.TransactionInput(
        id=tx_id,
        member_ref=ref,
        amount=amount,
        currency="EUR",
        merchant="Galeries",
        category=category,
        occurred_at=clock.now(),
    )
    return run_in_transaction(engine, lambda s: service.record_transaction(s, tx=tx, now=clock.now()))


def redeem(engine: Engine, clock: FrozenClock, ref: str, request: dict[str, Any]) -> Outcome:
    return run_in_transaction(
        engine, lambda s: service.redeem(s, member_ref=ref, request=request, now=clock.now())
    )


def points(engine: Engine, ref: str) -> int:
    with read_session(engine) as s:
        return int(service.get_balance(s, member_ref=ref)["points"])


def audit_ok(engine: Engine) -> None:
    with read_session(engine) as s:
        report = ledger.audit(s)
    assert report["ok"], [c for c in report["checks"] if not c["ok"]]


def count(engine: Engine, statement: Any) -> int:
    with read_session(engine) as s:
        return int(s.execute(statement).scalar_one())


def postings_for(engine: Engine, reference: str) -> list[Posting]:
    with read_session(engine) as s:
        return list(s.scalars(select(Posting).where(Posting.reference == reference).order_by(Posting.id)))


def nothing_written_for(engine: Engine, redemption_id: str) -> None:
    """A refused redemption left no trace: no posting, no redemption row, no idempotency key."""
    with read_session(engine) as s:
        assert s.get(Redemption, redemption_id) is None
        assert s.get(IdempotencyKey, ("redemption", redemption_id)) is None
        assert not s.scalars(select(Posting.id).where(Posting.reference == redemption_id)).all()


def set_up_spending(engine: Engine, clock: FrozenClock, *, price: int, stock: int) -> None:
    now = clock.now()

    def use_case(s: Session) -> None:
        service.put_catalogue_item(s, sku="voucher", name="Voucher", points=price, stock=stock, now=now)
        service.put_partner(
            s, code="air", kind="airline", name="Air", points_per_block=price, units_per_block=price, now=now
        )

    run_in_transaction(engine, use_case)


# --- a real HTTP server ---------------------------------------------------------------------------


@pytest.fixture
def live(api: Api, engine: Engine, clock: FrozenClock) -> Iterator[str]:
    """The application served by uvicorn on a free 127.0.0.1 port, in a thread of this process."""
    app = create_app(engine=engine, clock=clock)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    started = threading.Event()
    while not started.wait(0.02):
        if server.started:
            started.set()
        assert thread.is_alive(), "uvicorn did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join()
        sock.close()


def post_all(base: str, key: str, requests: list[tuple[str, dict[str, Any]]]) -> list[httpx.Response]:
    """POST each (path, body) from its own thread and client, all released together."""

    def send(index: int) -> httpx.Response:
        path, body = requests[index]
        with httpx.Client(base_url=base, timeout=120) as client:
            return client.post(path, json=body, headers={"Authorization": f"Bearer {key}"})

    results = race(len(requests), send)
    errors = [r for r in results if not isinstance(r, httpx.Response)]
    assert not errors, errors[:3]
    return [r for r in results if isinstance(r, httpx.Response)]


# --- (a) 50 parallel redemptions on one member ------------------------------------------------------


def test_fifty_parallel_redemptions_never_overdraw(engine: Engine, clock: FrozenClock) -> None:
    member(engine, clock, "R1")
    earn(engine, clock, "T1", "R1", "10000.00")
    assert points(engine, "R1") == 10_000
    set_up_spending(engine, clock, price=500, stock=1_000)

    def request(i: int) -> dict[str, Any]:
        if i % 2:
            return {"id": f"D{i}", "kind": "transfer", "partner": "air", "points": 500}
        return {"id": f"D{i}", "kind": "catalogue", "sku": "voucher", "quantity": 1}

    results = race(50, lambda i: redeem(engine, clock, "R1", request(i)))
    accepted, refused = split(results)
    only(refused, InsufficientPoints)
    assert len(accepted) == 20 and len(refused) == 30  # 10,000 points buy exactly 20 × 500
    assert all(o.status_code == 201 and o.body["points_debited"] == 500 for o in accepted)
    assert points(engine, "R1") == 10_000 - 500 * len(accepted) == 0
    # The member's balance went down 500 at a time: each acceptance saw the one before it.
    assert sorted(o.body["balance"] for o in accepted) == list(range(0, 10_000, 500))
    for i, result in enumerate(results):
        if isinstance(result, Outcome):
            paid = postings_for(engine, f"D{i}")
            assert [(p.amount, p.reason) for p in paid] == [(500, f"redemption_{request(i)['kind']}")]
        else:
            nothing_written_for(engine, f"D{i}")
    with read_session(engine) as s:
        stock = s.get(CatalogueItem, "voucher")
        assert stock is not None
        catalogue_wins = sum(1 for o in accepted if o.body["kind"] == "catalogue")
        assert stock.stock == 1_000 - catalogue_wins
    audit_ok(engine)


def test_fifty_parallel_redemptions_over_http_never_overdraw(
    api: Api, live: str, engine: Engine, clock: FrozenClock
) -> None:
    assert api.put("/v1/members/H1", member_body()).status_code == 201
    assert api.post("/v1/transactions", tx_body("T1", "H1", "10000.00"), role="integrator").status_code == 201
    set_up_spending(engine, clock, price=500, stock=1_000)
    requests = [
        (
            "/v1/members/H1/redemptions",
            {"id": f"D{i}", "kind": "transfer", "partner": "air", "points": 500}
            if i % 2
            else {"id": f"D{i}", "kind": "catalogue", "sku": "voucher", "quantity": 1},
        )
        for i in range(50)
    ]
    responses = post_all(live, api.keys["agent"], requests)
    statuses = Counter(r.status_code for r in responses)
    assert statuses == {201: 20, 409: 30}, statuses
    refused = [r.json() for r in responses if r.status_code == 409]
    assert {p["type"].rsplit("/", 1)[-1] for p in refused} == {"insufficient-points"}
    assert api.get("/v1/members/H1/balance").json()["points"] == 0
    for (_, body), response in zip(requests, responses, strict=True):
        if response.status_code == 201:
            assert len(postings_for(engine, body["id"])) == 1
        else:
            nothing_written_for(engine, body["id"])
    assert api.get("/v1/ledger/audit").status_code == 200


# --- (b) 20 identical copies at once through a real HTTP server -------------------------------------


@pytest.mark.parametrize("kind", ["transaction", "refund", "redemption"])
def test_twenty_identical_requests_at_once_post_once(
    api: Api, live: str, engine: Engine, clock: FrozenClock, kind: str
) -> None:
    assert api.put("/v1/members/I1", member_body()).status_code == 201
    set_up_spending(engine, clock, price=500, stock=100)
    if kind == "transaction":
        path, body, reference, key = "/v1/transactions", tx_body("T1", "I1", "42.50"), "T1", "integrator"
    else:
        assert (
            api.post("/v1/transactions", tx_body("T0", "I1", "2000.00"), role="integrator").status_code == 201
        )
        if kind == "refund":
            path, body, reference, key = (
                "/v1/transactions/T0/refunds",
                {"id": "R1", "amount": "600.00"},
                "T0",
                "integrator",
            )
        else:
            body = {"id": "D1", "kind": "catalogue", "sku": "voucher", "quantity": 2}
            path, reference, key = "/v1/members/I1/redemptions", "D1", "agent"
    before = len(postings_for(engine, reference))

    responses = post_all(live, api.keys[key], [(path, body)] * 20)

    assert {r.status_code for r in responses} == {201}, [r.text for r in responses if r.status_code != 201][
        :3
    ]
    assert len({r.text for r in responses}) == 1, "every copy got the same body"
    originals = [r for r in responses if r.headers.get("idempotent-replayed") != "true"]
    assert len(originals) == 1, "exactly one copy did the work, the others replayed it"
    assert len(postings_for(engine, reference)) == before + 1
    balance = api.get("/v1/members/I1/balance").json()["points"]
    expected = {"transaction": 42, "refund": 2000 - 600, "redemption": 2000 - 1000}[kind]
    assert balance == expected == responses[0].json()["balance"]
    with read_session(engine) as s:
        assert s.execute(select(func.count()).select_from(CardTransaction)).scalar_one() == 1
        assert s.execute(select(func.count()).select_from(Refund)).scalar_one() == (
            1 if kind == "refund" else 0
        )
        assert s.execute(select(func.count()).select_from(Redemption)).scalar_one() == (
            1 if kind == "redemption" else 0
        )
    assert api.get("/v1/ledger/audit").status_code == 200


# --- (c) e-codes: 30 redeemers, 10 codes ---------------------------------------------------------------


def test_thirty_redeemers_ten_codes_each_code_once(engine: Engine, clock: FrozenClock) -> None:
    now = clock.now()
    codes = [f"CODE-{i:02d}" for i in range(10)]

    def set_up(s: Session) -> None:
        service.put_partner(
            s, code="shop", kind="merchant", name="Shop", points_per_block=1, units_per_block=1, now=now
        )
        service.load_ecodes(s, partner_code="shop", points=500, codes=codes, now=now)

    run_in_transaction(engine, set_up)
    for i in range(30):
        member(engine, clock, f"E{i}")
        earn(engine, clock, f"T{i}", f"E{i}", "1000.00")

    results = race(
        30, lambda i: redeem(engine, clock, f"E{i}", {"id": f"D{i}", "kind": "ecode", "partner": "shop"})
    )
    accepted, refused = split(results)
    only(refused, NoCodesLeft)
    assert len(accepted) == 10 and len(refused) == 20
    handed = [o.body["code"] for o in accepted]
    assert sorted(handed) == codes, "ten distinct codes, each handed out once"
    for i, result in enumerate(results):
        if isinstance(result, Outcome):
            assert points(engine, f"E{i}") == 500
            assert len(postings_for(engine, f"D{i}")) == 1
        else:
            assert points(engine, f"E{i}") == 1000
            nothing_written_for(engine, f"D{i}")
    with read_session(engine) as s:
        issued = dict(s.execute(select(ECode.code, ECode.redemption_id)).all())
    assert {code: issued[code] for code in handed} == {o.body["code"]: o.body["id"] for o in accepted}
    audit_ok(engine)


# --- (d) catalogue stock ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("quantity", "winners"), [(1, 5), (2, 2)])
def test_stock_of_five_twenty_buyers(engine: Engine, clock: FrozenClock, quantity: int, winners: int) -> None:
    set_up_spending(engine, clock, price=300, stock=5)
    for i in range(20):
        member(engine, clock, f"B{i}")
        earn(engine, clock, f"T{i}", f"B{i}", "1000.00")

    results = race(
        20,
        lambda i: redeem(
            engine,
            clock,
            f"B{i}",
            {"id": f"D{i}", "kind": "catalogue", "sku": "voucher", "quantity": quantity},
        ),
    )
    accepted, refused = split(results)
    only(refused, OutOfStock)
    assert len(accepted) == winners
    with read_session(engine) as s:
        item = s.get(CatalogueItem, "voucher")
        assert item is not None and item.stock == 5 - winners * quantity >= 0
    for i, result in enumerate(results):
        if isinstance(result, Outcome):
            assert points(engine, f"B{i}") == 1000 - 300 * quantity
        else:
            assert points(engine, f"B{i}") == 1000
            nothing_written_for(engine, f"D{i}")
    audit_ok(engine)


# --- (e) concurrent refunds of one transaction -------------------------------------------------------


def test_concurrent_refunds_never_exceed_the_amount(engine: Engine, clock: FrozenClock) -> None:
    member(engine, clock, "F1")
    earn(engine, clock, "T1", "F1", "100.00")

    def refund(i: int) -> Outcome:
        return run_in_transaction(
            engine,
            lambda s: service.refund_transaction(
                s, transaction_id="T1", refund_id=f"R{i}", amount="30.00", now=clock.now()
            ),
        )

    results = race(10, refund)
    accepted, refused = split(results)
    only(refused, RefundTooLarge)
    assert len(accepted) == 3  # 3 × 30.00 fit in 100.00, a fourth would not
    assert sum(o.body["points_reversed"] for o in accepted) == 90
    with read_session(engine) as s:
        tx = s.get(CardTransaction, "T1")
        assert tx is not None and (tx.refunded_minor, tx.units_current) == (9_000, 10)
        assert s.execute(select(func.count()).select_from(Refund)).scalar_one() == 3
    assert points(engine, "F1") == 10
    audit_ok(engine)


def test_concurrent_refunds_of_mixed_amounts_keep_what_the_rest_earns(
    engine: Engine, clock: FrozenClock
) -> None:
    member(engine, clock, "F2", product="platinum")
    earn(engine, clock, "T1", "F2", "250.00", category="travel")  # 500 points
    amounts = [
        "17.35",
        "40.00",
        "0.99",
        "63.10",
        "25.00",
        "99.99",
        "12.34",
        "50.00",
        "8.88",
        "71.00",
        "33.33",
        "1.01",
    ]

    def refund(i: int) -> Outcome:
        return run_in_transaction(
            engine,
            lambda s: service.refund_transaction(
                s, transaction_id="T1", refund_id=f"R{i}", amount=amounts[i], now=clock.now()
            ),
        )

    results = race(len(amounts), refund)
    accepted, refused = split(results)
    only(refused, RefundTooLarge)
    refunded = sum(Decimal(amounts[i]) for i, r in enumerate(results) if isinstance(r, Outcome))
    assert refunded <= Decimal("250.00")
    keeps = rules.earn_units(Decimal("250.00") - refunded, units_per_euro=2, minimum=1)
    with read_session(engine) as s:
        tx = s.get(CardTransaction, "T1")
        assert tx is not None
        assert Decimal(tx.refunded_minor).scaleb(-2) == refunded
        assert tx.units_current == keeps
    assert sum(o.body["points_reversed"] for o in accepted) == 500 - keeps
    assert points(engine, "F2") == keeps
    audit_ok(engine)


# --- travel holds under concurrency ---------------------------------------------------------------------


def _hold(engine: Engine, clock: FrozenClock, ref: str, hold_id: str, held: int) -> None:
    outcome = redeem(
        engine,
        clock,
        ref,
        {"id": hold_id, "kind": "travel", "booking_ref": "PNR1", "amount": "5000.00", "points": held},
    )
    assert outcome.body["status"] == "held" and outcome.body["points_debited"] == held


def test_confirm_and_void_racing_on_one_hold_settle_it_once(engine: Engine, clock: FrozenClock) -> None:
    member(engine, clock, "V1")
    earn(engine, clock, "T1", "V1", "3000.00")
    _hold(engine, clock, "V1", "H1", 2_000)

    def resolve(i: int) -> Outcome:
        action = "confirm" if i % 2 else "void"
        return run_in_transaction(
            engine, lambda s: service.resolve_hold(s, redemption_id="H1", action=action, now=clock.now())
        )

    results = race(20, resolve)
    accepted, refused = split(results)
    assert not refused, refused[:3]
    with read_session(engine) as s:
        hold = s.get(Redemption, "H1")
        assert hold is not None
        final = hold.status
    assert final in ("confirmed", "voided")
    for outcome in accepted:
        if outcome.status_code == 200:
            assert outcome.body["status"] == final
        else:
            assert outcome.status_code == HoldNotPending.status and outcome.body["redemption_status"] == final
    reasons = [p.reason for p in postings_for(engine, "H1")]
    assert reasons == ["travel_hold", "travel_confirm" if final == "confirmed" else "travel_void"]
    assert points(engine, "V1") == (1_000 if final == "confirmed" else 3_000)
    audit_ok(engine)


def test_expired_hold_is_released_once_by_racing_maintenance_and_callers(
    engine: Engine, clock: FrozenClock
) -> None:
    member(engine, clock, "X1")
    earn(engine, clock, "T1", "X1", "3000.00")
    set_up_spending(engine, clock, price=500, stock=100)
    _hold(engine, clock, "X1", "H1", 2_000)
    clock.advance(timedelta(hours=1))

    def act(i: int) -> Any:
        if i % 3 == 0:
            return run_in_transaction(engine, lambda s: service.release_expired_holds(s, now=clock.now()))
        if i % 3 == 1:
            return run_in_transaction(
                engine,
                lambda s: service.resolve_hold(s, redemption_id="H1", action="confirm", now=clock.now()),
            )
        return redeem(
            engine, clock, "X1", {"id": f"D{i}", "kind": "catalogue", "sku": "voucher", "quantity": 1}
        )

    results = race(15, act)
    errors = [r for r in results if isinstance(r, BaseException)]
    only(errors, InsufficientPoints)
    reasons = [p.reason for p in postings_for(engine, "H1")]
    assert reasons == ["travel_hold", "travel_hold_expired"], "released exactly once"
    confirms = [r for i, r in enumerate(results) if i % 3 == 1]
    assert all(isinstance(r, Outcome) and r.status_code == 409 for r in confirms), confirms
    bought = sum(1 for i, r in enumerate(results) if i % 3 == 2 and isinstance(r, Outcome))
    assert points(engine, "X1") == 3_000 - 500 * bought
    with read_session(engine) as s:
        hold = s.get(Redemption, "H1")
        assert hold is not None and hold.status == "expired"
    audit_ok(engine)


# --- referral bonus and earning under concurrency -----------------------------------------------------------


def test_referral_bonus_is_credited_once_when_first_transactions_race(
    engine: Engine, clock: FrozenClock
) -> None:
    member(engine, clock, "P1")
    member(engine, clock, "P2")
    run_in_transaction(
        engine,
        lambda s: service.create_referral(s, referrer_ref="P1", referee_ref="P2", key=None, now=clock.now()),
    )
    results = race(12, lambda i: earn(engine, clock, f"T{i}", "P2", "10.00"))
    accepted, refused = split(results)
    assert not refused and len(accepted) == 12
    assert points(engine, "P1") == 5_000
    assert points(engine, "P2") == 120
    with read_session(engine) as s:
        referral = s.scalars(select(Referral)).one()
        assert referral.status == "rewarded"
        assert (
            s.execute(
                select(func.count()).select_from(Posting).where(Posting.reason == "referral")
            ).scalar_one()
            == 1
        )
    audit_ok(engine)


def test_referral_racing_the_referees_first_transaction_is_rewarded_or_refused(
    engine: Engine, clock: FrozenClock
) -> None:
    pairs = 10
    for k in range(pairs):
        member(engine, clock, f"RR{k}")
        member(engine, clock, f"RE{k}")

    def act(i: int) -> Outcome:
        k = i // 2
        if i % 2:
            return earn(engine, clock, f"T{k}", f"RE{k}", "20.00")
        return run_in_transaction(
            engine,
            lambda s: service.create_referral(
                s, referrer_ref=f"RR{k}", referee_ref=f"RE{k}", key=None, now=clock.now()
            ),
        )

    results = race(2 * pairs, act)
    refusals = [r for r in results if not isinstance(r, Outcome)]
    only(refusals, InvalidReferral)
    assert all(isinstance(results[2 * k + 1], Outcome) for k in range(pairs)), "every earn went through"
    with read_session(engine) as s:
        referrals = {r.id: r for r in s.scalars(select(Referral))}
    for k in range(pairs):
        referral = referrals.get(f"RR{k}->RE{k}")
        if isinstance(results[2 * k], Outcome):
            # The referral came first: the referee's first transaction rewarded it, once.
            assert referral is not None and referral.status == "rewarded"
            assert points(engine, f"RR{k}") == 5_000
        else:
            # The transaction came first: the referee was already transacting.
            assert referral is None and points(engine, f"RR{k}") == 0
    assert count(
        engine, select(func.count()).select_from(Posting).where(Posting.reason == "referral")
    ) == sum(isinstance(results[2 * k], Outcome) for k in range(pairs))
    audit_ok(engine)


def test_parallel_earns_on_one_member_lose_no_update(engine: Engine, clock: FrozenClock) -> None:
    member(engine, clock, "G1")
    results = race(40, lambda i: earn(engine, clock, f"T{i}", "G1", f"{i + 1}.50"))
    accepted, refused = split(results)
    assert not refused, refused[:3]
    assert points(engine, "G1") == sum(range(1, 41))
    assert sorted(o.body["balance"] for o in accepted) == sorted({o.body["balance"] for o in accepted})
    audit_ok(engine)  # balance_after of every posting is the running sum: no update was lost


# --- miles exported concurrently ------------------------------------------------------------------------


def test_concurrent_miles_exports_send_each_mile_once(engine: Engine, clock: FrozenClock) -> None:
    for i in range(5):
        member(engine, clock, f"C{i}", product="cobrand-airline")
        earn(engine, clock, f"T{i}", f"C{i}", f"{100 * (i + 1)}.00")
    today = clock.now().date()
    days = [today, today, today + timedelta(days=1), today + timedelta(days=1), today + timedelta(days=2)]
    results = race(
        len(days),
        lambda i: run_in_transaction(
            engine, lambda s: service.export_miles(s, export_date=days[i], now=clock.now())
        ),
    )
    assert not [r for r in results if isinstance(r, BaseException)], results
    with read_session(engine) as s:
        lines = s.execute(select(MilesExportLine.posting_id, MilesExportLine.miles)).all()
        miles_postings = s.execute(select(Posting.id).where(Posting.unit == "miles")).scalars().all()
        exports = s.execute(select(func.count()).select_from(MilesExport)).scalar_one()
    assert sorted(pid for pid, _ in lines) == sorted(miles_postings), "every miles posting sent exactly once"
    assert sum(m for _, m in lines) == 100 + 200 + 300 + 400 + 500
    assert exports == 3  # one file per (partner, date), however many callers raced for it
    audit_ok(engine)


# --- one key, many bodies; one referee, many referrers -------------------------------------------------


def test_one_id_sent_with_different_bodies_at_once_posts_one_of_them(
    engine: Engine, clock: FrozenClock
) -> None:
    member(engine, clock, "K1")
    amounts = [f"{10 + i}.00" for i in range(10)]
    results = race(len(amounts), lambda i: earn(engine, clock, "T1", "K1", amounts[i]))
    accepted, refused = split(results)
    only(refused, IdempotencyConflict)
    assert len(accepted) == 1 and len(refused) == 9
    winner = accepted[0].body["points_earned"]
    assert points(engine, "K1") == winner
    assert [p.amount for p in postings_for(engine, "T1")] == [winner]
    audit_ok(engine)


def test_two_referrers_racing_for_one_referee_one_wins(engine: Engine, clock: FrozenClock) -> None:
    for ref in ("Q0", "Q1", "Q2", "Q3", "NEW"):
        member(engine, clock, ref)
    results = race(
        4,
        lambda i: run_in_transaction(
            engine,
            lambda s: service.create_referral(
                s, referrer_ref=f"Q{i}", referee_ref="NEW", key=None, now=clock.now()
            ),
        ),
    )
    accepted, refused = split(results)
    only(refused, InvalidReferral)
    assert len(accepted) == 1
    earn(engine, clock, "T1", "NEW", "5.00")
    referrer = accepted[0].body["referrer_ref"]
    assert {ref: points(engine, ref) for ref in ("Q0", "Q1", "Q2", "Q3")} == {
        ref: 5_000 if ref == referrer else 0 for ref in ("Q0", "Q1", "Q2", "Q3")
    }
    audit_ok(engine)


# --- everything at once ------------------------------------------------------------------------------------


def test_a_concurrent_mix_of_everything_keeps_the_invariants(engine: Engine, clock: FrozenClock) -> None:
    """Forty threads, each a seeded random run of earns, refunds, redemptions of every kind, holds
    confirmed or voided, and maintenance passes, on four members at once. Whatever order the
    database chose, the audit holds, each accepted step posted exactly its postings, each refused
    step wrote nothing, stock and codes add up."""
    refs = ["Z0", "Z1", "Z2", "Z3"]
    for ref in refs:
        member(engine, clock, ref, product="platinum")
        earn(engine, clock, f"OPEN-{ref}", ref, "3000.00")
    set_up_spending(engine, clock, price=400, stock=12)
    now = clock.now()
    run_in_transaction(
        engine,
        lambda s: (
            service.put_partner(
                s, code="shop", kind="merchant", name="Shop", points_per_block=1, units_per_block=1, now=now
            ),
            service.load_ecodes(
                s, partner_code="shop", points=300, codes=[f"Z-{i}" for i in range(8)], now=now
            ),
        ),
    )
    expected_postings: dict[str, int] = {}
    lock = threading.Lock()

    def expect(reference: str, n: int) -> None:
        with lock:
            expected_postings[reference] = expected_postings.get(reference, 0) + n

    def worker(t: int) -> None:
        rng = random.Random(t)
        earned: list[str] = []
        holds: list[str] = []
        for step in range(6):
            ref = rng.choice(refs)
            op = rng.choice(
                ["earn", "earn", "refund", "catalogue", "transfer", "ecode", "travel", "resolve", "sweep"]
            )
            name = f"{op}-{t}-{step}"
            amount = f"{rng.randint(1, 900)}.{rng.randint(0, 99):02d}"
            blocks, trip_points, action = (
                rng.randint(1, 3),
                rng.randint(100, 4000),
                rng.choice(["confirm", "void"]),
            )
            requests = {
                "catalogue": {"id": name, "kind": "catalogue", "sku": "voucher", "quantity": 1},
                "transfer": {"id": name, "kind": "transfer", "partner": "air", "points": 400 * blocks},
                "ecode": {"id": name, "kind": "ecode", "partner": "shop", "points": None},
                "travel": {
                    "id": name,
                    "kind": "travel",
                    "booking_ref": name,
                    "amount": amount,
                    "points": trip_points,
                },
            }
            try:
                if op == "earn":
                    earn(engine, clock, name, ref, amount, "travel")
                    expect(name, 1)
                    earned.append(name)
                elif op == "refund" and earned:
                    tx_id = rng.choice(earned)
                    outcome = run_in_transaction(
                        engine,
                        lambda s, tx_id=tx_id, refund_id=name, amount=amount: service.refund_transaction(
                            s, transaction_id=tx_id, refund_id=refund_id, amount=amount, now=now
                        ),
                    )
                    expect(tx_id, 1 if outcome.body["points_reversed"] else 0)
                elif op in requests:
                    redeem(engine, clock, ref, requests[op])
                    expect(name, 1)
                    if op == "travel":
                        holds.append(name)
                elif op == "resolve" and holds:
                    hold_id = rng.choice(holds)
                    run_in_transaction(
                        engine,
                        lambda s, hold_id=hold_id, action=action: service.resolve_hold(
                            s, redemption_id=hold_id, action=action, now=now
                        ),
                    )
                elif op == "sweep":
                    run_in_transaction(engine, lambda s: service.release_expired_holds(s, now=now))
            except RefundTooLarge:
                assert op == "refund"
            except (InsufficientPoints, OutOfStock, NoCodesLeft):
                assert op in requests
                nothing_written_for(engine, name)

    results = race(40, worker)
    errors = [r for r in results if isinstance(r, BaseException)]
    assert not errors, errors[:3]

    with read_session(engine) as s:
        posted = Counter(s.execute(select(Posting.reference)).scalars())
        holds = {r.id: r.status for r in s.scalars(select(Redemption).where(Redemption.kind == "travel"))}
        item = s.get(CatalogueItem, "voucher")
        codes = s.execute(select(ECode.redemption_id).where(ECode.redemption_id.is_not(None))).scalars().all()
        redemptions = set(s.execute(select(Redemption.id)).scalars())
    for reference, n in expected_postings.items():
        extra = 1 if holds.get(reference) in ("confirmed", "voided") else 0
        assert posted[reference] == n + extra, (reference, posted[reference], n, extra)
    assert item is not None and item.stock >= 0
    assert len(codes) == len(set(codes)) and set(codes) <= redemptions
    catalogue_sold = sum(1 for r in redemptions if r.startswith("catalogue-"))
    assert item.stock == 12 - catalogue_sold
    audit_ok(engine)
