"""The REST contract of members, transactions, refunds, balance and movements."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from tests.conftest import Api, member_body, tx_body

PROBLEM = "application/problem+json"


def test_put_member_creates_then_updates(api: Api) -> None:
    created = api.put("/v1/members/M1", member_body(), role="agent")
    assert created.status_code == 201, created.text
    assert created.json()["country"] == "FR"
    updated = api.put("/v1/members/M1", member_body(name="Camille Dupont"), role="agent")
    assert updated.status_code == 200
    assert api.get("/v1/members/M1").json()["name"] == "Camille Dupont"


def test_member_validation_names_the_field(api: Api) -> None:
    for field, value in [("country", "XX"), ("language", "de"), ("product", "diamond"), ("email", "nope")]:
        response = api.put("/v1/members/M2", member_body(**{field: value}))
        assert response.status_code == 422, (field, response.text)
        assert response.headers["content-type"].startswith(PROBLEM)
        assert response.json()["field"] == field
    assert api.get("/v1/members/M2").status_code == 404


def test_earn_one_point_per_whole_euro(api: Api) -> None:
    api.put("/v1/members/M1", member_body())
    response = api.post("/v1/transactions", tx_body("T1", "M1", "42.99"), role="integrator")
    assert response.status_code == 201, response.text
    assert response.json() == {
        "id": "T1",
        "member_ref": "M1",
        "points_earned": 42,
        "unit": "points",
        "balance": 42,
    }
    balance = api.get("/v1/members/M1/balance").json()
    assert balance == {"member_ref": "M1", "points": 42, "miles": 0}


def test_small_amount_always_earns_something(api: Api) -> None:
    api.put("/v1/members/M1", member_body())
    response = api.post("/v1/transactions", tx_body("T1", "M1", "0.40"), role="integrator")
    assert response.json()["points_earned"] == 1


def test_premium_travel_earns_double_and_cobrand_earns_miles(api: Api) -> None:
    api.put("/v1/members/P1", member_body(product="platinum"))
    api.put("/v1/members/C1", member_body(product="cobrand-airline"))
    travel = api.post("/v1/transactions", tx_body("T1", "P1", "100.00", category="travel"), role="integrator")
    assert travel.json()["points_earned"] == 200
    miles = api.post("/v1/transactions", tx_body("T2", "C1", "100.00"), role="integrator")
    assert miles.json()["unit"] == "miles" and miles.json()["points_earned"] == 100
    assert api.get("/v1/members/C1/balance").json() == {"member_ref": "C1", "points": 0, "miles": 100}


def test_foreign_currency_is_converted(api: Api) -> None:
    api.put("/v1/members/M1", member_body())
    response = api.post("/v1/transactions", tx_body("T1", "M1", "100", currency="GBP"), role="integrator")
    assert response.json()["points_earned"] == 117


def test_same_id_same_body_replays_other_body_conflicts(api: Api) -> None:
    api.put("/v1/members/M1", member_body())
    first = api.post("/v1/transactions", tx_body("T1", "M1"), role="integrator")
    again = api.post("/v1/transactions", tx_body("T1", "M1"), role="integrator")
    assert (again.status_code, again.json()) == (first.status_code, first.json())
    other = api.post("/v1/transactions", tx_body("T1", "M1", "10.00"), role="integrator")
    assert other.status_code == 409
    assert other.headers["content-type"].startswith(PROBLEM)
    assert api.get("/v1/members/M1/balance").json()["points"] == 42


def test_bad_transactions_are_422_and_write_nothing(api: Api) -> None:
    api.put("/v1/members/M1", member_body())
    cases = [
        (tx_body("T1", "NOBODY"), "member_ref"),
        (tx_body("T2", "M1", "-5"), "amount"),
        (tx_body("T3", "M1", "0"), "amount"),
        (tx_body("T4", "M1", "1.234"), "amount"),
        (tx_body("T5", "M1", "abc"), "amount"),
        (tx_body("T6", "M1", currency="XYZ"), "currency"),
        (tx_body("T7", "M1", "100.5", currency="JPY"), "amount"),
        ({**tx_body("T8", "M1"), "amount": 12.5}, "amount"),
    ]
    for body, field in cases:
        response = api.post("/v1/transactions", body, role="integrator")
        assert response.status_code == 422, (body, response.text)
        assert response.json()["field"] == field, response.json()
    assert api.get("/v1/members/M1/balance").json()["points"] == 0
    assert api.get("/v1/members/M1/movements").json()["items"] == []


def test_refunds_keep_what_the_remaining_amount_earns(api: Api) -> None:
    api.put("/v1/members/M1", member_body())
    api.post("/v1/transactions", tx_body("T1", "M1", "100.00"), role="integrator")
    partial = api.post("/v1/transactions/T1/refunds", {"id": "R1", "amount": "30.50"}, role="integrator")
    assert partial.status_code == 201, partial.text
    assert partial.json()["points_reversed"] == 31  # 69.50 left earns 69
    assert partial.json()["balance"] == 69
    replay = api.post("/v1/transactions/T1/refunds", {"id": "R1", "amount": "30.50"}, role="integrator")
    assert replay.json() == partial.json()
    too_much = api.post("/v1/transactions/T1/refunds", {"id": "R2", "amount": "70.00"}, role="integrator")
    assert too_much.status_code == 422
    rest = api.post("/v1/transactions/T1/refunds", {"id": "R3", "amount": "69.50"}, role="integrator")
    assert rest.json()["points_reversed"] == 69
    assert api.get("/v1/members/M1/balance").json()["points"] == 0
    unknown = api.post("/v1/transactions/NOPE/refunds", {"id": "R4", "amount": "1.00"}, role="integrator")
    assert unknown.status_code == 404


def test_movements_newest_first_with_cursor(api: Api) -> None:
    api.put("/v1/members/M1", member_body())
    for i in range(5):
        api.post("/v1/transactions", tx_body(f"T{i}", "M1", f"{10 + i}.00"), role="integrator")
    page = api.get("/v1/members/M1/movements", params={"limit": 2}).json()
    assert [m["reference"] for m in page["items"]] == ["T4", "T3"]
    assert page["items"][0]["reason"] == "earn" and page["items"][0]["amount"] == 14
    rest = api.get("/v1/members/M1/movements", params={"limit": 10, "cursor": page["next_cursor"]}).json()
    assert [m["reference"] for m in rest["items"]] == ["T2", "T1", "T0"]
    assert rest["next_cursor"] is None


def test_auth_401_and_403(api: Api) -> None:
    assert api.client.get("/v1/members/M1").status_code == 401
    bad = api.client.get("/v1/members/M1", headers={"Authorization": "Bearer nope"})
    assert bad.status_code == 401 and bad.headers["content-type"].startswith(PROBLEM)
    forbidden = api.post("/v1/transactions", tx_body("T1", "M1"), role="supervisor")
    assert forbidden.status_code == 403
    assert api.client.get("/healthz").status_code == 200


def test_audit_holds(api: Api) -> None:
    api.put("/v1/members/M1", member_body())
    api.post("/v1/transactions", tx_body("T1", "M1"), role="integrator")
    report = api.get("/v1/ledger/audit")
    assert report.status_code == 200, report.text
    assert report.json()["ok"] is True
    assert api.get("/v1/ledger/audit", role="agent").status_code == 403


def test_the_database_refuses_to_change_or_delete_a_posting(api: Api, engine: Engine) -> None:
    """Append-only is enforced below the code too: a trigger refuses UPDATE and DELETE."""
    api.put("/v1/members/M1", member_body())
    api.post("/v1/transactions", tx_body("T1", "M1"), role="integrator")
    for statement in ("UPDATE postings SET amount = amount + 1", "DELETE FROM postings"):
        with pytest.raises(DBAPIError, match="append-only"), engine.begin() as connection:
            connection.execute(text(statement))
    assert api.get("/v1/members/M1/balance").json()["points"] == 42
    assert api.get("/v1/ledger/audit").json()["ok"] is True


def test_audit_fails_loudly_on_a_posting_written_behind_the_ledgers_back(api: Api, engine: Engine) -> None:
    """A posting inserted without updating the balance breaks Σ and the running balance: 500, named."""
    api.put("/v1/members/M1", member_body())
    api.post("/v1/transactions", tx_body("T1", "M1"), role="integrator")
    with engine.begin() as connection:
        member_account, issuance, created_at = connection.execute(
            text(
                "SELECT p.credit_account_id, p.debit_account_id, p.created_at FROM postings p "
                "WHERE p.reference = 'T1'"
            )
        ).one()
        connection.execute(
            text(
                "INSERT INTO postings (idempotency_key, debit_account_id, credit_account_id, amount, unit, "
                "reason, reference, member_id, balance_after, created_at) SELECT 'forged', :d, :c, 7, "
                "'points', 'earn', 'forged', member_id, 999, :at FROM accounts WHERE id = :c"
            ),
            {"d": issuance, "c": member_account, "at": created_at},
        )
    response = api.get("/v1/ledger/audit")
    assert response.status_code == 500
    assert response.headers["content-type"].startswith(PROBLEM)
    failed = {c["name"] for c in response.json()["report"]["checks"] if not c["ok"]}
    assert {"member_balance_equals_postings", "balance_after_is_running_sum"} <= failed
