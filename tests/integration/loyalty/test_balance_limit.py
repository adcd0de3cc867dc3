"""The ledger's bound (``loyalty.ledger_bounds``): no balance leaves ±``LEDGER_BALANCE_LIMIT``.

Before it, ``balance = balance + :amount`` could pass 2^63 - 1: PostgreSQL answered 500 (a numeric
overflow), SQLite silently stored a REAL balance. Now every door that moves points refuses the
posting that would pass the bound with a 422 ``balance-limit`` problem and writes nothing of it —
the API, a batch of the earn engine (its neighbours still commit), the stream, the settlement
ingest (a reject line), goodwill and offer rewards (``ledger.post`` / ``ledger.credit_member``) —
and the database refuses such a balance should any statement try.

A member is brought near the bound by real earns (the largest rate a programme allows), so the
audit still holds at the end of every test.
"""

from __future__ import annotations

import copy
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import Engine, func, select, text
from sqlalchemy.exc import IntegrityError

from prevenance.common.clock import FrozenClock
from prevenance.common.idempotency import IdempotencyKey, Outcome
from prevenance.db import read_session, unit_of_work
from prevenance.loyalty import earning, goodwill, hooks, ingest, ledger, service
from prevenance.loyalty.errors import BalanceLimitExceeded
from prevenance.loyalty.ledger_bounds import LEDGER_BALANCE_LIMIT as LIMIT
from prevenance.loyalty.tables import Account, CardTransaction, GoodwillGrant, Posting
from prevenance.stream.consumer import ACCEPTED, REJECTED, apply_batch
from tests.conftest import Api, member_body, tx_body
from tests.integration.loyalty.test_goodwill import install_goodwill
from tests.integration.loyalty.test_ingest import TX_HEADER, read_rejects, write_csv

PROBLEM = "application/problem+json"
BALANCE_LIMIT = "https://prevenance.dev/problems/balance-limit"
NEAR = LIMIT - 1000
# 9,999,999,999.99 USD at 100 euros per dollar and 1,000 points per euro (books): the limit - 1,000.
NEAR_AMOUNT = "9999999999.99"


def _rich_programme(api: Api) -> None:
    """The largest rate a programme may set on books (1,000 per euro; 2 on other categories)."""
    document = copy.deepcopy(api.get("/v1/programme").json()["document"])
    document["fx_rates"]["USD"] = "100"
    document["products"]["gold"]["earn_per_euro"] = 2
    document["products"]["gold"]["category_multipliers"] = {"books": 500}
    assert api.put("/v1/programme", document).status_code == 200


def _near_the_limit(api: Api, *refs: str) -> None:
    """Members with ``NEAR`` points each, earned for real."""
    _rich_programme(api)
    for ref in refs:
        assert api.put(f"/v1/members/{ref}", member_body()).status_code == 201
        body = tx_body(f"BIG-{ref}", ref, NEAR_AMOUNT, currency="USD")
        earned = api.post("/v1/transactions", body, role="integrator")
        assert earned.status_code == 201, earned.text
        assert earned.json()["balance"] == NEAR


def _balance(api: Api, ref: str) -> int:
    return int(api.get(f"/v1/members/{ref}/balance").json()["points"])


def _counts(engine: Engine) -> tuple[int, int, int]:
    with read_session(engine) as session:
        return (
            session.scalar(select(func.count()).select_from(Posting)) or 0,
            session.scalar(select(func.count()).select_from(CardTransaction)) or 0,
            session.scalar(select(func.count()).select_from(IdempotencyKey)) or 0,
        )


def _audit_ok(engine: Engine) -> dict[str, Any]:
    with read_session(engine) as session:
        report = ledger.audit(session)
    assert report["ok"], report
    return report


def _assert_balance_limit(response: Any) -> None:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    problem = response.json()
    assert problem["type"] == BALANCE_LIMIT and problem["title"] == "Balance limit reached"
    assert problem["field"] == "amount" and problem["limit"] == LIMIT


def test_an_earn_past_the_balance_limit_is_422_and_writes_nothing(api: Api, engine: Engine) -> None:
    _near_the_limit(api, "M1")
    exact = api.post("/v1/transactions", tx_body("T1", "M1", "1.00"), role="integrator")
    assert exact.status_code == 201 and exact.json()["balance"] == LIMIT  # the bound itself is kept
    before = _counts(engine)
    for _ in range(2):  # refused again on retry: nothing was stored to replay
        _assert_balance_limit(api.post("/v1/transactions", tx_body("T2", "M1", "1.00"), role="integrator"))
    assert _counts(engine) == before
    assert _balance(api, "M1") == LIMIT
    assert api.get("/v1/transactions/T2").status_code == 404
    report = _audit_ok(engine)
    assert "balances_are_bounded_integers" in {c["name"] for c in report["checks"]}


def test_one_earn_larger_than_a_posting_may_move_is_422_and_writes_nothing(api: Api, engine: Engine) -> None:
    """The largest payment at the largest rate earns about 10^17 points: more than one posting moves."""
    _rich_programme(api)
    api.put("/v1/members/M1", member_body())
    before = _counts(engine)
    body = tx_body("T1", "M1", "999999999999.99", currency="USD")
    _assert_balance_limit(api.post("/v1/transactions", body, role="integrator"))
    assert _counts(engine) == before and _balance(api, "M1") == 0
    _audit_ok(engine)


def _request(tx_id: str, ref: str, amount: str, category: str = "books") -> earning.EarnRequest:
    body = tx_body(tx_id, ref, amount, category=category)
    return earning.EarnRequest.of(service.TransactionInput(**{**body, "occurred_at": FrozenClock().now()}))


def test_a_refused_earn_in_a_batch_leaves_its_neighbours_committed(
    api: Api, engine: Engine, clock: FrozenClock
) -> None:
    """In batch order, as one at a time would: M1's +500 fits, M2's earn fits, M1's +1,000 would pass
    the bound (refused, nothing written), M1's next +500 fits exactly."""
    _near_the_limit(api, "M1")
    api.put("/v1/members/M2", member_body())
    batch = [
        _request("B1", "M1", "250.00", "dining"),  # 2 per euro: 500
        _request("B2", "M2", "10.00"),
        _request("B3", "M1", "1.00"),  # 1,000: past the bound
        _request("B4", "M1", "250.00", "dining"),
    ]
    results = earning.run_earns(engine, batch, now=clock.now)
    assert [type(r).__name__ for r in results] == ["Outcome", "Outcome", "BalanceLimitExceeded", "Outcome"]
    outcomes = [r for r in results if isinstance(r, Outcome)]
    assert [o.body["balance"] for o in outcomes] == [NEAR + 500, 10_000, LIMIT]
    refused = results[2]
    assert isinstance(refused, BalanceLimitExceeded) and refused.to_problem()["type"] == BALANCE_LIMIT
    assert _balance(api, "M1") == LIMIT and _balance(api, "M2") == 10_000
    assert api.get("/v1/transactions/B3").status_code == 404
    _audit_ok(engine)


def test_the_stream_rejects_the_message_past_the_bound_and_keeps_the_others(
    api: Api, engine: Engine, clock: FrozenClock
) -> None:
    _near_the_limit(api, "M1")
    api.put("/v1/members/M2", member_body())
    messages = [
        orjson.dumps(tx_body("S1", "M2", "10.00")),
        orjson.dumps(tx_body("S2", "M1", "2.00")),  # 2,000: past the bound
        orjson.dumps(tx_body("S3", "M1", "1.00")),  # 1,000: exactly the bound
    ]
    results = apply_batch(engine, clock, messages)
    assert [r.status for r in results] == [ACCEPTED, REJECTED, ACCEPTED]
    assert results[1].body["type"] == BALANCE_LIMIT and results[1].body["status"] == 422
    assert _balance(api, "M1") == LIMIT
    _audit_ok(engine)


@pytest.mark.parametrize("method", ["batch", "rowwise"])
def test_the_settlement_ingest_rejects_the_line_past_the_bound(
    api: Api, engine: Engine, clock: FrozenClock, tmp_path: Path, method: str
) -> None:
    _near_the_limit(api, "M1")
    api.put("/v1/members/M2", member_body())
    rows = [
        tx_body("F1", "M1", "250.00", category="dining"),  # 500
        tx_body("F2", "M1", "1.00"),  # 1,000 more: past the bound
        tx_body("F3", "M2", "10.00"),
        tx_body("F4", "M1", "250.00", category="dining"),  # the last 500
    ]
    path = write_csv(tmp_path / "settlement.csv", TX_HEADER, rows)
    report = ingest.ingest_transactions(engine, path, chunk_size=10, clock=clock, method=method)  # type: ignore[arg-type]
    assert report.counts == {"posted": 3, "replayed": 0}
    rejects = read_rejects(report.rejects_path)
    assert [(r["line"], r["key"], r["status"], r["problem"], r["field"]) for r in rejects] == [
        ("3", "F2", "422", "balance-limit", "amount")
    ]
    assert _balance(api, "M1") == LIMIT
    _audit_ok(engine)


def test_goodwill_and_offer_rewards_past_the_bound_are_refused_and_write_nothing(
    api: Api, engine: Engine, clock: FrozenClock
) -> None:
    """The doors that post one at a time (``ledger.credit_member``, ``ledger.post``) hold the bound in
    their balance update."""
    _near_the_limit(api, "M1")
    install_goodwill(engine, clock, {"causes": {"late_card": {"points": 2500, "credit_eur": "15.00"}}})
    with read_session(engine) as session:
        member_id = session.scalar(select(Account.member_id).where(Account.member_id.is_not(None)))
    assert member_id is not None
    before = _counts(engine)
    with pytest.raises(BalanceLimitExceeded), unit_of_work(engine) as session:
        goodwill.grant(
            session,
            member_id=member_id,
            cause="late_card",
            reference="R1",
            team=None,
            by="t",
            now=clock.now(),
        )
    with pytest.raises(BalanceLimitExceeded), unit_of_work(engine) as session:
        hooks.award_bonus(
            session, member_id=member_id, points=1001, reason=hooks.OFFER_REWARD, reference="O1",
            key="offer:O1", now=clock.now(),
        )  # fmt: skip
    assert _counts(engine) == before
    with read_session(engine) as session:
        assert session.scalar(select(func.count()).select_from(GoodwillGrant)) == 0
    with unit_of_work(engine) as session:  # the bound itself is reachable
        balance = hooks.award_bonus(
            session, member_id=member_id, points=1000, reason=hooks.OFFER_REWARD, reference="O2",
            key="offer:O2", now=clock.now(),
        )  # fmt: skip
    assert balance == LIMIT
    _audit_ok(engine)


def test_a_debit_past_the_negative_bound_is_refused(api: Api, engine: Engine, clock: FrozenClock) -> None:
    """A refund may leave a balance negative, never below -limit (the debit's WHERE clause)."""
    api.put("/v1/members/M1", member_body())
    assert api.post("/v1/transactions", tx_body("T1", "M1", "10.00"), role="integrator").status_code == 201
    with unit_of_work(engine) as session:
        session.execute(
            text("UPDATE accounts SET balance = :b WHERE member_id IS NOT NULL"), {"b": -LIMIT + 5}
        )
    with pytest.raises(BalanceLimitExceeded), unit_of_work(engine) as session:
        account = ledger.member_account(session, member_id=_member_id(engine), unit="points")
        ledger.post(
            session, debit=account, credit=ledger.system_account(session, name="issuance", unit="points"),
            amount=6, reason="refund", reference="T1", key="refund:T1:x", now=clock.now(),
        )  # fmt: skip
    assert _balance(api, "M1") == -LIMIT + 5


def _member_id(engine: Engine) -> int:
    with read_session(engine) as session:
        found = session.scalar(select(Account.member_id).where(Account.member_id.is_not(None)))
    assert found is not None
    return int(found)


@pytest.mark.parametrize("value", [LIMIT + 1, -LIMIT - 1, 2**62])
def test_the_database_refuses_a_balance_beyond_the_bound(api: Api, engine: Engine, value: int) -> None:
    """The last line of defence: ``ck_accounts_balance_within_limit`` (a trigger on SQLite)."""
    api.put("/v1/members/M1", member_body())
    api.post("/v1/transactions", tx_body("T1", "M1", "10.00"), role="integrator")
    with pytest.raises(IntegrityError), unit_of_work(engine) as session:
        session.execute(text("UPDATE accounts SET balance = :b WHERE member_id IS NOT NULL"), {"b": value})
    with pytest.raises(IntegrityError), unit_of_work(engine) as session:
        session.execute(
            text(
                "INSERT INTO accounts (code, unit, member_id, tracks_balance, balance) "
                "VALUES ('system:test:points', 'points', NULL, :no, :b)"
            ),
            {"no": False, "b": value},
        )
    assert _balance(api, "M1") == 10
    _audit_ok(engine)


def test_sqlite_refuses_a_real_balance_and_the_audit_would_name_one(
    api: Api, engine: Engine, backend: str
) -> None:
    """SQLite turned an overflowing integer sum into a REAL: the trigger refuses any non-integer
    balance, and should one ever be stored (the trigger dropped) the audit names it. PostgreSQL's
    bigint holds integers only: it rounds such a value, and the audit then names the balance that
    no longer matches its postings."""
    api.put("/v1/members/M1", member_body())
    api.post("/v1/transactions", tx_body("T1", "M1", "10.00"), role="integrator")
    real = "UPDATE accounts SET balance = 10.5 WHERE member_id IS NOT NULL"
    if backend != "sqlite":
        with unit_of_work(engine) as session:
            session.execute(text(real))
        with read_session(engine) as session:
            report = ledger.audit(session)
        assert _balance(api, "M1") in (10, 11) and not report["ok"]
        return
    with pytest.raises(IntegrityError), unit_of_work(engine) as session:
        session.execute(text(real))
    with unit_of_work(engine) as session:
        session.execute(text("DROP TRIGGER accounts_balance_limit_update"))
        session.execute(text(real))
    with read_session(engine) as session:
        report = ledger.audit(session)
    check = next(c for c in report["checks"] if c["name"] == "balances_are_bounded_integers")
    assert not report["ok"] and not check["ok"]
    assert [f["balance"] for f in check["failures"]] == [10.5]


def test_the_audit_sums_system_accounts_past_a_64_bit_integer(
    api: Api, engine: Engine, clock: FrozenClock
) -> None:
    """System accounts keep no balance (the issuance account is never a hot row), so what they add up
    to is not bounded: a long life of earns and spending issues more than 2^63 - 1 points in total.
    The audit sums them exactly on both databases (SQLite's ``sum()`` raised "integer overflow")."""
    count = 9300  # postings of the largest amount: 9.3 × 10^18 issued, past 2^63 - 1
    with unit_of_work(engine) as session:
        issuance = ledger.system_account(session, name="issuance", unit="points")
        catalogue = ledger.system_account(session, name="catalogue", unit="points")
        at = clock.now()
        session.execute(
            Posting.__table__.insert(),
            [
                {
                    "idempotency_key": f"bulk:{i}",
                    "debit_account_id": issuance.id,
                    "credit_account_id": catalogue.id,
                    "amount": LIMIT,
                    "unit": "points",
                    "reason": "redemption_catalogue",
                    "reference": f"R{i}",
                    "member_id": None,
                    "balance_after": None,
                    "created_at": at,
                }
                for i in range(count)
            ],
        )
    report = _audit_ok(engine)
    assert report["issued"]["points"] == count * LIMIT > 2**63


def test_an_expired_hold_with_no_room_left_waits_and_never_blocks_the_others(
    api: Api, engine: Engine, clock: FrozenClock
) -> None:
    """Held points go back to a member whose balance reached the bound meanwhile only once there is
    room: the maintenance pass releases every other hold, and the member can still spend."""
    _near_the_limit(api, "M1")
    api.put("/v1/members/M2", member_body())
    api.post("/v1/transactions", tx_body("T0", "M2", "10.00"), role="integrator")
    for ref, points in (("M1", 5000), ("M2", 100)):
        body = {"id": f"H-{ref}", "kind": "travel", "booking_ref": ref, "amount": "150.00", "points": points}
        assert api.post(f"/v1/members/{ref}/redemptions", body, role="agent").status_code == 201
    assert api.post("/v1/transactions", tx_body("T1", "M1", "6.00"), role="integrator").status_code == 201
    assert _balance(api, "M1") == LIMIT
    clock.advance(timedelta(hours=1))
    with unit_of_work(engine) as session:
        assert service.release_expired_holds(session, now=clock.now()) == 1  # M2's
    assert _balance(api, "M2") == 10_000
    assert api.get("/v1/redemptions/H-M1").json()["status"] == "held"
    spend = {"id": "S1", "kind": "travel", "booking_ref": "S1", "amount": "150.00", "points": 5000}
    assert api.post("/v1/members/M1/redemptions", spend, role="agent").status_code == 201
    with unit_of_work(engine) as session:  # room again: the expired hold goes back
        assert service.release_expired_holds(session, now=clock.now()) == 1
    assert api.get("/v1/redemptions/H-M1").json()["status"] == "expired"
    assert _balance(api, "M1") == LIMIT
    _audit_ok(engine)
