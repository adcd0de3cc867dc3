"""The rules of the rewards programme, as plain functions over frozen values. No I/O.

The programme is data (a JSON document an admin can replace); these functions read it.
Points never expire unless the programme's ``points_expiry`` policy says so (``expiry_rules``).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal, InvalidOperation
from types import MappingProxyType
from typing import Any, Protocol

from prevenance.common.money import AmountError, parse_amount
from prevenance.common.problems import InvalidInput
from prevenance.common.rules import FieldError
from prevenance.loyalty.expiry_rules import NO_EXPIRY, ExpiryPolicy, ExpiryPolicyError, parse_policy

UNITS = ("points", "miles")
PARTNER_KINDS = ("airline", "hotel", "merchant")
# Every key a programme document may hold: anything else is refused (422 naming the key) rather
# than stored and silently ignored. ``goodwill`` is the service-recovery section (its content is
# checked by the desk's goodwill rules).
PROGRAMME_KEYS = (
    "name", "base_currency", "minimum_earn", "products", "fx_rates", "travel", "liability",
    "points_expiry", "goodwill",
)  # fmt: skip
PRODUCT_KEYS = (
    "name", "tier", "premium", "unit", "earn_per_euro", "category_multipliers", "referral_bonus",
    "miles_partner",
)  # fmt: skip
TRAVEL_KEYS = ("euro_per_point", "hold_minutes")


class ProgrammeError(FieldError):
    """The programme document is not valid; ``field`` names the offending path."""


class RuleViolation(FieldError):
    """A request breaks a programme rule; ``field`` names the offending input."""


@dataclass(frozen=True)
class ProductRule:
    """How one card product earns."""

    code: str
    name: str
    tier: str
    premium: bool
    unit: str
    earn_per_euro: int
    category_multipliers: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))
    referral_bonus: int = 5000
    miles_partner: str | None = None

    def units_per_euro(self, category: str) -> int:
        """Units earned per whole euro for a category (the base rate times its multiplier)."""
        return self.earn_per_euro * self.category_multipliers.get(category, 1)


@dataclass(frozen=True)
class Programme:
    """A parsed programme document."""

    name: str
    products: Mapping[str, ProductRule]
    fx_rates: Mapping[str, Decimal]
    euro_per_point: Decimal
    hold_minutes: int
    minimum_earn: int
    points_expiry: ExpiryPolicy = NO_EXPIRY


def _positive_int(value: Any, path: str, *, allow_zero: bool = False) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < (0 if allow_zero else 1):
        raise ProgrammeError(f"{path} must be a {'non-negative' if allow_zero else 'positive'} integer", path)
    return value


def _positive_decimal(value: Any, path: str) -> Decimal:
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise ProgrammeError(f"{path} must be a decimal string", path)
    if not number.is_finite() or number <= 0:
        raise ProgrammeError(f"{path} must be positive", path)
    return number


# Bounds of a new programme version: each is what the columns of every earn, refund and travel
# hold under it. The largest payment (below MAX_AMOUNT = 10^12 in its currency) at the largest rate
# (100 euros per unit) and the largest units per euro (1,000, base rate times multiplier) earns
# about 10^17 units: inside a BIGINT with room for what rides on it (an offer's category multiplier
# of up to 20 pays 19 times the earn again). The rate and the euro amount are stored as text of at
# most 40 characters, units per euro and the minimum earn in INTEGER columns; a hold's end is a
# date. Beyond them a version used to be stored and every earn (or travel hold) under it answered
# 500. No real currency, rule or hold comes near: the strongest currency is worth a few euros.
MAX_FX_RATE = Decimal(100)
MAX_UNITS_PER_EURO = 1000
MAX_MINIMUM_EARN = 1000
MAX_REFERRAL_BONUS = 10**9
MAX_EURO_PER_POINT = Decimal(1000)
MAX_HOLD_MINUTES = 30 * 24 * 60
MAX_RATE_DECIMALS = 12
# Digits, a point and at most 12 decimals: what an admin types. An exponent ("1e400", "1E+2") is
# refused: it hides the size of the number.
_PLAIN_DECIMAL = re.compile(rf"[0-9]{{1,30}}(?:\.[0-9]{{1,{MAX_RATE_DECIMALS}}})?")


def _bounded_int(value: Any, path: str, *, high: int, allow_zero: bool = False) -> int:
    number = _positive_int(value, path, allow_zero=allow_zero)
    if number > high:
        raise ProgrammeError(f"{path} must be at most {high:,}", path)
    return number


def _bounded_decimal(value: Any, path: str, *, high: Decimal) -> Decimal:
    # A JSON number is read as it prints (1.17 is "1.17"; 1e-05 keeps its exponent and is refused).
    plain = isinstance(value, (str, int, float, Decimal)) and not isinstance(value, bool)
    text = str(value) if plain else ""
    if not _PLAIN_DECIMAL.fullmatch(text):
        raise ProgrammeError(
            f"{path} must be a plain decimal string with at most {MAX_RATE_DECIMALS} decimal digits,"
            ' such as "0.92" (no exponent)',
            path,
        )
    number = _positive_decimal(text, path)
    if number > high:
        raise ProgrammeError(f"{path} must be at most {high}", path)
    return number


def _check_bounds(document: Mapping[str, Any], products: Mapping[str, ProductRule]) -> None:
    """Refuse a new version whose values no earn, refund or hold could store (see the bounds)."""
    for code, rule in products.items():
        path = f"products.{code}"
        _bounded_int(rule.earn_per_euro, f"{path}.earn_per_euro", high=MAX_UNITS_PER_EURO)
        for category, multiplier in rule.category_multipliers.items():
            if rule.earn_per_euro * multiplier > MAX_UNITS_PER_EURO:
                where = f"{path}.category_multipliers.{category}"
                raise ProgrammeError(
                    f"{where} times earn_per_euro must be at most {MAX_UNITS_PER_EURO:,} units per euro",
                    where,
                )
        _bounded_int(rule.referral_bonus, f"{path}.referral_bonus", high=MAX_REFERRAL_BONUS, allow_zero=True)
    for currency, rate in (document.get("fx_rates") or {}).items():
        _bounded_decimal(rate, f"fx_rates.{currency}", high=MAX_FX_RATE)
    travel = document.get("travel") or {}
    if "euro_per_point" in travel:
        _bounded_decimal(travel["euro_per_point"], "travel.euro_per_point", high=MAX_EURO_PER_POINT)
    _bounded_int(travel.get("hold_minutes", 30), "travel.hold_minutes", high=MAX_HOLD_MINUTES)
    _bounded_int(document.get("minimum_earn", 1), "minimum_earn", high=MAX_MINIMUM_EARN, allow_zero=True)


def _known_keys(section: Mapping[str, Any], allowed: tuple[str, ...], path: str) -> None:
    for key in section:
        if key not in allowed:
            where = f"{path}.{key}" if path else str(key)
            raise ProgrammeError(
                f"unknown programme key {where!r} (allowed{' in ' + path if path else ''}: "
                f"{', '.join(allowed)})",
                where,
            )


def parse_programme(document: Mapping[str, Any], *, strict: bool = True) -> Programme:
    """Validate a programme document and return its frozen form.

    ``strict`` (every new version) refuses unknown keys. A version stored before keys were checked
    is read with ``strict=False``: unknown keys ignored, and a ``points_expiry`` that is not a valid
    policy read as no expiry (it never did anything), so the programme in force keeps working.
    """
    if not isinstance(document, Mapping):
        raise ProgrammeError("programme must be an object", "")
    if strict:
        _known_keys(document, PROGRAMME_KEYS, "")
    products_doc = document.get("products")
    if not isinstance(products_doc, Mapping) or not products_doc:
        raise ProgrammeError("products must be a non-empty object", "products")
    products: dict[str, ProductRule] = {}
    for code, spec in products_doc.items():
        path = f"products.{code}"
        if not isinstance(spec, Mapping):
            raise ProgrammeError(f"{path} must be an object", path)
        if strict:
            _known_keys(spec, PRODUCT_KEYS, path)
        unit = spec.get("unit", "points")
        if unit not in UNITS:
            raise ProgrammeError(f"{path}.unit must be points or miles", f"{path}.unit")
        multipliers = spec.get("category_multipliers", {}) or {}
        if not isinstance(multipliers, Mapping):
            raise ProgrammeError(
                f"{path}.category_multipliers must be an object", f"{path}.category_multipliers"
            )
        parsed_multipliers = {
            str(cat): _positive_int(mult, f"{path}.category_multipliers.{cat}")
            for cat, mult in multipliers.items()
        }
        if not isinstance(spec.get("premium", False), bool):
            raise ProgrammeError(f"{path}.premium must be true or false", f"{path}.premium")
        miles_partner = spec.get("miles_partner")
        if unit == "miles" and not miles_partner:
            raise ProgrammeError(
                f"{path}.miles_partner is required for a miles product", f"{path}.miles_partner"
            )
        products[str(code)] = ProductRule(
            code=str(code),
            name=str(spec.get("name", code)),
            tier=str(spec.get("tier", code)),
            premium=bool(spec.get("premium", False)),
            unit=unit,
            earn_per_euro=_positive_int(spec.get("earn_per_euro", 1), f"{path}.earn_per_euro"),
            category_multipliers=MappingProxyType(parsed_multipliers),
            referral_bonus=_positive_int(
                spec.get("referral_bonus", 5000), f"{path}.referral_bonus", allow_zero=True
            ),
            miles_partner=str(miles_partner) if miles_partner else None,
        )
    rates_doc = document.get("fx_rates", {}) or {}
    if not isinstance(rates_doc, Mapping):
        raise ProgrammeError("fx_rates must be an object", "fx_rates")
    rates = {"EUR": Decimal(1)}
    for currency, rate in rates_doc.items():
        if not (
            isinstance(currency, str) and len(currency) == 3 and currency.isalpha() and currency.isupper()
        ):
            raise ProgrammeError(f"fx_rates key {currency!r} is not an ISO 4217 code", f"fx_rates.{currency}")
        rates[currency] = _positive_decimal(rate, f"fx_rates.{currency}")
    if rates["EUR"] != 1:
        raise ProgrammeError("fx_rates.EUR is the base currency: its rate is 1", "fx_rates.EUR")
    travel = document.get("travel", {}) or {}
    if not isinstance(travel, Mapping):
        raise ProgrammeError("travel must be an object", "travel")
    if strict:
        _known_keys(travel, TRAVEL_KEYS, "travel")
    goodwill = document.get("goodwill")
    if goodwill is not None and not isinstance(goodwill, Mapping):
        raise ProgrammeError("goodwill must be an object", "goodwill")
    try:
        expiry = parse_policy(document.get("points_expiry"))
    except ExpiryPolicyError as error:
        if strict:
            raise ProgrammeError(str(error), error.field)
        expiry = NO_EXPIRY
    programme = Programme(
        name=str(document.get("name", "Rewards")),
        products=MappingProxyType(products),
        fx_rates=MappingProxyType(rates),
        euro_per_point=_positive_decimal(travel.get("euro_per_point", "0.01"), "travel.euro_per_point"),
        hold_minutes=_positive_int(travel.get("hold_minutes", 30), "travel.hold_minutes"),
        minimum_earn=_positive_int(document.get("minimum_earn", 1), "minimum_earn", allow_zero=True),
        points_expiry=expiry,
    )
    if strict:
        # A new version only: one stored before the bounds were checked keeps being read.
        _check_bounds(document, products)
        check_liability(document.get("liability"))
    return programme


def to_euros(amount: Decimal, currency: str, rates: Mapping[str, Decimal]) -> tuple[Decimal, Decimal]:
    """The euro value of an amount and the rate used (euros per unit of the currency)."""
    rate = rates.get(currency)
    if rate is None:
        raise RuleViolation(f"no exchange rate for currency {currency!r}", "currency")
    return amount * rate, rate


def earn_units(amount_eur: Decimal, *, units_per_euro: int, minimum: int) -> int:
    """Units earned for a euro amount: per whole euro, and never nothing for a positive amount.

    "With every transaction you always earn something": a positive amount earns at least
    ``minimum`` (1 by default), even below one euro.
    """
    if amount_eur <= 0:
        return 0
    whole_euros = int(amount_eur.to_integral_value(rounding=ROUND_FLOOR))
    return max(whole_euros * units_per_euro, minimum)


def units_after_refunds(
    *,
    amount_minor: int,
    refunded_minor: int,
    minor_digits: int,
    fx_rate: Decimal,
    units_per_euro: int,
    minimum: int,
) -> int:
    """What a transaction keeps after refunds: exactly what its remaining amount would earn."""
    remaining_minor = amount_minor - refunded_minor
    if remaining_minor < 0:
        raise RuleViolation("refunds exceed the transaction amount", "amount")
    remaining = Decimal(remaining_minor).scaleb(-minor_digits)
    return earn_units(remaining * fx_rate, units_per_euro=units_per_euro, minimum=minimum)


def to_minor(amount: Decimal, minor_digits: int) -> int:
    """An amount in minor units (cents); exact because the amount was validated for its digits."""
    scaled = amount.scaleb(minor_digits)
    if scaled != scaled.to_integral_value():
        raise RuleViolation("amount has more decimal digits than its currency allows", "amount")
    return int(scaled)


def transfer_units(points: int, *, points_per_block: int, units_per_block: int) -> int:
    """Partner units for a transfer; points must be a whole number of blocks."""
    if points <= 0:
        raise RuleViolation("points must be positive", "points")
    if points % points_per_block:
        raise RuleViolation(f"points must be a multiple of {points_per_block}", "points")
    return points // points_per_block * units_per_block


@dataclass(frozen=True)
class TravelSplit:
    """How a trip is paid: points used and the euros still due."""

    points_used: int
    cash_due: Decimal


def travel_split(amount_eur: Decimal, *, points_offered: int, euro_per_point: Decimal) -> TravelSplit:
    """Pay a trip in full or in part with points; never use more points than the trip is worth."""
    if points_offered <= 0:
        raise RuleViolation("points must be positive", "points")
    points_for_full = int((amount_eur / euro_per_point).to_integral_value(rounding=ROUND_CEILING))
    used = min(points_offered, points_for_full)
    due = amount_eur - used * euro_per_point
    # Round up to the cent: points plus cash always cover the trip (a point worth a fraction of a
    # cent would otherwise leave the last part unpaid).
    cash_due = max(Decimal(0), due).quantize(Decimal("0.01"), rounding=ROUND_CEILING)
    return TravelSplit(points_used=used, cash_due=cash_due)


def hold_expiry(created_at: datetime, *, hold_minutes: int) -> datetime:
    """When an unconfirmed travel hold releases itself."""
    return created_at + timedelta(minutes=hold_minutes)


def is_expired(expires_at: datetime, now: datetime) -> bool:
    return now >= expires_at


# --- referral codes ----------------------------------------------------------------------------
#
# A member's referral code is computed, not stored: its 60 bits are the member's internal id (40
# bits) enciphered by a keyed Feistel permutation, followed by a 20-bit keyed tag of that id. So a
# code names one member and reveals nothing about them (not even the id), a guessed code is
# accepted about once in a million million tries (with a million members), and reading a code
# writes nothing. The key comes from the deployment's secret: rotating the secret changes every
# code (referrals already made are kept).

REFERRAL_CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read aloud, typed by hand
_ID_BITS, _TAG_BITS, _ROUNDS = 40, 20, 4
_HALF = _ID_BITS // 2
_CODE_LENGTH = (_ID_BITS + _TAG_BITS) // 5


def _keyed(key: bytes, label: bytes, value: int) -> int:
    digest = hmac.new(key, label + value.to_bytes(8, "big"), hashlib.sha256).digest()
    return int.from_bytes(digest[:8], "big")


def _feistel(value: int, key: bytes, *, inverse: bool = False) -> int:
    mask = (1 << _HALF) - 1
    left, right = value >> _HALF, value & mask
    rounds = range(_ROUNDS - 1, -1, -1) if inverse else range(_ROUNDS)
    for i in rounds:
        if inverse:
            left, right = right ^ (_keyed(key, b"round%d" % i, left) & mask), left
        else:
            left, right = right, left ^ (_keyed(key, b"round%d" % i, right) & mask)
    return (left << _HALF) | right


def _tag(member_id: int, key: bytes) -> int:
    return _keyed(key, b"tag", member_id) & ((1 << _TAG_BITS) - 1)


def referral_code(member_id: int, *, key: bytes) -> str:
    """The member's referral code, ``XXXX-XXXX-XXXX``: the same member and key always give the same."""
    if not 0 < member_id < (1 << _ID_BITS):
        raise ValueError(f"member id {member_id} is outside the referral code's range")
    value = (_feistel(member_id, key) << _TAG_BITS) | _tag(member_id, key)
    symbols = [REFERRAL_CODE_ALPHABET[(value >> (5 * i)) & 31] for i in reversed(range(_CODE_LENGTH))]
    text = "".join(symbols)
    return "-".join(text[i : i + 4] for i in range(0, _CODE_LENGTH, 4))


def normalise_referral_code(code: str) -> str | None:
    """The code as issued (upper case, dashes in place) whatever spacing or case it was typed in;
    None when it cannot be a code at all."""
    text = "".join(code.split()).replace("-", "").upper()
    if len(text) != _CODE_LENGTH or any(c not in REFERRAL_CODE_ALPHABET for c in text):
        return None
    return "-".join(text[i : i + 4] for i in range(0, _CODE_LENGTH, 4))


def referral_code_owner(code: str, *, key: bytes) -> int | None:
    """The internal id of the member whose code this is, or None for a code no member was given."""
    text = normalise_referral_code(code)
    if text is None:
        return None
    value = 0
    for symbol in text.replace("-", ""):
        value = (value << 5) | REFERRAL_CODE_ALPHABET.index(symbol)
    member_id = _feistel(value >> _TAG_BITS, key, inverse=True)
    if member_id == 0 or not hmac.compare_digest(
        _tag(member_id, key).to_bytes(3, "big"), (value & ((1 << _TAG_BITS) - 1)).to_bytes(3, "big")
    ):
        return None
    return member_id


def referral_code_key(secret: str) -> bytes:
    """The referral codes' own key, derived from the deployment's secret."""
    return hmac.new(secret.encode(), b"prevenance.referral-code", hashlib.sha256).digest()


# --- what a point costs: the programme's liability ---------------------------------------------

DEFAULT_LIABILITY: dict[str, Any] = {
    "breakage": "0.12",
    "catalogue_eur_per_point": "0.0065",
    "catalogue_item_cost_eur": {},
    "transfer_eur_per_point": {"default": "0.0080"},
    "ecode_face_eur_per_point": "0.0100",
    "window_days": 365,
}


@dataclass(frozen=True)
class RedeemedLine:
    """Points redeemed in one way over the window: kind, what (sku, partner) and the points."""

    kind: str
    key: str | None
    points: int
    quantity: int = 1


def _rate(value: Any, path: str) -> Decimal:
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise ProgrammeError(f"{path} must be a decimal string", path)
    if not number.is_finite() or number < 0:
        raise ProgrammeError(f"{path} must be zero or positive", path)
    return number


MAX_LIABILITY_WINDOW_DAYS = 3650


def check_liability(section: Any) -> None:
    """Refuse a ``liability`` section ``point_cost`` could not read (every ROI report and point-cost
    figure would answer 500): the keys it knows, rates it parses, a breakage below 1, and a window
    of 1 to 3,650 days (a date, not an overflow)."""
    if section is None:
        return
    if not isinstance(section, Mapping):
        raise ProgrammeError("liability must be an object", "liability")
    _known_keys(section, tuple(DEFAULT_LIABILITY), "liability")
    for name in ("catalogue_item_cost_eur", "transfer_eur_per_point"):
        if not isinstance(section.get(name, {}), Mapping):
            raise ProgrammeError(f"liability.{name} must be an object", f"liability.{name}")
    days = section.get("window_days", DEFAULT_LIABILITY["window_days"])
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= MAX_LIABILITY_WINDOW_DAYS:
        raise ProgrammeError(
            f"liability.window_days must be a whole number of days from 1 to {MAX_LIABILITY_WINDOW_DAYS:,}",
            "liability.window_days",
        )
    point_cost([], liability=section, euro_per_point=Decimal("0.01"))  # parses every rate


def point_cost(
    lines: list[RedeemedLine], *, liability: Mapping[str, Any] | None, euro_per_point: Decimal
) -> dict[str, Any]:
    """What one point issued today costs the brand, from the redemption mix actually observed.

    Each redeemed point costs what its use costs: a catalogue item its purchase cost (per item when
    ``catalogue_item_cost_eur`` names its sku, else ``catalogue_eur_per_point``), a partner transfer
    the partner's price (``transfer_eur_per_point``, per partner or ``default``), travel the
    programme's ``euro_per_point`` (the euro value a point pays on the travel site), an e-code its face
    value (``ecode_face_eur_per_point``). The mix-weighted mean is the cost of a redeemed point; a
    share ``breakage`` of points is expected never to be redeemed (points never expire, but some
    accounts never use them), so a point issued costs (1 - breakage) x that mean. With no
    redemption observed yet, travel (the programme's own cash value of a point) is used.
    """
    doc = {**DEFAULT_LIABILITY, **dict(liability or {})}
    breakage = _rate(doc.get("breakage"), "liability.breakage")
    if breakage >= 1:
        raise ProgrammeError("liability.breakage must be below 1", "liability.breakage")
    catalogue_default = _rate(doc.get("catalogue_eur_per_point"), "liability.catalogue_eur_per_point")
    items = {
        str(k): _rate(v, f"liability.catalogue_item_cost_eur.{k}")
        for k, v in dict(doc.get("catalogue_item_cost_eur") or {}).items()
    }
    transfers = {
        str(k): _rate(v, f"liability.transfer_eur_per_point.{k}")
        for k, v in dict(doc.get("transfer_eur_per_point") or {}).items()
    }
    ecode = _rate(doc.get("ecode_face_eur_per_point"), "liability.ecode_face_eur_per_point")
    by_kind: dict[str, dict[str, Decimal]] = {}
    for line in lines:
        if line.points <= 0:
            continue
        if line.kind == "catalogue":
            item_cost = items.get(line.key or "")
            eur = item_cost * line.quantity if item_cost is not None else catalogue_default * line.points
        elif line.kind == "transfer":
            eur = transfers.get(line.key or "", transfers.get("default", catalogue_default)) * line.points
        elif line.kind == "travel":
            eur = euro_per_point * line.points
        else:
            eur = ecode * line.points
        entry = by_kind.setdefault(line.kind, {"points": Decimal(0), "eur": Decimal(0)})
        entry["points"] += line.points
        entry["eur"] += eur
    redeemed = sum((e["points"] for e in by_kind.values()), Decimal(0))
    spent = sum((e["eur"] for e in by_kind.values()), Decimal(0))
    per_redeemed = spent / redeemed if redeemed > 0 else euro_per_point
    per_point = (1 - breakage) * per_redeemed
    return {
        "eur_per_point": float(per_point),
        "eur_per_redeemed_point": float(per_redeemed),
        "breakage": float(breakage),
        "redeemed_points": int(redeemed),
        "mix": {
            kind: {
                "share": float(e["points"] / redeemed) if redeemed > 0 else None,
                "points": int(e["points"]),
                "eur_per_point": float(e["eur"] / e["points"]),
            }
            for kind, e in sorted(by_kind.items())
        },
        "basis": "observed redemption mix" if redeemed > 0 else "no redemption yet: travel value of a point",
    }


# --- checks of an earn's input (raise the API's 422) -------------------------------------------


class HasProduct(Protocol):
    """A member as the earn rules see it: only its card product."""

    @property
    def product(self) -> str: ...


# Above this an amount is a typing error, and its minor units or points would overflow a 64-bit column.
MAX_AMOUNT = Decimal(10) ** 12


def parse_amount_field(text: str, currency: str, field: str = "amount") -> Decimal:
    try:
        value = parse_amount(text, currency)
    except AmountError as error:
        raise InvalidInput(str(error), field=field)
    if value >= MAX_AMOUNT:
        raise InvalidInput(f"amount must be below {MAX_AMOUNT:,} {currency}", field=field)
    return value


def check_currency(currency: str, prog: Programme) -> None:
    if not (len(currency) == 3 and currency.isalpha() and currency.isupper()):
        raise InvalidInput("currency must be an ISO 4217 code such as EUR", field="currency")
    if currency not in prog.fx_rates:
        raise InvalidInput(f"no exchange rate configured for {currency}", field="currency")


def product_rule(prog: Programme, member: HasProduct) -> ProductRule:
    rule = prog.products.get(member.product)
    if rule is None:
        raise InvalidInput(
            f"card product {member.product!r} has no earn rule in the programme", field="member_ref"
        )
    return rule
