"""Referral with consent: a member shares its referral code, the new customer (or an integrator for
them at onboarding) enters it. A member key never names a referee, and no answer it gets says
whether a ref exists or transacts. Staff and integrator keys still record a referral directly
(``test_referrals_contract.py``)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from prevenance.common.auth import create_key
from prevenance.common.clock import FrozenClock
from prevenance.db import read_session, unit_of_work
from prevenance.loyalty.tables import Referral
from tests.conftest import Api, member_body, tx_body

PROBLEM = "application/problem+json"


def _members(api: Api, **products: str) -> None:
    for ref, product in products.items():
        assert api.put(f"/v1/members/{ref}", member_body(product=product)).status_code == 201


def _key(engine: Engine, clock: FrozenClock, ref: str) -> dict[str, str]:
    with unit_of_work(engine) as session:
        _, secret = create_key(session, role="member", member_ref=ref, name=f"app-{ref}", now=clock.now())
    return {"Authorization": f"Bearer {secret}"}


def _code(api: Api, headers: dict[str, str], ref: str) -> str:
    response = api.client.get(f"/v1/members/{ref}/referral-code", headers=headers)
    assert response.status_code == 200, response.text
    return str(response.json()["referral_code"])


def _enter(api: Api, headers: dict[str, str], ref: str, code: str, **extra: Any) -> Any:
    return api.client.post(
        f"/v1/members/{ref}/referral", json={"referral_code": code}, headers={**headers, **extra}
    )


def _referrals(engine: Engine) -> int:
    with read_session(engine) as session:
        return int(session.scalar(select(func.count()).select_from(Referral)) or 0)


def _points(api: Api, ref: str) -> int:
    return int(api.get(f"/v1/members/{ref}/balance").json()["points"])


def _refused(response: Any) -> dict[str, Any]:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    problem = dict(response.json())
    assert problem["field"] == "referral_code" and problem["type"].endswith("/invalid-referral-code")
    return problem


def test_a_member_reads_its_own_code_and_the_bonus_it_would_earn(
    api: Api, engine: Engine, clock: FrozenClock
) -> None:
    _members(api, A="gold", C="cobrand-airline")
    own = _key(engine, clock, "A")
    body = api.client.get("/v1/members/A/referral-code", headers=own).json()
    assert set(body) == {"member_ref", "referral_code", "bonus", "unit"}
    assert (body["member_ref"], body["bonus"], body["unit"]) == ("A", 5000, "points")
    assert _code(api, own, "A") == body["referral_code"]  # the same code every time
    assert api.get("/v1/members/C/referral-code", role="agent").json()["unit"] == "miles"
    assert _code(api, api.headers("agent"), "A") == body["referral_code"]
    assert api.get("/v1/members/A/referral-code", role="supervisor").status_code == 403
    assert api.get("/v1/members/NOBODY/referral-code", role="agent").status_code == 404


def test_a_new_customer_who_enters_a_code_is_referred_and_the_bonus_comes_with_their_first_payment(
    api: Api, engine: Engine, clock: FrozenClock
) -> None:
    _members(api, A="gold", B="green")
    code = _code(api, _key(engine, clock, "A"), "A")
    entered = _enter(api, _key(engine, clock, "B"), "B", code)
    assert entered.status_code == 201, entered.text
    body = entered.json()
    assert set(body) == {"id", "referee_ref", "referral_code", "status"}  # the referrer is not named
    assert (body["referee_ref"], body["referral_code"], body["status"]) == ("B", code, "pending")
    assert "A" not in body["id"]
    assert _points(api, "A") == 0
    assert api.post("/v1/transactions", tx_body("T1", "B", "20.00"), role="integrator").status_code == 201
    assert api.post("/v1/transactions", tx_body("T2", "B", "20.00"), role="integrator").status_code == 201
    assert _points(api, "A") == 5000
    movements = api.get("/v1/members/A/movements").json()["items"]
    assert [(m["reason"], m["reference"]) for m in movements] == [("referral", body["id"])]
    assert api.get("/v1/ledger/audit").json()["ok"] is True


def test_an_integrator_enters_the_code_for_a_customer_at_onboarding(api: Api) -> None:
    _members(api, A="gold", B="green")
    code = _code(api, api.headers("integrator"), "A")
    entered = _enter(api, api.headers("integrator"), "B", code)
    assert entered.status_code == 201, entered.text
    api.post("/v1/transactions", tx_body("T1", "B", "20.00"), role="integrator")
    assert _points(api, "A") == 5000
    assert _enter(api, api.headers("integrator"), "NOBODY", code).status_code == 404
    assert _enter(api, api.headers("supervisor"), "B", code).status_code == 403


def test_a_code_is_read_as_typed_and_entering_it_again_answers_the_same(
    api: Api, engine: Engine, clock: FrozenClock
) -> None:
    _members(api, A="gold", B="green", C="gold")
    code = _code(api, api.headers("agent"), "A")
    b = _key(engine, clock, "B")
    first = _enter(api, b, "B", " " + code.lower().replace("-", " "))
    assert first.status_code == 201, first.text
    assert first.json()["referral_code"] == code
    again = _enter(api, b, "B", code)
    assert (again.status_code, again.json()) == (201, first.json())
    assert again.headers.get("Idempotent-Replayed") == "true"
    other = _code(api, api.headers("agent"), "C")
    problem = _refused(_enter(api, b, "B", other))  # one referrer per customer
    assert "C" not in problem["detail"].replace("B", "")
    assert _referrals(engine) == 1


def test_an_idempotency_key_replays_and_refuses_another_body(
    api: Api, engine: Engine, clock: FrozenClock
) -> None:
    _members(api, A="gold", B="green", C="gold")
    b = _key(engine, clock, "B")
    code = _code(api, api.headers("agent"), "A")
    first = _enter(api, b, "B", code, **{"Idempotency-Key": "k-1"})
    assert first.status_code == 201
    assert _enter(api, b, "B", code, **{"Idempotency-Key": "k-1"}).json() == first.json()
    other = _enter(api, b, "B", _code(api, api.headers("agent"), "C"), **{"Idempotency-Key": "k-1"})
    assert other.status_code == 409
    assert first.json()["id"] != "k-1"  # the server names the referral, never the caller


def test_codes_no_member_has_are_refused_alike(api: Api, engine: Engine, clock: FrozenClock) -> None:
    _members(api, A="gold", B="green")
    b = _key(engine, clock, "B")
    real = _code(api, api.headers("agent"), "A")
    forged = "ABCD-EFGH-JKLM" if real != "ABCD-EFGH-JKLM" else "MLKJ-HGFE-DCBA"
    typo = real[:-1] + ("A" if real[-1] != "A" else "B")
    problems = [
        _refused(_enter(api, b, "B", text)) for text in (forged, typo, "not a code", "0000-0000-0000")
    ]
    assert len({(p["title"], p["detail"]) for p in problems}) == 1
    empty = _enter(api, b, "B", "")
    assert empty.status_code == 422 and empty.json()["field"] == "referral_code"
    assert _referrals(engine) == 0


def test_a_member_cannot_use_its_own_code_nor_refer_someone_already_transacting(
    api: Api, engine: Engine, clock: FrozenClock
) -> None:
    _members(api, A="gold", B="green")
    a, b = _key(engine, clock, "A"), _key(engine, clock, "B")
    _refused(_enter(api, a, "A", _code(api, a, "A")))
    api.post("/v1/transactions", tx_body("T1", "B", "20.00"), role="integrator")
    _refused(_enter(api, b, "B", _code(api, a, "A")))
    api.post("/v1/transactions", tx_body("T2", "B", "20.00"), role="integrator")
    assert _points(api, "A") == 0
    assert _referrals(engine) == 0


def test_an_erased_members_code_refers_no_one(api: Api, engine: Engine, clock: FrozenClock) -> None:
    _members(api, A="gold", B="green")
    code = _code(api, api.headers("agent"), "A")
    assert api.post("/v1/members/A/erase").status_code == 200
    _refused(_enter(api, _key(engine, clock, "B"), "B", code))
    assert _referrals(engine) == 0


def test_a_member_key_never_names_a_referee_and_learns_nothing_about_refs(
    api: Api, engine: Engine, clock: FrozenClock
) -> None:
    """Whether the named ref is new, already transacting, already referred or does not exist, a
    member key gets the same answer, and no referral is made."""
    _members(api, A="gold", NEW="green", ACTIVE="green", REFERRED="green", X="gold")
    api.post("/v1/transactions", tx_body("T1", "ACTIVE", "20.00"), role="integrator")
    assert (
        api.post("/v1/referrals", {"referrer_ref": "X", "referee_ref": "REFERRED"}, role="agent").status_code
        == 201
    )
    a = _key(engine, clock, "A")
    answers = set()
    for referee in ("NEW", "ACTIVE", "REFERRED", "NOBODY", "A"):
        for referrer in ("A", "X", "NOBODY"):
            response = api.client.post(
                "/v1/referrals", json={"referrer_ref": referrer, "referee_ref": referee}, headers=a
            )
            answers.add((response.status_code, response.text))
        for path in (f"/v1/members/{referee}/referral-code", f"/v1/members/{referee}/balance"):
            if referee != "A":
                response = api.client.get(path, headers=a)
                answers.add((response.status_code, response.json()["type"]))
    assert {status for status, _ in answers} == {403}
    assert len([a for a in answers if a[1].startswith("{")]) == 1  # one body for every referral tried
    assert _referrals(engine) == 1
    api.post("/v1/transactions", tx_body("T2", "NEW", "20.00"), role="integrator")
    assert _points(api, "A") == 0


@pytest.mark.parametrize("role", ["agent", "marketing", "integrator", "admin"])
def test_staff_and_integrator_keys_still_record_a_referral_directly(api: Api, role: str) -> None:
    _members(api, A="gold", B="green")
    response = api.post("/v1/referrals", {"referrer_ref": "A", "referee_ref": "B"}, role=role)
    assert response.status_code == 201, response.text
    assert response.json()["referrer_ref"] == "A" and response.json()["id"] == "A->B"
