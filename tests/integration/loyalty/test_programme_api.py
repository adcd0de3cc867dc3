"""The programme is data an admin changes through the API; what was earned keeps its own rules."""

from __future__ import annotations

import copy
from datetime import timedelta
from typing import Any

import pytest

from prevenance.common.clock import FrozenClock
from prevenance.loyalty.ledger_bounds import LEDGER_BALANCE_LIMIT
from prevenance.loyalty.programme import default_document
from tests.conftest import Api, member_body, tx_body
from tests.integration.offers.conftest import offer_def

PROBLEM = "application/problem+json"


def _document(api: Api) -> dict[str, Any]:
    response = api.get("/v1/programme")
    assert response.status_code == 200, response.text
    return copy.deepcopy(response.json()["document"])


def _assert_422(response: Any, field: str) -> dict[str, Any]:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    problem = response.json()
    assert {"type", "title", "status", "detail"} <= problem.keys()
    assert problem["field"] == field, problem
    return dict(problem)


def test_get_programme_shows_the_shipped_defaults(api: Api) -> None:
    response = api.get("/v1/programme", role="agent")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["version"] >= 1
    assert body["document"] == default_document()
    products = body["document"]["products"]
    assert set(products) == {"green", "gold", "platinum", "centurion", "cobrand-airline"}
    assert products["cobrand-airline"]["unit"] == "miles"
    assert body["document"]["travel"] == {"euro_per_point": "0.01", "hold_minutes": 30}


def test_get_programme_needs_a_key(api: Api) -> None:
    assert api.client.get("/v1/programme").status_code == 401


def test_put_programme_installs_a_new_version(api: Api) -> None:
    before = api.get("/v1/programme").json()["version"]
    document = _document(api)
    document["products"]["gold"]["earn_per_euro"] = 3
    response = api.put("/v1/programme", document)
    assert response.status_code == 200, response.text
    assert response.json()["version"] > before
    assert response.json()["document"] == document
    assert api.get("/v1/programme").json() == response.json()
    unchanged = api.put("/v1/programme", document)
    assert unchanged.json()["version"] == response.json()["version"]


def test_put_programme_is_for_admins_only(api: Api) -> None:
    document = _document(api)
    document["minimum_earn"] = 0
    for role in ("marketing", "supervisor", "agent", "integrator"):
        refused = api.put("/v1/programme", document, role=role)
        assert refused.status_code == 403, role
        assert refused.headers["content-type"].startswith(PROBLEM)
    assert _document(api)["minimum_earn"] == 1


def _mutations() -> list[tuple[str, Any, str]]:
    """(path to change, new value, field the problem must name)."""
    return [
        ("products", {}, "products"),
        ("products.gold.unit", "stars", "products.gold.unit"),
        ("products.gold.earn_per_euro", 0, "products.gold.earn_per_euro"),
        ("products.gold.earn_per_euro", "2", "products.gold.earn_per_euro"),
        ("products.platinum.category_multipliers", ["travel"], "products.platinum.category_multipliers"),
        (
            "products.platinum.category_multipliers.travel",
            -2,
            "products.platinum.category_multipliers.travel",
        ),
        ("products.gold.referral_bonus", -1, "products.gold.referral_bonus"),
        ("products.gold.premium", "false", "products.gold.premium"),
        ("products.cobrand-airline.miles_partner", None, "products.cobrand-airline.miles_partner"),
        ("fx_rates.GBP", "abc", "fx_rates.GBP"),
        ("fx_rates.GBP", "0", "fx_rates.GBP"),
        ("fx_rates.EUR", "2", "fx_rates.EUR"),
        ("fx_rates", "GBP", "fx_rates"),
        ("travel.euro_per_point", "-0.01", "travel.euro_per_point"),
        ("travel.hold_minutes", 0, "travel.hold_minutes"),
        ("travel", 5, "travel"),
        ("minimum_earn", -1, "minimum_earn"),
    ]


def _set(document: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = path.split(".")
    node = document
    for part in parents:
        node = node[part]
    node[last] = value


@pytest.mark.parametrize(("path", "value", "field"), _mutations())
def test_an_invalid_programme_is_422_naming_the_field(api: Api, path: str, value: Any, field: str) -> None:
    before = api.get("/v1/programme").json()
    document = _document(api)
    _set(document, path, value)
    problem = _assert_422(api.put("/v1/programme", document), field)
    assert problem["type"].endswith("/invalid-programme")
    assert api.get("/v1/programme").json() == before


def test_a_programme_that_is_not_an_object_is_422(api: Api) -> None:
    _assert_422(api.put("/v1/programme", ["products"]), "body")


def test_an_fx_rate_applies_to_later_transactions_only(api: Api) -> None:
    api.put("/v1/members/M1", member_body())
    first = api.post("/v1/transactions", tx_body("T1", "M1", "100.00", currency="GBP"), role="integrator")
    assert first.json()["points_earned"] == 117  # the shipped 1.17
    response = api.put("/v1/programme/fx-rates/GBP", {"rate": "1.50"})
    assert response.status_code == 200, response.text
    assert response.json()["document"]["fx_rates"]["GBP"] == "1.50"
    assert _document(api)["fx_rates"]["GBP"] == "1.50"
    later = api.post("/v1/transactions", tx_body("T2", "M1", "100.00", currency="GBP"), role="integrator")
    assert later.json()["points_earned"] == 150
    # Refunding half of T1 keeps what 50 GBP earned at T1's own rate (58.50 € → 58), not at 1.50.
    refund = api.post("/v1/transactions/T1/refunds", {"id": "RF1", "amount": "50.00"}, role="integrator")
    assert refund.status_code == 201, refund.text
    assert refund.json()["points_reversed"] == 117 - 58
    rest = api.post("/v1/transactions/T1/refunds", {"id": "RF2", "amount": "50.00"}, role="integrator")
    assert rest.json()["points_reversed"] == 58
    assert api.get("/v1/members/M1/balance").json()["points"] == 150
    assert api.get("/v1/ledger/audit").json()["ok"] is True


def test_a_new_currency_can_be_added(api: Api) -> None:
    api.put("/v1/members/M1", member_body())
    refused = api.post("/v1/transactions", tx_body("T1", "M1", "100.00", currency="NZD"), role="integrator")
    _assert_422(refused, "currency")
    assert api.put("/v1/programme/fx-rates/NZD", {"rate": "0.55"}).status_code == 200
    accepted = api.post("/v1/transactions", tx_body("T1", "M1", "100.00", currency="NZD"), role="integrator")
    assert accepted.status_code == 201, accepted.text
    assert accepted.json()["points_earned"] == 55


def test_a_bad_fx_rate_is_422_and_changes_nothing(api: Api) -> None:
    before = api.get("/v1/programme").json()
    _assert_422(api.put("/v1/programme/fx-rates/GBP", {"rate": "abc"}), "rate")
    _assert_422(api.put("/v1/programme/fx-rates/GBP", {"rate": "0"}), "rate")
    _assert_422(api.put("/v1/programme/fx-rates/GBP", {"rate": "-1.2"}), "rate")
    _assert_422(api.put("/v1/programme/fx-rates/GBP", {"rate": 1.2}), "rate")
    _assert_422(api.put("/v1/programme/fx-rates/GBP", {}), "rate")
    _assert_422(api.put("/v1/programme/fx-rates/gbp", {"rate": "1.2"}), "currency")
    _assert_422(api.put("/v1/programme/fx-rates/EUR", {"rate": "2"}), "currency")
    assert api.get("/v1/programme").json() == before


def test_fx_rates_are_for_admins_only(api: Api) -> None:
    assert api.put("/v1/programme/fx-rates/GBP", {"rate": "2"}, role="marketing").status_code == 403
    assert _document(api)["fx_rates"]["GBP"] == "1.17"


def test_an_earn_rule_change_keeps_earlier_transactions_rules(api: Api) -> None:
    api.put("/v1/members/M1", member_body())
    api.post("/v1/transactions", tx_body("T1", "M1", "100.00"), role="integrator")
    document = _document(api)
    document["products"]["gold"]["earn_per_euro"] = 3
    assert api.put("/v1/programme", document).status_code == 200
    later = api.post("/v1/transactions", tx_body("T2", "M1", "100.00"), role="integrator")
    assert later.json()["points_earned"] == 300
    refund = api.post("/v1/transactions/T1/refunds", {"id": "RF1", "amount": "40.00"}, role="integrator")
    assert refund.json()["points_reversed"] == 40
    assert api.get("/v1/members/M1/balance").json()["points"] == 360


def test_travel_settings_come_from_the_programme(api: Api, clock: FrozenClock) -> None:
    document = _document(api)
    document["travel"] = {"euro_per_point": "0.02", "hold_minutes": 5}
    assert api.put("/v1/programme", document).status_code == 200
    api.put("/v1/members/M1", member_body())
    api.post("/v1/transactions", tx_body("T1", "M1", "10000.00"), role="integrator")
    body = {"id": "TR1", "kind": "travel", "booking_ref": "BK1", "amount": "150.00", "points": 5_000}
    held = api.post("/v1/members/M1/redemptions", body, role="agent")
    assert held.status_code == 201, held.text
    assert (held.json()["points_used"], held.json()["cash_due"]) == (5_000, "50.00")
    clock.advance(timedelta(minutes=6))
    assert api.post("/v1/redemptions/TR1/confirm", role="concierge").status_code == 409
    assert api.get("/v1/members/M1/balance").json()["points"] == 10_000


def _out_of_range() -> list[tuple[str, Any, str]]:
    """(path, value, field): values a programme accepted although every later earn, refund, travel
    redemption or ROI report under them answered 500 (a BIGINT, INTEGER or text column overflowed, a
    date left the calendar, a rate did not parse); an exponent is not a decimal an admin means to
    type."""
    return [
        ("fx_rates.USD", "1e400", "fx_rates.USD"),
        ("fx_rates.USD", "1E+2", "fx_rates.USD"),
        ("fx_rates.USD", "100.000000000001", "fx_rates.USD"),  # above 100
        ("fx_rates.USD", "0.0000000000001", "fx_rates.USD"),  # more than 12 decimal digits
        ("fx_rates.USD", "1." + "0" * 44 + "1", "fx_rates.USD"),  # longer than its column
        ("fx_rates.USD", "Infinity", "fx_rates.USD"),
        ("products.gold.earn_per_euro", 2**31, "products.gold.earn_per_euro"),
        ("products.gold.earn_per_euro", 1001, "products.gold.earn_per_euro"),
        (
            "products.platinum.category_multipliers.travel",
            501,  # 1 × 501 is fine, but not with earn_per_euro 2 (see the test)
            "products.platinum.category_multipliers.travel",
        ),
        ("products.gold.referral_bonus", 2**63, "products.gold.referral_bonus"),
        ("minimum_earn", 2**31, "minimum_earn"),
        ("travel.euro_per_point", "1e-400", "travel.euro_per_point"),
        ("travel.euro_per_point", "1001", "travel.euro_per_point"),
        ("travel.hold_minutes", 10**12, "travel.hold_minutes"),
        ("travel.hold_minutes", 43_201, "travel.hold_minutes"),  # above 30 days
        # Longer than the columns the programme's products are written to (the card products, the
        # miles export's partner): PostgreSQL refused the whole version with a 500.
        ("products." + "x" * 41, {"name": "X", "unit": "points"}, "products." + "x" * 41),
        ("products.gold.name", "n" * 121, "products.gold.name"),
        ("products.gold.tier", "t" * 41, "products.gold.tier"),
        ("products.cobrand-airline.miles_partner", "m" * 61, "products.cobrand-airline.miles_partner"),
        # The liability section was stored unread: every ROI report and point-cost figure after it
        # raised (an unparsable rate, a window of ten billion days) and answered 500.
        ("liability", "x", "liability"),
        ("liability.breakage", "abc", "liability.breakage"),
        ("liability.breakage", "1", "liability.breakage"),
        ("liability.catalogue_eur_per_point", "-0.01", "liability.catalogue_eur_per_point"),
        ("liability.catalogue_item_cost_eur", ["MUG"], "liability.catalogue_item_cost_eur"),
        ("liability.transfer_eur_per_point.default", "NaN", "liability.transfer_eur_per_point.default"),
        ("liability.ecode_face_eur_per_point", None, "liability.ecode_face_eur_per_point"),
        ("liability.window_days", 10**10, "liability.window_days"),
        ("liability.window_days", "lots", "liability.window_days"),
        ("liability.window_days", 0, "liability.window_days"),
        ("liability.windows_days", 30, "liability.windows_days"),  # a typo is refused, not ignored
    ]


@pytest.mark.parametrize(("path", "value", "field"), _out_of_range())
def test_a_programme_value_no_earn_could_store_is_422_naming_the_field(
    api: Api, path: str, value: Any, field: str
) -> None:
    before = api.get("/v1/programme").json()
    document = _document(api)
    document["products"]["platinum"]["earn_per_euro"] = 2
    _set(document, path, value)
    problem = _assert_422(api.put("/v1/programme", document), field)
    assert problem["type"].endswith("/invalid-programme")
    assert api.get("/v1/programme").json() == before


def test_an_fx_rate_in_exponent_notation_or_out_of_range_is_422_and_earns_keep_working(api: Api) -> None:
    """``PUT /v1/programme/fx-rates/USD {"rate": "1e400"}`` was accepted, and every USD payment after
    it answered 500 (its points overflowed the ledger's BIGINT on SQLite and PostgreSQL)."""
    before = api.get("/v1/programme").json()
    for rate in ("1e400", "9.2E+2", "101", "0.0000000000001"):
        _assert_422(api.put("/v1/programme/fx-rates/USD", {"rate": rate}), "rate")
    assert api.get("/v1/programme").json() == before
    api.put("/v1/members/M1", member_body())
    earned = api.post("/v1/transactions", tx_body("T1", "M1", "10.00", currency="USD"), role="integrator")
    assert earned.status_code == 201, earned.text
    assert earned.json()["points_earned"] == 9  # the shipped 0.92


def test_the_largest_programme_values_still_earn_redeem_and_hold_within_the_columns(
    api: Api, clock: FrozenClock
) -> None:
    """The bounds are what the columns hold: the largest amount (below 10^12) at the largest rate
    (100) and the largest units per euro (1,000) earns about 10^17 points, inside a BIGINT; the
    ledger refuses that earn (422 ``balance-limit``: more than one posting may move, see
    ``ledger_bounds``) and takes the largest that fits."""
    document = _document(api)
    document["fx_rates"]["USD"] = "100"
    document["products"]["gold"]["earn_per_euro"] = 2
    document["products"]["gold"]["category_multipliers"] = {"books": 500}
    document["minimum_earn"] = 1000
    document["travel"] = {"euro_per_point": "0.000000000001", "hold_minutes": 43_200}
    installed = api.put("/v1/programme", document)
    assert installed.status_code == 200, installed.text
    api.put("/v1/members/M1", member_body())
    largest = tx_body("T0", "M1", "999999999999.99", currency="USD")
    refused = api.post("/v1/transactions", largest, role="integrator")
    assert refused.status_code == 422 and refused.json()["type"].endswith("/balance-limit"), refused.text
    amount = "9999999999.99"
    earned = api.post("/v1/transactions", tx_body("T1", "M1", amount, currency="USD"), role="integrator")
    assert earned.status_code == 201, earned.text
    assert earned.json()["points_earned"] == 999_999_999_999 * 1000
    small = api.post("/v1/transactions", tx_body("T2", "M1", "0.01"), role="integrator")
    assert small.status_code == 201, small.text
    assert small.json()["points_earned"] == 1000
    assert small.json()["balance"] == LEDGER_BALANCE_LIMIT
    body = {"id": "TR1", "kind": "travel", "booking_ref": "BK1", "amount": "150.00", "points": 10**12}
    held = api.post("/v1/members/M1/redemptions", body, role="agent")
    assert held.status_code == 201, held.text
    assert held.json()["cash_due"] == "149.00"
    clock.advance(timedelta(days=29))
    assert api.post("/v1/redemptions/TR1/confirm", role="concierge").status_code == 200
    assert api.get("/v1/ledger/audit").json()["ok"] is True


def test_an_offers_largest_multiplier_on_the_largest_earn_still_fits_the_ledger(api: Api) -> None:
    """What rides on an earn fits too: an activated category multiplier of 20 without a cap pays 19
    times the earn again, up to the ledger's bound (``ledger_bounds``), and an earn past it is refused
    (422 ``balance-limit``)."""
    document = _document(api)
    document["fx_rates"]["USD"] = "100"
    document["products"]["gold"]["category_multipliers"] = {"books": 1000}
    assert api.put("/v1/programme", document).status_code == 200
    reward = {"category": "books", "multiplier": "20"}
    offer = offer_def(reward_kind="category_multiplier", reward=reward, holdout_share="0")
    assert api.put("/v1/offers/BOOKS20", offer, role="marketing").status_code == 201
    api.put("/v1/members/M1", member_body())
    first = api.post("/v1/transactions", tx_body("T1", "M1", "1.00"), role="integrator")
    assert first.status_code == 201 and first.json()["offer"]["offer_id"] == "BOOKS20", first.text
    assert api.post("/v1/members/M1/offers/BOOKS20/activate", role="agent").status_code == 200
    amount = "499999999.99"
    earned = api.post("/v1/transactions", tx_body("T2", "M1", amount, currency="USD"), role="integrator")
    assert earned.status_code == 201, earned.text
    points = 49_999_999_999 * 1000
    assert earned.json()["points_earned"] == points
    assert earned.json()["offer_rewards"][0]["points"] == points * 19
    balance = 1000 + points * 20
    assert api.get("/v1/members/M1/balance").json()["points"] == balance
    past = api.post("/v1/transactions", tx_body("T3", "M1", "20.00"), role="integrator")  # 20,000
    assert balance + 20_000 > LEDGER_BALANCE_LIMIT
    assert past.status_code == 422 and past.json()["type"].endswith("/balance-limit"), past.text
    assert api.get("/v1/members/M1/balance").json()["points"] == balance
    assert api.get("/v1/transactions/T3").status_code == 404
    assert api.get("/v1/ledger/audit").json()["ok"] is True
