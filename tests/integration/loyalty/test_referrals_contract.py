"""The REST contract of referrals: one referrer per new customer, a bonus credited once."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine

from prevenance.common.auth import create_key
from prevenance.common.clock import FrozenClock
from prevenance.db import unit_of_work
from tests.conftest import Api, member_body, tx_body

PROBLEM = "application/problem+json"


def _members(api: Api, **products: str) -> None:
    for ref, product in products.items():
        assert api.put(f"/v1/members/{ref}", member_body(product=product)).status_code == 201


def _refer(api: Api, referrer: str, referee: str, role: str = "agent", **kwargs: Any) -> Any:
    return api.post("/v1/referrals", {"referrer_ref": referrer, "referee_ref": referee}, role=role, **kwargs)


def _balance(api: Api, ref: str) -> dict[str, Any]:
    return dict(api.get(f"/v1/members/{ref}/balance").json())


def _movements(api: Api, ref: str) -> list[dict[str, Any]]:
    return list(api.get(f"/v1/members/{ref}/movements", params={"limit": 500}).json()["items"])


def _assert_422(response: Any, field: str) -> dict[str, Any]:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    problem = response.json()
    assert problem["field"] == field, problem
    return dict(problem)


def test_a_referral_is_created_pending(api: Api) -> None:
    _members(api, A="gold", B="green")
    response = _refer(api, "A", "B")
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["referrer_ref"] == "A" and body["referee_ref"] == "B"
    assert body["status"] == "pending"
    assert (body["bonus"], body["unit"]) == (5000, "points")
    assert body["id"]
    assert _balance(api, "A")["points"] == 0


def test_the_bonus_is_credited_once_at_the_referees_first_transaction(api: Api) -> None:
    _members(api, A="gold", B="green")
    referral = _refer(api, "A", "B").json()
    first = api.post("/v1/transactions", tx_body("T1", "B", "20.00"), role="integrator")
    assert first.status_code == 201, first.text
    assert first.json()["balance"] == 20
    assert _balance(api, "A")["points"] == 5000
    movements = _movements(api, "A")
    assert [(m["reason"], m["reference"], m["amount"]) for m in movements] == [
        ("referral", referral["id"], 5000)
    ]
    for i in range(2, 5):
        api.post("/v1/transactions", tx_body(f"T{i}", "B", "20.00"), role="integrator")
    assert _balance(api, "A")["points"] == 5000
    assert len(_movements(api, "A")) == 1
    assert _balance(api, "B")["points"] == 80
    # Replaying the first transaction does not pay the bonus twice either.
    api.post("/v1/transactions", tx_body("T1", "B", "20.00"), role="integrator")
    assert _balance(api, "A")["points"] == 5000
    assert api.get("/v1/ledger/audit").json()["ok"] is True


def test_the_bonus_waits_for_a_transaction(api: Api) -> None:
    _members(api, A="gold", B="green", C="green")
    _refer(api, "A", "B")
    api.post("/v1/transactions", tx_body("T1", "C", "20.00"), role="integrator")
    assert _balance(api, "A")["points"] == 0


def test_the_bonus_follows_the_referrers_product(api: Api) -> None:
    document = api.get("/v1/programme").json()["document"]
    document["products"]["platinum"]["referral_bonus"] = 12_000
    assert api.put("/v1/programme", document).status_code == 200
    _members(api, P="platinum", C="cobrand-airline", B="green", D="green")
    premium = _refer(api, "P", "B").json()
    assert (premium["bonus"], premium["unit"]) == (12_000, "points")
    cobrand = _refer(api, "C", "D").json()
    assert (cobrand["bonus"], cobrand["unit"]) == (5000, "miles")
    api.post("/v1/transactions", tx_body("T1", "B", "10.00"), role="integrator")
    api.post("/v1/transactions", tx_body("T2", "D", "10.00"), role="integrator")
    assert _balance(api, "P") == {"member_ref": "P", "points": 12_000, "miles": 0}
    assert _balance(api, "C") == {"member_ref": "C", "points": 0, "miles": 5000}
    assert [m["reason"] for m in _movements(api, "C")] == ["referral"]


def test_the_bonus_is_the_one_promised_when_the_referral_was_made(api: Api) -> None:
    _members(api, A="gold", B="green")
    assert _refer(api, "A", "B").json()["bonus"] == 5000
    document = api.get("/v1/programme").json()["document"]
    document["products"]["gold"]["referral_bonus"] = 1
    assert api.put("/v1/programme", document).status_code == 200
    api.post("/v1/transactions", tx_body("T1", "B", "10.00"), role="integrator")
    assert _balance(api, "A")["points"] == 5000


def test_self_referral_is_422(api: Api) -> None:
    _members(api, A="gold")
    problem = _assert_422(_refer(api, "A", "A"), "referee_ref")
    assert problem["type"].endswith("/invalid-referral")


def test_a_second_referrer_is_422(api: Api) -> None:
    _members(api, A="gold", B="green", C="gold")
    assert _refer(api, "A", "B").status_code == 201
    problem = _assert_422(_refer(api, "C", "B"), "referee_ref")
    assert problem["type"].endswith("/invalid-referral")
    api.post("/v1/transactions", tx_body("T1", "B", "10.00"), role="integrator")
    assert _balance(api, "A")["points"] == 5000
    assert _balance(api, "C")["points"] == 0


def test_a_referee_already_transacting_is_422(api: Api) -> None:
    _members(api, A="gold", B="green")
    api.post("/v1/transactions", tx_body("T1", "B", "10.00"), role="integrator")
    problem = _assert_422(_refer(api, "A", "B"), "referee_ref")
    assert problem["type"].endswith("/invalid-referral")
    api.post("/v1/transactions", tx_body("T2", "B", "10.00"), role="integrator")
    assert _balance(api, "A")["points"] == 0


def test_unknown_members_are_422(api: Api) -> None:
    _members(api, A="gold")
    _assert_422(_refer(api, "NOBODY", "A"), "referrer_ref")
    _assert_422(_refer(api, "A", "NOBODY"), "referee_ref")
    missing = api.post("/v1/referrals", {"referrer_ref": "A"}, role="agent")
    _assert_422(missing, "referee_ref")


def test_the_same_pair_again_answers_the_same(api: Api) -> None:
    _members(api, A="gold", B="green")
    first = _refer(api, "A", "B")
    again = _refer(api, "A", "B")
    assert (again.status_code, again.json()) == (first.status_code, first.json())
    # Even after the bonus was paid, the pair replays its original answer and pays nothing more.
    api.post("/v1/transactions", tx_body("T1", "B", "10.00"), role="integrator")
    later = _refer(api, "A", "B")
    assert (later.status_code, later.json()) == (201, first.json())
    assert _balance(api, "A")["points"] == 5000


def test_an_idempotency_key_header_names_the_referral(api: Api) -> None:
    _members(api, A="gold", B="green", C="green")
    first = _refer(api, "A", "B", headers={"Idempotency-Key": "ref-1"})
    assert first.status_code == 201 and first.json()["id"] == "ref-1"
    again = _refer(api, "A", "B", headers={"Idempotency-Key": "ref-1"})
    assert again.json() == first.json()
    reused = _refer(api, "A", "C", headers={"Idempotency-Key": "ref-1"})
    assert reused.status_code == 409 and reused.headers["content-type"].startswith(PROBLEM)


def test_a_member_key_records_no_referral_it_shares_its_code_instead(
    api: Api, engine: Engine, clock: FrozenClock
) -> None:
    _members(api, A="gold", B="green", C="green")
    with unit_of_work(engine) as session:
        _, secret = create_key(session, role="member", member_ref="A", name="app-A", now=clock.now())
    headers = {"Authorization": f"Bearer {secret}"}
    own = api.client.post("/v1/referrals", json={"referrer_ref": "A", "referee_ref": "B"}, headers=headers)
    assert own.status_code == 403, own.text
    other = api.client.post("/v1/referrals", json={"referrer_ref": "C", "referee_ref": "B"}, headers=headers)
    assert (other.status_code, other.json()) == (own.status_code, own.json())
    assert _refer(api, "A", "C", role="supervisor").status_code == 403
    api.post("/v1/transactions", tx_body("T1", "B", "10.00"), role="integrator")
    assert _balance(api, "A")["points"] == 0
