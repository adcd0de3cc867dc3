"""Money is ``Decimal`` from the wire to the database; points are ``int``.

Amounts arrive as decimal strings; a float never touches them. The number of minor digits a
currency allows comes from ISO 4217 (JPY has none, EUR two, KWD three).
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

# ISO 4217 minor units of the currencies a European issuer meets; others default to 2.
MINOR_UNITS: dict[str, int] = {
    "BHD": 3,
    "CLP": 0,
    "ISK": 0,
    "JOD": 3,
    "JPY": 0,
    "KRW": 0,
    "KWD": 3,
    "OMR": 3,
    "TND": 3,
    "UGX": 0,
    "VND": 0,
    "XAF": 0,
    "XOF": 0,
    "XPF": 0,
    "HUF": 2,
    "PYG": 0,
}


_PLAIN_DECIMAL = re.compile(r"^[+-]?[0-9]+(\.[0-9]+)?$", re.ASCII)
# Digits, an optional fraction, nothing else: the common case, which passes every textual check
# below at once (its number of decimal digits is the fraction's length).
_UNSIGNED_DECIMAL = re.compile(r"[0-9]+(?:\.([0-9]+))?", re.ASCII)


# What ``parse_amount`` and the 10^12 ceiling accept, written for the OpenAPI document so a client
# learns the rule from the schema: a positive plain decimal below 10^12 with at most three decimal
# digits (the most any currency allows; the currency's own limit is checked at parse time).
AMOUNT_PATTERN = r"^\+?(0*[1-9][0-9]{0,11}(\.[0-9]{1,3})?|0+\.([1-9][0-9]{0,2}|0[1-9][0-9]?|00[1-9]))$"
CURRENCY_PATTERN = r"^[A-Z]{3}$"


class AmountError(ValueError):
    """The amount cannot be accepted; the message says why."""


def minor_units(currency: str) -> int:
    """How many decimal digits the currency allows (ISO 4217)."""
    return MINOR_UNITS.get(currency, 2)


def parse_amount(text: str, currency: str) -> Decimal:
    """Parse a positive decimal string with at most the currency's minor digits."""
    if not isinstance(text, str):
        raise AmountError('amount must be a decimal string, e.g. "12.50"')
    plain = _UNSIGNED_DECIMAL.fullmatch(text)
    if plain is not None:
        value = Decimal(text)
        fraction = plain.group(1)
        digits = len(fraction) if fraction else 0
        if value > 0 and digits <= minor_units(currency):
            return value
        # zero, or too many decimal digits: the checks below say which, as they always have
    stripped = text.strip()
    if not stripped or stripped != text or any(c in stripped for c in "eE_ "):
        raise AmountError('amount must be a plain decimal string, e.g. "12.50"')
    if not _PLAIN_DECIMAL.match(stripped):
        raise AmountError("amount is not a decimal number")
    try:
        value = Decimal(stripped)
    except InvalidOperation:
        raise AmountError("amount is not a decimal number")
    if not value.is_finite():
        raise AmountError("amount must be finite")
    if value <= 0:
        raise AmountError("amount must be positive")
    exponent = value.as_tuple().exponent
    assert isinstance(exponent, int)
    digits = max(0, -exponent)
    if digits > minor_units(currency):
        raise AmountError(f"{currency} allows at most {minor_units(currency)} decimal digits")
    return value


def format_amount(value: Decimal, currency: str) -> str:
    """Render an amount with exactly the currency's minor digits."""
    places = minor_units(currency)
    quantum = Decimal(1).scaleb(-places)
    return str(value.quantize(quantum))
