"""Rules of the customer record: what a valid member looks like. No I/O."""

from __future__ import annotations

import re
from functools import lru_cache

LANGUAGES = ("fr", "en")
# Babel's territory codes that are not officially assigned ISO 3166-1 alpha-2 codes.
_NOT_ISO = {"AC", "CP", "CQ", "DG", "EA", "EU", "EZ", "IC", "QO", "TA", "UN", "XA", "XB", "XK", "ZZ"}
# Exceptionally reserved code in common use for the United Kingdom; stored as GB.
COUNTRY_ALIASES = {"UK": "GB"}
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_REF = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")


@lru_cache(maxsize=1)
def iso_countries() -> frozenset[str]:
    """The officially assigned ISO 3166-1 alpha-2 codes (from CLDR via Babel)."""
    from babel import Locale

    codes = {str(code) for code in Locale("en").territories if isinstance(code, str) and len(code) == 2}
    codes = {code for code in codes if code.isalpha()}
    return frozenset(codes - _NOT_ISO)


def normalise_country(code: str) -> str | None:
    """The ISO code for what the caller sent, or None when it is no country."""
    upper = code.strip().upper()
    upper = COUNTRY_ALIASES.get(upper, upper)
    return upper if upper in iso_countries() else None


def is_valid_email(address: str) -> bool:
    """A pragmatic syntactic check (deliverability is the mail relay's business)."""
    return bool(_EMAIL.match(address)) and len(address) <= 254


def is_valid_ref(ref: str) -> bool:
    """Member references are the issuer's own ids: 1–64 URL-safe characters."""
    return bool(_REF.match(ref))
