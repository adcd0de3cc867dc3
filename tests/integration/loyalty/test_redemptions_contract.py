"""The REST contract of the catalogue, partners, e-codes and the four kinds of redemption."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import Engine

from prevenance.common.auth import create_key
from prevenance.common.clock import FrozenClock
from prevenance.db import unit_of_work
from prevenance.loyalty import ledger, service
from tests.conftest import Api, member_body, tx_body

PROBLEM = "application/problem+json"


# --- helpers -----------------------------------------------------------------------------------


def _member_with_points(api: Api, ref: str, points: int) -> None:
    """A gold member holding exactly ``points`` (one euro earns one point)."""
    assert api.put(f"/v1/members/{ref}", member_body()).status_code in (200, 201)
    if points:
        earned = api.post("/v1/transactions", tx_body(f"earn-{ref}", ref, f"{points}.00"), role="integrator")
        assert earned.status_code == 201, earned.text
        assert earned.json()["balance"] == points


def _points(api: Api, ref: str) -> int:
    return int(api.get(f"/v1/members/{ref}/balance").json()["points"])


def _movements(api: Api, ref: str) -> list[dict[str, Any]]:
    page = api.get(f"/v1/members/{ref}/movements", params={"limit": 500})
    assert page.status_code == 200, page.text
    return list(page.json()["items"])


def _stock(api: Api, sku: str) -> int:
    items = {i["sku"]: i for i in api.get("/v1/catalogue").json()}
    return int(items[sku]["stock"])


def _redeem(api: Api, ref: str, body: dict[str, Any], role: str = "agent") -> Any:
    return api.post(f"/v1/members/{ref}/redemptions", body, role=role)


def _assert_problem(response: Any, status: int, field: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    problem = response.json()
    assert {"type", "title", "status", "detail"} <= problem.keys()
    assert problem["status"] == status
    if field is not None:
        assert problem["field"] == field, problem
    return dict(problem)


def _audit_ok(api: Api) -> None:
    report = api.get("/v1/ledger/audit")
    assert report.status_code == 200, report.text
    assert report.json()["ok"] is True


def _put_partner(api: Api, code: str, kind: str, per_block: int, units: int) -> Any:
    body = {"kind": kind, "name": code.title(), "points_per_block": per_block, "units_per_block": units}
    return api.put(f"/v1/partners/{code}", body, role="marketing")


# --- catalogue ---------------------------------------------------------------------------------


def test_put_catalogue_item_creates_then_replaces_and_lists_it(api: Api) -> None:
    created = api.put("/v1/catalogue/MUG", {"name": "Mug", "points": 1500, "stock": 10}, role="marketing")
    assert created.status_code == 201, created.text
    assert created.json() == {"sku": "MUG", "name": "Mug", "points": 1500, "stock": 10}
    assert api.get("/v1/catalogue/MUG", role="agent").json() == created.json()
    replaced = api.put("/v1/catalogue/MUG", {"name": "Big mug", "points": 2000, "stock": 4}, role="marketing")
    assert replaced.status_code == 200, replaced.text
    assert replaced.json() == {"sku": "MUG", "name": "Big mug", "points": 2000, "stock": 4}
    assert api.get("/v1/catalogue/MUG", role="integrator").json() == replaced.json()
    _assert_problem(api.get("/v1/catalogue/NOPE"), 404, "sku")
    api.put("/v1/catalogue/BAG", {"name": "Bag", "points": 9000, "stock": 1}, role="marketing")
    listed = api.get("/v1/catalogue", role="agent")
    assert listed.status_code == 200
    assert listed.json() == [
        {"sku": "BAG", "name": "Bag", "points": 9000, "stock": 1},
        {"sku": "MUG", "name": "Big mug", "points": 2000, "stock": 4},
    ]


def test_catalogue_item_validation_and_roles(api: Api) -> None:
    _assert_problem(api.put("/v1/catalogue/X", {"name": "X", "points": 0, "stock": 1}), 422, "points")
    _assert_problem(api.put("/v1/catalogue/X", {"name": "X", "points": 10, "stock": -1}), 422, "stock")
    _assert_problem(api.put("/v1/catalogue/X", {"name": "X", "points": 10}), 422, "stock")
    _assert_problem(api.put("/v1/catalogue/X", {"name": "X", "points": 1, "stock": 1}, role="agent"), 403)
    assert api.get("/v1/catalogue").json() == []


def test_catalogue_redemption_debits_points_times_quantity_and_decrements_stock(api: Api) -> None:
    _member_with_points(api, "M1", 10_000)
    api.put("/v1/catalogue/MUG", {"name": "Mug", "points": 1500, "stock": 10}, role="marketing")
    response = _redeem(api, "M1", {"id": "R1", "kind": "catalogue", "sku": "MUG", "quantity": 3})
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["id"] == "R1" and body["kind"] == "catalogue"
    assert body["sku"] == "MUG" and body["quantity"] == 3
    assert body["points_debited"] == 4500
    assert body["balance"] == 5500
    assert _points(api, "M1") == 5500
    assert _stock(api, "MUG") == 7
    latest = _movements(api, "M1")[0]
    assert (latest["reason"], latest["reference"], latest["amount"]) == ("redemption_catalogue", "R1", -4500)
    assert api.get("/v1/redemptions/R1").json()["status"] == "completed"
    _audit_ok(api)


def test_catalogue_quantity_defaults_to_one(api: Api) -> None:
    _member_with_points(api, "M1", 2_000)
    api.put("/v1/catalogue/MUG", {"name": "Mug", "points": 1500, "stock": 10}, role="marketing")
    response = _redeem(api, "M1", {"id": "R1", "kind": "catalogue", "sku": "MUG"})
    assert response.status_code == 201, response.text
    assert response.json()["points_debited"] == 1500 and response.json()["quantity"] == 1
    assert _stock(api, "MUG") == 9


def test_out_of_stock_is_409_and_writes_nothing(api: Api) -> None:
    _member_with_points(api, "M1", 10_000)
    api.put("/v1/catalogue/BAG", {"name": "Bag", "points": 1000, "stock": 2}, role="marketing")
    before = _movements(api, "M1")
    response = _redeem(api, "M1", {"id": "R1", "kind": "catalogue", "sku": "BAG", "quantity": 3})
    problem = _assert_problem(response, 409)
    assert problem["type"].endswith("/out-of-stock")
    assert _points(api, "M1") == 10_000
    assert _stock(api, "BAG") == 2
    assert _movements(api, "M1") == before
    assert api.get("/v1/redemptions/R1").status_code == 404
    # The refused id was not consumed: once stock is back, the same request goes through.
    api.put("/v1/catalogue/BAG", {"name": "Bag", "points": 1000, "stock": 5}, role="marketing")
    retried = _redeem(api, "M1", {"id": "R1", "kind": "catalogue", "sku": "BAG", "quantity": 3})
    assert retried.status_code == 201, retried.text
    assert _stock(api, "BAG") == 2 and _points(api, "M1") == 7_000
    _audit_ok(api)


def test_last_item_in_stock_goes_once(api: Api) -> None:
    _member_with_points(api, "M1", 10_000)
    api.put("/v1/catalogue/BAG", {"name": "Bag", "points": 1000, "stock": 1}, role="marketing")
    assert _redeem(api, "M1", {"id": "R1", "kind": "catalogue", "sku": "BAG"}).status_code == 201
    _assert_problem(_redeem(api, "M1", {"id": "R2", "kind": "catalogue", "sku": "BAG"}), 409)
    assert _stock(api, "BAG") == 0 and _points(api, "M1") == 9_000


def test_not_enough_points_is_409_and_writes_nothing(api: Api) -> None:
    _member_with_points(api, "M1", 1_000)
    api.put("/v1/catalogue/BAG", {"name": "Bag", "points": 600, "stock": 5}, role="marketing")
    before = _movements(api, "M1")
    response = _redeem(api, "M1", {"id": "R1", "kind": "catalogue", "sku": "BAG", "quantity": 2})
    problem = _assert_problem(response, 409)
    assert problem["type"].endswith("/insufficient-points")
    assert (problem["needed"], problem["available"]) == (1200, 1000)
    assert _points(api, "M1") == 1_000
    assert _stock(api, "BAG") == 5
    assert _movements(api, "M1") == before
    assert api.get("/v1/redemptions/R1").status_code == 404
    _audit_ok(api)


def test_unknown_sku_is_422(api: Api) -> None:
    _member_with_points(api, "M1", 1_000)
    response = _redeem(api, "M1", {"id": "R1", "kind": "catalogue", "sku": "NOPE"})
    problem = _assert_problem(response, 422, "sku")
    assert problem["type"].endswith("/unknown-sku")
    assert _points(api, "M1") == 1_000


def test_bad_redemption_bodies_are_422(api: Api) -> None:
    _member_with_points(api, "M1", 1_000)
    api.put("/v1/catalogue/MUG", {"name": "Mug", "points": 10, "stock": 10}, role="marketing")
    cases: list[tuple[Any, str]] = [
        ({"id": "R1", "kind": "gift"}, "kind"),
        ({"id": "R1", "sku": "MUG"}, "kind"),
        ({"id": "R1", "kind": "catalogue", "sku": "MUG", "quantity": 0}, "quantity"),
        ({"id": "R1", "kind": "catalogue", "sku": "MUG", "quantity": "two"}, "quantity"),
        ({"kind": "catalogue", "sku": "MUG"}, "id"),
        ({"id": "R1", "kind": "transfer", "partner": "x"}, "points"),
        ({"id": "R1", "kind": "travel", "booking_ref": "B", "amount": 150, "points": 10}, "amount"),
        (["R1"], "body"),
    ]
    for body, field in cases:
        _assert_problem(_redeem(api, "M1", body), 422, field)
    assert _points(api, "M1") == 1_000 and _stock(api, "MUG") == 10


def test_absurdly_large_numbers_are_422_naming_the_field_not_a_database_overflow(api: Api) -> None:
    _member_with_points(api, "M1", 1_000)
    huge = 10**30
    _assert_problem(api.put("/v1/catalogue/X", {"name": "X", "points": huge, "stock": 1}), 422, "points")
    _assert_problem(api.put("/v1/catalogue/X", {"name": "X", "points": 1, "stock": 10**12}), 422, "stock")
    _assert_problem(_put_partner(api, "sky", "airline", huge, 1), 422, "points_per_block")
    _assert_problem(_put_partner(api, "sky", "airline", 1, 10**10), 422, "units_per_block")
    _put_partner(api, "sky", "airline", 1, 1)
    _assert_problem(api.post("/v1/partners/sky/ecodes", {"points": huge, "codes": ["A"]}), 422, "points")
    transfer = {"id": "R1", "kind": "transfer", "partner": "sky", "points": huge}
    _assert_problem(_redeem(api, "M1", transfer), 422, "points")
    _assert_problem(_redeem(api, "M1", _travel("R2", "10.00", huge)), 422, "points")
    _assert_problem(_redeem(api, "M1", _travel("R3", "99999999999999999999.00", 500)), 422, "amount")
    # The largest accepted price times the largest quantity is refused for want of points, not overflow.
    api.put("/v1/catalogue/Y", {"name": "Y", "points": 10**12, "stock": 1000}, role="marketing")
    big = _redeem(api, "M1", {"id": "R4", "kind": "catalogue", "sku": "Y", "quantity": 1000})
    assert _assert_problem(big, 409)["needed"] == 10**15
    assert _points(api, "M1") == 1_000 and api.get("/v1/partners").json()[0]["points_per_block"] == 1


def test_redemption_for_an_unknown_member_is_404(api: Api) -> None:
    api.put("/v1/catalogue/MUG", {"name": "Mug", "points": 10, "stock": 10}, role="marketing")
    response = _redeem(api, "NOBODY", {"id": "R1", "kind": "catalogue", "sku": "MUG"})
    _assert_problem(response, 404)
    assert _stock(api, "MUG") == 10


# --- partners and e-codes ----------------------------------------------------------------------


def test_put_partner_creates_then_replaces_and_lists_partners(api: Api) -> None:
    created = _put_partner(api, "skyline", "airline", 1000, 1000)
    assert created.status_code == 201, created.text
    assert created.json() == {
        "code": "skyline",
        "kind": "airline",
        "name": "Skyline",
        "points_per_block": 1000,
        "units_per_block": 1000,
    }
    replaced = api.put(
        "/v1/partners/skyline",
        {"kind": "airline", "name": "Skyline Air", "points_per_block": 500, "units_per_block": 400},
        role="marketing",
    )
    assert replaced.status_code == 200, replaced.text
    _put_partner(api, "palace", "hotel", 2000, 1000)
    listed = api.get("/v1/partners", role="agent")
    assert listed.status_code == 200
    assert [(p["code"], p["name"], p["points_per_block"]) for p in listed.json()] == [
        ("palace", "Palace", 2000),
        ("skyline", "Skyline Air", 500),
    ]


def test_partner_validation(api: Api) -> None:
    _assert_problem(_put_partner(api, "x", "bank", 1, 1), 422, "kind")
    _assert_problem(_put_partner(api, "x", "hotel", 0, 1), 422, "points_per_block")
    _assert_problem(_put_partner(api, "x", "hotel", 1, 0), 422, "units_per_block")
    assert api.get("/v1/partners").json() == []


def test_ecode_pool_loads_and_skips_duplicates(api: Api) -> None:
    _put_partner(api, "fnac", "merchant", 1, 1)
    first = api.post("/v1/partners/fnac/ecodes", {"points": 500, "codes": ["A", "B", "B"]}, role="marketing")
    assert first.status_code == 201, first.text
    assert first.json() == {"partner": "fnac", "points": 500, "loaded": 2, "skipped": 1, "available": 2}
    again = api.post("/v1/partners/fnac/ecodes", {"points": 500, "codes": ["B", "C"]}, role="marketing")
    assert again.json() == {"partner": "fnac", "points": 500, "loaded": 1, "skipped": 1, "available": 3}
    unknown = api.post("/v1/partners/nope/ecodes", {"points": 500, "codes": ["A"]}, role="marketing")
    _assert_problem(unknown, 404)
    _assert_problem(api.post("/v1/partners/fnac/ecodes", {"points": 500, "codes": []}), 422, "codes")


def test_each_ecode_is_handed_out_once_and_an_empty_pool_is_409(api: Api) -> None:
    _member_with_points(api, "M1", 10_000)
    _put_partner(api, "fnac", "merchant", 1, 1)
    api.post("/v1/partners/fnac/ecodes", {"points": 500, "codes": ["A", "B"]}, role="marketing")
    codes = []
    for rid in ("R1", "R2"):
        response = _redeem(api, "M1", {"id": rid, "kind": "ecode", "partner": "fnac"})
        assert response.status_code == 201, response.text
        assert response.json()["kind"] == "ecode" and response.json()["points_debited"] == 500
        codes.append(response.json()["code"])
    assert sorted(codes) == ["A", "B"]
    assert _points(api, "M1") == 9_000
    before = _movements(api, "M1")
    problem = _assert_problem(_redeem(api, "M1", {"id": "R3", "kind": "ecode", "partner": "fnac"}), 409)
    assert problem["type"].endswith("/no-codes-left")
    assert _points(api, "M1") == 9_000 and _movements(api, "M1") == before
    # A replay hands back the same code, never a second one.
    replay = _redeem(api, "M1", {"id": "R1", "kind": "ecode", "partner": "fnac"})
    assert replay.json()["code"] == codes[0]
    assert [(m["reason"], m["reference"]) for m in _movements(api, "M1")[:2]] == [
        ("redemption_ecode", "R2"),
        ("redemption_ecode", "R1"),
    ]
    _audit_ok(api)


def test_ecode_without_enough_points_keeps_the_code_in_the_pool(api: Api) -> None:
    _member_with_points(api, "M1", 100)
    _put_partner(api, "fnac", "merchant", 1, 1)
    api.post("/v1/partners/fnac/ecodes", {"points": 500, "codes": ["A"]}, role="marketing")
    _assert_problem(_redeem(api, "M1", {"id": "R1", "kind": "ecode", "partner": "fnac"}), 409)
    _member_with_points(api, "M2", 1_000)
    response = _redeem(api, "M2", {"id": "R2", "kind": "ecode", "partner": "fnac"})
    assert response.status_code == 201 and response.json()["code"] == "A"


def test_ecode_for_an_unknown_partner_is_422(api: Api) -> None:
    _member_with_points(api, "M1", 1_000)
    _assert_problem(_redeem(api, "M1", {"id": "R1", "kind": "ecode", "partner": "nope"}), 422, "partner")


# --- transfers ---------------------------------------------------------------------------------


def test_transfer_to_airline_and_hotel_in_whole_blocks(api: Api) -> None:
    _member_with_points(api, "M1", 5_000)
    _put_partner(api, "skyline", "airline", 1000, 1000)
    _put_partner(api, "palace", "hotel", 2000, 1000)
    miles = _redeem(api, "M1", {"id": "R1", "kind": "transfer", "partner": "skyline", "points": 1000})
    assert miles.status_code == 201, miles.text
    assert miles.json()["partner_units"] == 1000
    assert miles.json()["points_debited"] == 1000 and miles.json()["balance"] == 4000
    hotel = _redeem(api, "M1", {"id": "R2", "kind": "transfer", "partner": "palace", "points": 2000})
    assert hotel.status_code == 201, hotel.text
    assert hotel.json()["partner_units"] == 1000
    assert hotel.json()["balance"] == 2000
    assert [(m["reason"], m["reference"], m["amount"]) for m in _movements(api, "M1")[:2]] == [
        ("redemption_transfer", "R2", -2000),
        ("redemption_transfer", "R1", -1000),
    ]
    _audit_ok(api)


def test_transfer_that_is_not_a_whole_number_of_blocks_is_422(api: Api) -> None:
    _member_with_points(api, "M1", 5_000)
    _put_partner(api, "palace", "hotel", 2000, 1000)
    response = _redeem(api, "M1", {"id": "R1", "kind": "transfer", "partner": "palace", "points": 3000})
    _assert_problem(response, 422, "points")
    assert _points(api, "M1") == 5_000


def test_transfer_to_a_merchant_or_unknown_partner_is_422(api: Api) -> None:
    _member_with_points(api, "M1", 5_000)
    _put_partner(api, "fnac", "merchant", 1, 1)
    _assert_problem(
        _redeem(api, "M1", {"id": "R1", "kind": "transfer", "partner": "fnac", "points": 10}), 422
    )
    _assert_problem(
        _redeem(api, "M1", {"id": "R2", "kind": "transfer", "partner": "nope", "points": 10}), 422, "partner"
    )
    assert _points(api, "M1") == 5_000


def test_transfer_without_enough_points_is_409(api: Api) -> None:
    _member_with_points(api, "M1", 1_500)
    _put_partner(api, "skyline", "airline", 1000, 1000)
    response = _redeem(api, "M1", {"id": "R1", "kind": "transfer", "partner": "skyline", "points": 2000})
    _assert_problem(response, 409, "points")
    assert _points(api, "M1") == 1_500


# --- travel: hold, confirm, void, expiry -------------------------------------------------------


def _travel(rid: str, amount: str = "150.00", points: int = 10_000, booking: str = "BK1") -> dict[str, Any]:
    return {"id": rid, "kind": "travel", "booking_ref": booking, "amount": amount, "points": points}


def test_travel_part_paid_with_points_is_held(api: Api) -> None:
    _member_with_points(api, "M1", 12_000)
    response = _redeem(api, "M1", _travel("TR1", "150.00", 10_000))
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["status"] == "held"
    assert body["points_used"] == 10_000 and body["cash_due"] == "50.00"
    assert body["booking_ref"] == "BK1"
    assert body["points_debited"] == 10_000 and body["balance"] == 2_000
    assert _points(api, "M1") == 2_000
    latest = _movements(api, "M1")[0]
    assert (latest["reason"], latest["reference"], latest["amount"]) == ("travel_hold", "TR1", -10_000)
    assert api.get("/v1/redemptions/TR1").json()["status"] == "held"
    _audit_ok(api)


def test_travel_uses_only_the_points_needed(api: Api) -> None:
    _member_with_points(api, "M1", 30_000)
    response = _redeem(api, "M1", _travel("TR1", "150.00", 25_000))
    assert response.status_code == 201, response.text
    assert response.json()["points_used"] == 15_000 and response.json()["cash_due"] == "0.00"
    assert _points(api, "M1") == 15_000


def test_travel_bad_amount_is_422(api: Api) -> None:
    _member_with_points(api, "M1", 30_000)
    for amount in ("-5.00", "0", "1.234", "abc"):
        _assert_problem(_redeem(api, "M1", _travel("TR1", amount)), 422, "amount")
    assert _points(api, "M1") == 30_000


def test_held_points_cannot_be_spent_twice(api: Api) -> None:
    _member_with_points(api, "M1", 10_000)
    assert _redeem(api, "M1", _travel("TR1", "100.00", 8_000)).status_code == 201
    second = _redeem(api, "M1", _travel("TR2", "100.00", 8_000, booking="BK2"))
    _assert_problem(second, 409, "points")
    api.put("/v1/catalogue/BAG", {"name": "Bag", "points": 5000, "stock": 3}, role="marketing")
    _assert_problem(_redeem(api, "M1", {"id": "R3", "kind": "catalogue", "sku": "BAG"}), 409)
    assert _points(api, "M1") == 2_000 and _stock(api, "BAG") == 3


def test_confirm_posts_the_hold_and_repeating_it_answers_the_same(api: Api) -> None:
    _member_with_points(api, "M1", 12_000)
    _redeem(api, "M1", _travel("TR1", "150.00", 10_000))
    confirmed = api.post("/v1/redemptions/TR1/confirm", role="concierge")
    assert confirmed.status_code == 200, confirmed.text
    assert confirmed.json()["status"] == "confirmed"
    assert confirmed.json()["points_used"] == 10_000 and confirmed.json()["balance"] == 2_000
    again = api.post("/v1/redemptions/TR1/confirm", role="concierge")
    assert (again.status_code, again.json()) == (200, confirmed.json())
    assert _points(api, "M1") == 2_000
    assert api.get("/v1/redemptions/TR1").json()["status"] == "confirmed"
    # Once confirmed, the points are spent for good: a void is refused.
    _assert_problem(api.post("/v1/redemptions/TR1/void", role="concierge"), 409)
    assert _points(api, "M1") == 2_000
    _audit_ok(api)


def test_void_releases_the_hold_and_confirm_after_void_is_409(api: Api) -> None:
    _member_with_points(api, "M1", 12_000)
    _redeem(api, "M1", _travel("TR1", "150.00", 10_000))
    voided = api.post("/v1/redemptions/TR1/void", role="concierge")
    assert voided.status_code == 200, voided.text
    assert voided.json()["status"] == "voided"
    assert voided.json()["balance"] == 12_000
    assert _points(api, "M1") == 12_000
    assert api.post("/v1/redemptions/TR1/void", role="concierge").json()["status"] == "voided"
    refused = _assert_problem(api.post("/v1/redemptions/TR1/confirm", role="concierge"), 409)
    assert refused["type"].endswith("/hold-not-pending")
    assert _points(api, "M1") == 12_000
    assert [(m["reason"], m["reference"], m["amount"]) for m in _movements(api, "M1")[:2]] == [
        ("travel_void", "TR1", 10_000),
        ("travel_hold", "TR1", -10_000),
    ]
    _audit_ok(api)


def test_confirm_or_void_of_an_unknown_or_non_travel_redemption_is_404(api: Api) -> None:
    _member_with_points(api, "M1", 5_000)
    api.put("/v1/catalogue/MUG", {"name": "Mug", "points": 10, "stock": 10}, role="marketing")
    _redeem(api, "M1", {"id": "R1", "kind": "catalogue", "sku": "MUG"})
    _assert_problem(api.post("/v1/redemptions/NOPE/confirm", role="concierge"), 404)
    _assert_problem(api.post("/v1/redemptions/R1/void", role="concierge"), 404)
    _assert_problem(api.get("/v1/redemptions/NOPE"), 404)
    assert _points(api, "M1") == 4_990


def test_an_expired_hold_refuses_confirm_and_gives_the_points_back(api: Api, clock: FrozenClock) -> None:
    _member_with_points(api, "M1", 12_000)
    _redeem(api, "M1", _travel("TR1", "150.00", 10_000))
    clock.advance(timedelta(minutes=31))
    refused = _assert_problem(api.post("/v1/redemptions/TR1/confirm", role="concierge"), 409)
    assert refused["redemption_status"] == "expired"
    assert _points(api, "M1") == 12_000
    assert api.get("/v1/redemptions/TR1").json()["status"] == "expired"
    latest = _movements(api, "M1")[0]
    assert (latest["reason"], latest["reference"], latest["amount"]) == ("travel_hold_expired", "TR1", 10_000)
    _audit_ok(api)


def test_a_hold_still_within_its_time_can_be_confirmed(api: Api, clock: FrozenClock) -> None:
    _member_with_points(api, "M1", 12_000)
    _redeem(api, "M1", _travel("TR1", "150.00", 10_000))
    clock.advance(timedelta(minutes=29))
    assert api.post("/v1/redemptions/TR1/confirm", role="concierge").json()["status"] == "confirmed"
    clock.advance(timedelta(minutes=10))
    assert api.post("/v1/redemptions/TR1/confirm", role="concierge").json()["status"] == "confirmed"
    assert _points(api, "M1") == 2_000


def test_an_expired_hold_frees_its_points_for_the_next_redemption(api: Api, clock: FrozenClock) -> None:
    _member_with_points(api, "M1", 10_000)
    _redeem(api, "M1", _travel("TR1", "100.00", 10_000))
    _assert_problem(_redeem(api, "M1", _travel("TR2", "100.00", 10_000, booking="BK2")), 409)
    clock.advance(timedelta(minutes=31))
    second = _redeem(api, "M1", _travel("TR2", "100.00", 10_000, booking="BK2"))
    assert second.status_code == 201, second.text
    assert second.json()["balance"] == 0
    assert api.get("/v1/redemptions/TR1").json()["status"] == "expired"
    assert [(m["reason"], m["reference"]) for m in _movements(api, "M1")[:2]] == [
        ("travel_hold", "TR2"),
        ("travel_hold_expired", "TR1"),
    ]
    _audit_ok(api)


def test_release_expired_holds_releases_only_expired_ones(
    api: Api, engine: Engine, clock: FrozenClock
) -> None:
    _member_with_points(api, "M1", 12_000)
    _redeem(api, "M1", _travel("TR1", "50.00", 5_000))
    clock.advance(timedelta(minutes=20))
    _redeem(api, "M1", _travel("TR2", "50.00", 5_000, booking="BK2"))
    assert _points(api, "M1") == 2_000
    clock.advance(timedelta(minutes=11))
    with unit_of_work(engine) as session:
        assert service.release_expired_holds(session, now=clock.now()) == 1
    with unit_of_work(engine) as session:
        assert service.release_expired_holds(session, now=clock.now()) == 0
    assert api.get("/v1/redemptions/TR1").json()["status"] == "expired"
    assert api.get("/v1/redemptions/TR2").json()["status"] == "held"
    assert _points(api, "M1") == 7_000
    assert api.post("/v1/redemptions/TR2/confirm", role="concierge").json()["status"] == "confirmed"
    _audit_ok(api)


def test_holds_can_only_be_resolved_by_desk_roles(api: Api) -> None:
    _member_with_points(api, "M1", 12_000)
    _redeem(api, "M1", _travel("TR1"))
    _assert_problem(api.post("/v1/redemptions/TR1/confirm", role="marketing"), 403)
    assert api.get("/v1/redemptions/TR1").json()["status"] == "held"


# --- idempotency, member keys, reasons ---------------------------------------------------------


def test_same_redemption_id_and_body_replays_other_body_conflicts(api: Api) -> None:
    _member_with_points(api, "M1", 10_000)
    api.put("/v1/catalogue/MUG", {"name": "Mug", "points": 1000, "stock": 10}, role="marketing")
    body = {"id": "R1", "kind": "catalogue", "sku": "MUG", "quantity": 2}
    first = _redeem(api, "M1", body)
    again = _redeem(api, "M1", body)
    assert (again.status_code, again.json()) == (first.status_code, first.json())
    assert _points(api, "M1") == 8_000 and _stock(api, "MUG") == 8
    other = _redeem(api, "M1", {**body, "quantity": 3})
    problem = _assert_problem(other, 409, "id")
    assert problem["type"].endswith("/idempotency-key-reused")
    _member_with_points(api, "M2", 10_000)
    _assert_problem(_redeem(api, "M2", body), 409, "id")
    assert _points(api, "M1") == 8_000 and _points(api, "M2") == 10_000 and _stock(api, "MUG") == 8


def test_travel_replay_answers_the_original_even_after_confirm(api: Api) -> None:
    _member_with_points(api, "M1", 12_000)
    first = _redeem(api, "M1", _travel("TR1"))
    api.post("/v1/redemptions/TR1/confirm", role="concierge")
    again = _redeem(api, "M1", _travel("TR1"))
    assert (again.status_code, again.json()) == (201, first.json())
    assert _points(api, "M1") == 2_000
    _assert_problem(_redeem(api, "M1", _travel("TR1", points=5_000)), 409, "id")


def _member_key(engine: Engine, clock: FrozenClock, ref: str) -> dict[str, str]:
    with unit_of_work(engine) as session:
        _, secret = create_key(session, role="member", member_ref=ref, name=f"app-{ref}", now=clock.now())
    return {"Authorization": f"Bearer {secret}"}


def test_a_member_key_redeems_for_itself_only(api: Api, engine: Engine, clock: FrozenClock) -> None:
    _member_with_points(api, "M1", 5_000)
    _member_with_points(api, "M2", 5_000)
    api.put("/v1/catalogue/MUG", {"name": "Mug", "points": 1000, "stock": 10}, role="marketing")
    headers = _member_key(engine, clock, "M1")
    body = {"id": "R1", "kind": "catalogue", "sku": "MUG"}
    own = api.client.post("/v1/members/M1/redemptions", json=body, headers=headers)
    assert own.status_code == 201, own.text
    other = api.client.post("/v1/members/M2/redemptions", json={**body, "id": "R2"}, headers=headers)
    _assert_problem(other, 403)
    assert _points(api, "M1") == 4_000 and _points(api, "M2") == 5_000
    assert api.client.get("/v1/members/M1/balance", headers=headers).json()["points"] == 4_000
    _assert_problem(api.client.get("/v1/members/M2/balance", headers=headers), 403)
    assert api.client.get("/v1/redemptions/R1", headers=headers).status_code == 200


def test_a_member_key_cannot_see_another_members_redemption(
    api: Api, engine: Engine, clock: FrozenClock
) -> None:
    _member_with_points(api, "M1", 5_000)
    _member_with_points(api, "M2", 5_000)
    api.put("/v1/catalogue/MUG", {"name": "Mug", "points": 1000, "stock": 10}, role="marketing")
    _redeem(api, "M2", {"id": "R2", "kind": "catalogue", "sku": "MUG"})
    headers = _member_key(engine, clock, "M1")
    _assert_problem(api.client.get("/v1/redemptions/R2", headers=headers), 403)


def test_every_movement_says_why_and_for_what(api: Api, clock: FrozenClock) -> None:
    _member_with_points(api, "M1", 30_000)
    api.put("/v1/catalogue/MUG", {"name": "Mug", "points": 1000, "stock": 10}, role="marketing")
    _put_partner(api, "skyline", "airline", 1000, 1000)
    _put_partner(api, "fnac", "merchant", 1, 1)
    api.post("/v1/partners/fnac/ecodes", {"points": 500, "codes": ["A"]}, role="marketing")
    _redeem(api, "M1", {"id": "C1", "kind": "catalogue", "sku": "MUG"})
    _redeem(api, "M1", {"id": "E1", "kind": "ecode", "partner": "fnac"})
    _redeem(api, "M1", {"id": "X1", "kind": "transfer", "partner": "skyline", "points": 1000})
    _redeem(api, "M1", _travel("V1", "10.00", 1_000))
    api.post("/v1/redemptions/V1/confirm", role="concierge")
    _redeem(api, "M1", _travel("V2", "10.00", 1_000, booking="BK2"))
    api.post("/v1/redemptions/V2/void", role="concierge")
    _redeem(api, "M1", _travel("V3", "10.00", 1_000, booking="BK3"))
    clock.advance(timedelta(hours=1))
    api.post("/v1/transactions/earn-M1/refunds", {"id": "RF1", "amount": "100.00"}, role="integrator")
    movements = _movements(api, "M1")
    assert all(m["reason"] and m["reference"] for m in movements)
    assert [(m["reason"], m["reference"]) for m in reversed(movements)] == [
        ("earn", "earn-M1"),
        ("redemption_catalogue", "C1"),
        ("redemption_ecode", "E1"),
        ("redemption_transfer", "X1"),
        ("travel_hold", "V1"),
        ("travel_hold", "V2"),
        ("travel_void", "V2"),
        ("travel_hold", "V3"),
        ("refund", "earn-M1"),
    ]
    # The expired hold V3 is released by the maintenance job (or by the member's next redemption).
    assert api.get("/v1/redemptions/V3").json()["status"] == "held"
    assert _points(api, "M1") == 30_000 - 1_000 - 500 - 1_000 - 1_000 - 1_000 - 100
    _audit_ok(api)


def test_system_accounts_receive_what_members_spend(api: Api, engine: Engine) -> None:
    _member_with_points(api, "M1", 10_000)
    api.put("/v1/catalogue/MUG", {"name": "Mug", "points": 1000, "stock": 10}, role="marketing")
    _redeem(api, "M1", {"id": "C1", "kind": "catalogue", "sku": "MUG", "quantity": 2})
    _redeem(api, "M1", _travel("V1", "10.00", 1_000))
    api.post("/v1/redemptions/V1/confirm", role="concierge")
    with unit_of_work(engine) as session:
        report = ledger.audit(session)
    assert report["ok"] is True
    assert report["issued"] == {"points": 10_000}
