"""The rules of the rewards programme and of money, as a specification. No database."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from importlib import resources
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from prevenance.common.money import MINOR_UNITS, AmountError, format_amount, minor_units, parse_amount
from prevenance.loyalty.rules import (
    ProductRule,
    ProgrammeError,
    RuleViolation,
    TravelSplit,
    earn_units,
    hold_expiry,
    is_expired,
    parse_programme,
    to_euros,
    to_minor,
    transfer_units,
    travel_split,
    units_after_refunds,
)


def shipped_document() -> dict[str, Any]:
    text = resources.files("prevenance.loyalty").joinpath("default_programme.json").read_text("utf-8")
    document: dict[str, Any] = json.loads(text)
    return document


def euros(text: str) -> Decimal:
    return Decimal(text)


# Strategies: euro amounts as exact decimals with two places, like the wire sends them.
cents = st.integers(min_value=1, max_value=10**9)
amounts = cents.map(lambda c: Decimal(c).scaleb(-2))
rates = st.decimals(min_value=Decimal("0.0001"), max_value=Decimal("50"), places=4)
per_euro = st.integers(min_value=1, max_value=10)
minimums = st.integers(min_value=0, max_value=5)


# --- earning -----------------------------------------------------------------------------------


def test_one_point_per_whole_euro() -> None:
    assert earn_units(euros("42.99"), units_per_euro=1, minimum=1) == 42


def test_a_positive_amount_below_one_euro_still_earns_one_point() -> None:
    assert earn_units(euros("0.01"), units_per_euro=1, minimum=1) == 1
    assert earn_units(euros("0.99"), units_per_euro=1, minimum=1) == 1


def test_the_minimum_is_the_programmes_and_may_be_zero() -> None:
    assert earn_units(euros("0.50"), units_per_euro=1, minimum=3) == 3
    assert earn_units(euros("0.50"), units_per_euro=1, minimum=0) == 0


def test_nothing_and_less_than_nothing_earn_nothing() -> None:
    assert earn_units(euros("0"), units_per_euro=2, minimum=1) == 0
    assert earn_units(euros("-10.00"), units_per_euro=2, minimum=1) == 0


def test_a_multiplier_applies_to_whole_euros_only() -> None:
    assert earn_units(euros("100.99"), units_per_euro=2, minimum=1) == 200


@given(amount=amounts, other=amounts, rate=per_euro, minimum=minimums)
def test_earn_is_monotone_in_amount(amount: Decimal, other: Decimal, rate: int, minimum: int) -> None:
    low, high = sorted((amount, other))
    assert earn_units(low, units_per_euro=rate, minimum=minimum) <= earn_units(
        high, units_per_euro=rate, minimum=minimum
    )


@given(amount=amounts, rate=per_euro, minimum=minimums)
def test_every_positive_amount_earns_at_least_the_minimum_and_exactly_its_whole_euros_above_it(
    amount: Decimal, rate: int, minimum: int
) -> None:
    units = earn_units(amount, units_per_euro=rate, minimum=minimum)
    assert units >= minimum
    assert units == max(int(amount) * rate, minimum)


def test_a_product_earns_its_base_rate_times_the_category_multiplier() -> None:
    platinum = ProductRule(
        code="platinum",
        name="Platinum",
        tier="platinum",
        premium=True,
        unit="points",
        earn_per_euro=1,
        category_multipliers={"travel": 2},
    )
    assert platinum.units_per_euro("travel") == 2
    assert platinum.units_per_euro("books") == 1


def test_a_product_without_multipliers_earns_its_base_rate_everywhere() -> None:
    rule = ProductRule(code="x", name="X", tier="x", premium=False, unit="points", earn_per_euro=3)
    assert rule.units_per_euro("travel") == 3
    assert rule.referral_bonus == 5000 and rule.miles_partner is None


# --- currencies --------------------------------------------------------------------------------


def test_a_foreign_amount_is_converted_and_the_rate_returned() -> None:
    value, rate = to_euros(Decimal("100"), "GBP", {"EUR": Decimal(1), "GBP": Decimal("1.17")})
    assert (value, rate) == (Decimal("117.00"), Decimal("1.17"))


def test_euros_convert_at_one() -> None:
    assert to_euros(Decimal("12.34"), "EUR", {"EUR": Decimal(1)}) == (Decimal("12.34"), Decimal(1))


def test_a_currency_without_a_rate_is_refused_naming_currency() -> None:
    with pytest.raises(RuleViolation) as caught:
        to_euros(Decimal("1"), "XYZ", {"EUR": Decimal(1)})
    assert caught.value.field == "currency"


def test_an_amount_in_minor_units_is_exact() -> None:
    assert to_minor(Decimal("42.50"), 2) == 4250
    assert to_minor(Decimal("1000"), 0) == 1000
    assert to_minor(Decimal("1.234"), 3) == 1234


def test_an_amount_finer_than_its_currency_has_no_minor_units() -> None:
    with pytest.raises(RuleViolation) as caught:
        to_minor(Decimal("1.005"), 2)
    assert caught.value.field == "amount"


@given(minor=st.integers(min_value=0, max_value=10**15), digits=st.sampled_from([0, 2, 3]))
def test_minor_units_round_trip(minor: int, digits: int) -> None:
    assert to_minor(Decimal(minor).scaleb(-digits), digits) == minor


# --- refunds -----------------------------------------------------------------------------------


def keeps(amount_minor: int, refunded_minor: int, *, fx: str = "1", rate: int = 1, minimum: int = 1) -> int:
    return units_after_refunds(
        amount_minor=amount_minor,
        refunded_minor=refunded_minor,
        minor_digits=2,
        fx_rate=Decimal(fx),
        units_per_euro=rate,
        minimum=minimum,
    )


def test_a_transaction_keeps_what_its_remaining_amount_earns() -> None:
    assert keeps(10_000, 3_050) == 69  # 69.50 € left


def test_a_fully_refunded_transaction_keeps_nothing() -> None:
    assert keeps(10_000, 10_000) == 0


def test_a_small_remainder_still_keeps_the_minimum() -> None:
    assert keeps(10_000, 9_990) == 1  # 0.10 € left earns the minimum


def test_a_refund_uses_the_rate_recorded_at_the_transaction() -> None:
    assert keeps(10_000, 5_000, fx="1.17") == 58  # 50 GBP at 1.17 = 58.50 €


def test_refunds_beyond_the_amount_are_refused() -> None:
    with pytest.raises(RuleViolation) as caught:
        keeps(1_000, 1_001)
    assert caught.value.field == "amount"


@st.composite
def refund_splits(draw: st.DrawFn) -> tuple[int, list[int]]:
    """A transaction amount in cents and refunds (in cents) that never exceed it."""
    total = draw(st.integers(min_value=1, max_value=10**8))
    refunds: list[int] = []
    left = total
    for _ in range(draw(st.integers(min_value=0, max_value=8))):
        if left == 0:
            break
        part = draw(st.integers(min_value=1, max_value=left))
        refunds.append(part)
        left -= part
    return total, refunds


@given(split=refund_splits(), fx=rates, rate=per_euro, minimum=minimums)
def test_refunds_in_any_split_end_with_exactly_earn_of_the_remaining_amount(
    split: tuple[int, list[int]], fx: Decimal, rate: int, minimum: int
) -> None:
    total, refunds = split
    current = keeps(total, 0, fx=str(fx), rate=rate, minimum=minimum)
    earned = current
    reversed_total = 0
    refunded = 0
    for part in refunds:
        refunded += part
        after = keeps(total, refunded, fx=str(fx), rate=rate, minimum=minimum)
        assert after <= current  # a refund never gives points back to the member
        reversed_total += current - after
        current = after
    remaining = Decimal(total - refunded).scaleb(-2) * fx
    assert current == earn_units(remaining, units_per_euro=rate, minimum=minimum)
    assert earned - reversed_total == current
    if refunded == total:
        assert current == 0


# --- transfers ---------------------------------------------------------------------------------


def test_a_thousand_points_are_a_thousand_airline_miles() -> None:
    assert transfer_units(1000, points_per_block=1000, units_per_block=1000) == 1000


def test_two_thousand_points_are_a_thousand_hotel_points() -> None:
    assert transfer_units(2000, points_per_block=2000, units_per_block=1000) == 1000


@pytest.mark.parametrize("points", [1500, 999, 2001])
def test_a_transfer_must_be_a_whole_number_of_blocks(points: int) -> None:
    with pytest.raises(RuleViolation) as caught:
        transfer_units(points, points_per_block=1000, units_per_block=1000)
    assert caught.value.field == "points"


@pytest.mark.parametrize("points", [0, -1000])
def test_a_transfer_moves_a_positive_number_of_points(points: int) -> None:
    with pytest.raises(RuleViolation):
        transfer_units(points, points_per_block=1000, units_per_block=1000)


@given(
    blocks=st.integers(min_value=1, max_value=10**6),
    per_block=st.integers(min_value=1, max_value=10**4),
    units=st.integers(min_value=1, max_value=10**4),
    extra=st.integers(min_value=0, max_value=10**4),
)
def test_transfers_pay_exactly_per_whole_block(blocks: int, per_block: int, units: int, extra: int) -> None:
    points = blocks * per_block + extra % per_block
    if points % per_block:
        with pytest.raises(RuleViolation):
            transfer_units(points, points_per_block=per_block, units_per_block=units)
    else:
        assert transfer_units(points, points_per_block=per_block, units_per_block=units) == blocks * units


# --- travel ------------------------------------------------------------------------------------


def test_a_trip_part_paid_with_points_leaves_cash_due() -> None:
    split = travel_split(euros("150.00"), points_offered=10_000, euro_per_point=euros("0.01"))
    assert split == TravelSplit(points_used=10_000, cash_due=euros("50.00"))
    assert str(split.cash_due) == "50.00"


def test_a_trip_never_uses_more_points_than_it_is_worth() -> None:
    split = travel_split(euros("150.00"), points_offered=25_000, euro_per_point=euros("0.01"))
    assert split == TravelSplit(points_used=15_000, cash_due=euros("0.00"))
    assert str(split.cash_due) == "0.00"


def test_a_part_of_a_point_counts_as_a_whole_point() -> None:
    split = travel_split(euros("10.01"), points_offered=1_000, euro_per_point=euros("0.02"))
    assert split == TravelSplit(points_used=501, cash_due=euros("0.00"))


def test_cash_due_is_rounded_up_so_the_trip_is_always_covered() -> None:
    split = travel_split(euros("1.00"), points_offered=333, euro_per_point=euros("0.003"))
    assert split.points_used == 333
    assert split.cash_due == euros("0.01")  # 0.999 € of points + 0.001 € due: charge the cent


@pytest.mark.parametrize("points", [0, -5])
def test_a_trip_needs_a_positive_number_of_points(points: int) -> None:
    with pytest.raises(RuleViolation) as caught:
        travel_split(euros("10.00"), points_offered=points, euro_per_point=euros("0.01"))
    assert caught.value.field == "points"


@given(
    amount=amounts,
    offered=st.integers(min_value=1, max_value=10**9),
    value=st.decimals(min_value=Decimal("0.001"), max_value=Decimal("1"), places=3),
)
def test_points_and_cash_cover_the_trip_with_no_point_and_no_cent_too_many(
    amount: Decimal, offered: int, value: Decimal
) -> None:
    split = travel_split(amount, points_offered=offered, euro_per_point=value)
    assert 0 < split.points_used <= offered
    assert split.cash_due >= 0 and split.cash_due == split.cash_due.quantize(Decimal("0.01"))
    paid = split.points_used * value + split.cash_due
    assert paid >= amount  # the trip is covered…
    assert paid - amount < max(value, Decimal("0.01"))  # …and not by a whole point or cent more
    if split.points_used < offered:
        assert split.cash_due == 0  # points were left over only because the trip was paid in full


@given(amount=amounts, offered=st.integers(min_value=1, max_value=10**9))
def test_at_one_cent_a_point_points_and_cash_add_up_exactly(amount: Decimal, offered: int) -> None:
    split = travel_split(amount, points_offered=offered, euro_per_point=Decimal("0.01"))
    assert split.points_used * Decimal("0.01") + split.cash_due == max(
        amount, split.points_used * Decimal("0.01")
    )
    assert split.points_used == min(offered, int(amount * 100))


def test_a_hold_expires_after_the_programmes_minutes() -> None:
    created = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    assert hold_expiry(created, hold_minutes=30) == datetime(2026, 1, 1, 12, 30, tzinfo=UTC)


def test_a_hold_is_expired_from_its_expiry_on() -> None:
    expiry = datetime(2026, 1, 1, 12, 30, tzinfo=UTC)
    just_before = expiry - timedelta(microseconds=1)
    assert not is_expired(expiry, just_before)
    assert is_expired(expiry, expiry)
    assert is_expired(expiry, expiry + timedelta(minutes=1))


# --- the programme document --------------------------------------------------------------------


def test_the_shipped_programme_parses_with_the_issues_defaults() -> None:
    programme = parse_programme(shipped_document())
    assert set(programme.products) == {"green", "gold", "platinum", "centurion", "cobrand-airline"}
    for code in ("green", "gold", "platinum", "centurion"):
        rule = programme.products[code]
        assert (rule.unit, rule.earn_per_euro, rule.referral_bonus) == ("points", 1, 5000)
    assert programme.products["platinum"].premium and programme.products["centurion"].premium
    assert not programme.products["gold"].premium
    assert programme.products["platinum"].units_per_euro("travel") == 2
    assert programme.products["centurion"].units_per_euro("travel") == 2
    assert programme.products["gold"].units_per_euro("travel") == 1
    cobrand = programme.products["cobrand-airline"]
    assert (cobrand.unit, cobrand.miles_partner) == ("miles", "skyline")
    assert programme.fx_rates["EUR"] == 1 and programme.fx_rates["GBP"] == Decimal("1.17")
    assert (programme.euro_per_point, programme.hold_minutes, programme.minimum_earn) == (
        Decimal("0.01"),
        30,
        1,
    )


def test_a_minimal_programme_gets_sensible_defaults() -> None:
    programme = parse_programme({"products": {"basic": {}}})
    rule = programme.products["basic"]
    assert (rule.unit, rule.earn_per_euro, rule.referral_bonus, rule.premium) == ("points", 1, 5000, False)
    assert dict(programme.fx_rates) == {"EUR": Decimal(1)}
    assert (programme.name, programme.euro_per_point, programme.hold_minutes, programme.minimum_earn) == (
        "Rewards",
        Decimal("0.01"),
        30,
        1,
    )


def test_the_parsed_programme_cannot_be_changed() -> None:
    programme = parse_programme(shipped_document())
    with pytest.raises(TypeError):
        programme.products["gold"] = programme.products["green"]  # type: ignore[index]
    with pytest.raises(TypeError):
        programme.fx_rates["GBP"] = Decimal(2)  # type: ignore[index]


def _broken(path: str, value: Any) -> dict[str, Any]:
    document = copy.deepcopy(shipped_document())
    *parents, last = path.split(".")
    node = document
    for part in parents:
        node = node[part]
    node[last] = value
    return document


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        ("products", {}, "products"),
        ("products", [], "products"),
        ("products.gold", "gold", "products.gold"),
        ("products.gold.unit", "stars", "products.gold.unit"),
        ("products.gold.earn_per_euro", 0, "products.gold.earn_per_euro"),
        ("products.gold.earn_per_euro", True, "products.gold.earn_per_euro"),
        ("products.gold.earn_per_euro", 1.5, "products.gold.earn_per_euro"),
        ("products.gold.category_multipliers", "travel", "products.gold.category_multipliers"),
        ("products.gold.category_multipliers", {"travel": 0}, "products.gold.category_multipliers.travel"),
        ("products.gold.referral_bonus", -1, "products.gold.referral_bonus"),
        ("products.gold.premium", "no", "products.gold.premium"),
        ("products.cobrand-airline.miles_partner", "", "products.cobrand-airline.miles_partner"),
        ("fx_rates", ["GBP"], "fx_rates"),
        ("fx_rates.gbp", "1.1", "fx_rates.gbp"),
        ("fx_rates.POUND", "1.1", "fx_rates.POUND"),
        ("fx_rates.GBP", "-1", "fx_rates.GBP"),
        ("fx_rates.GBP", "NaN", "fx_rates.GBP"),
        ("fx_rates.GBP", "Infinity", "fx_rates.GBP"),
        ("fx_rates.GBP", "one", "fx_rates.GBP"),
        ("fx_rates.EUR", "1.1", "fx_rates.EUR"),
        ("travel", "fast", "travel"),
        ("travel.euro_per_point", "0", "travel.euro_per_point"),
        ("travel.hold_minutes", 0, "travel.hold_minutes"),
        ("minimum_earn", -1, "minimum_earn"),
    ],
)
def test_an_invalid_programme_names_the_offending_path(path: str, value: Any, field: str) -> None:
    with pytest.raises(ProgrammeError) as caught:
        parse_programme(_broken(path, value))
    assert caught.value.field == field


def test_a_programme_must_be_an_object() -> None:
    with pytest.raises(ProgrammeError):
        parse_programme(["products"])  # type: ignore[arg-type]


def test_zero_minimum_and_zero_referral_bonus_are_allowed() -> None:
    document = _broken("minimum_earn", 0)
    document["products"]["gold"]["referral_bonus"] = 0
    programme = parse_programme(document)
    assert programme.minimum_earn == 0 and programme.products["gold"].referral_bonus == 0


def test_the_euro_may_be_written_as_one_in_any_form() -> None:
    assert parse_programme(_broken("fx_rates.EUR", "1.00")).fx_rates["EUR"] == 1


# --- money -------------------------------------------------------------------------------------


def test_currencies_have_their_iso_4217_minor_digits() -> None:
    assert minor_units("EUR") == 2 and minor_units("GBP") == 2
    assert minor_units("JPY") == 0 and minor_units("KRW") == 0
    assert minor_units("KWD") == 3 and minor_units("TND") == 3
    assert minor_units("ZZZ") == 2  # unknown currencies default to two
    assert all(digits in (0, 2, 3) for digits in MINOR_UNITS.values())


@pytest.mark.parametrize(
    ("text", "currency", "value"),
    [
        ("42.50", "EUR", Decimal("42.50")),
        ("42", "EUR", Decimal("42")),
        ("0.01", "EUR", Decimal("0.01")),
        ("1000", "JPY", Decimal("1000")),
        ("1.234", "KWD", Decimal("1.234")),
    ],
)
def test_an_amount_is_a_positive_decimal_string(text: str, currency: str, value: Decimal) -> None:
    assert parse_amount(text, currency) == value


@pytest.mark.parametrize(
    ("text", "currency"),
    [
        ("0", "EUR"),
        ("0.00", "EUR"),
        ("-5", "EUR"),
        ("1.234", "EUR"),
        ("100.5", "JPY"),
        ("1.2345", "KWD"),
        ("abc", "EUR"),
        ("", "EUR"),
        (" 5", "EUR"),
        ("5 ", "EUR"),
        ("1e3", "EUR"),
        ("1E3", "EUR"),
        ("1_000", "EUR"),
        ("1,50", "EUR"),
        ("NaN", "EUR"),
        ("Infinity", "EUR"),
        ("-Infinity", "EUR"),
    ],
)
def test_anything_else_is_not_an_amount(text: str, currency: str) -> None:
    with pytest.raises(AmountError):
        parse_amount(text, currency)


@pytest.mark.parametrize("value", [12.5, 12, None, Decimal("12.5")])
def test_an_amount_that_is_not_a_string_is_refused(value: Any) -> None:
    with pytest.raises(AmountError):
        parse_amount(value, "EUR")


def test_an_amount_is_written_in_ascii_digits() -> None:
    with pytest.raises(AmountError):
        parse_amount("٣", "EUR")


def test_the_message_says_how_many_digits_the_currency_allows() -> None:
    with pytest.raises(AmountError, match="JPY allows at most 0"):
        parse_amount("1.5", "JPY")


def test_an_amount_is_rendered_with_its_currencys_digits() -> None:
    assert format_amount(Decimal("42.5"), "EUR") == "42.50"
    assert format_amount(Decimal("1000"), "JPY") == "1000"
    assert format_amount(Decimal("1.2"), "KWD") == "1.200"


@settings(max_examples=200)
@given(
    minor=st.integers(min_value=1, max_value=10**14), currency=st.sampled_from(["EUR", "JPY", "KWD", "GBP"])
)
def test_a_valid_amount_survives_parse_render_and_minor_units(minor: int, currency: str) -> None:
    digits = minor_units(currency)
    value = Decimal(minor).scaleb(-digits)
    text = format_amount(value, currency)
    assert parse_amount(text, currency) == value
    assert to_minor(parse_amount(text, currency), digits) == minor
