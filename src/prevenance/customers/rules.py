"""Rules of the customer record: what a valid member looks like. No I/O."""

from __future__ import annotations

import re
from functools import lru_cache

from prevenance.common.text import is_mail_address

LANGUAGES = ("fr", "en")
# Babel's territory codes that are not officially assigned ISO 3166-1 alpha-2 codes.
_NOT_ISO = {"AC", "CP", "CQ", "DG", "EA", "EU", "EZ", "IC", "QO", "TA", "UN", "XA", "XB", "XK", "ZZ"}
# Exceptionally reserved code in common use for the United Kingdom; stored as GB.
COUNTRY_ALIASES = {"UK": "GB"}
REF_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$"
_REF = re.compile(REF_PATTERN)


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
    """A pragmatic syntactic check: one plain address, safe in a ``To:`` header (deliverability is
    the mail relay's business)."""
    return is_mail_address(address)


ERASED_PREFIX = "erased-"  # the ref of an erased member is this prefix and a keyed digest


def is_erased_ref(ref: str) -> bool:
    """True for the pseudonymous ref an erasure gives a member (nothing is ever sent to them)."""
    return ref.startswith(ERASED_PREFIX)


def is_valid_ref(ref: str) -> bool:
    """Member references are the issuer's own ids: 1–64 URL-safe characters."""
    return bool(_REF.match(ref))


def normalise_phone(raw: str, *, country: str) -> str | None:
    """The number in E.164 (``+33612345678``), read as the member would write it: international
    (``+44 7700 900123``, ``0044…``) or national in the member's country (``06 12 34 56 78`` for a
    French member); None when it is no valid number (libphonenumber's metadata decides)."""
    import phonenumbers

    text = raw.strip()
    if text.startswith("00"):
        text = "+" + text[2:]
    try:
        number = phonenumbers.parse(text, country)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return str(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))


def phone_search_prefixes(typed: str, *, countries: tuple[str, ...]) -> list[str]:
    """The E.164 prefixes an agent's partial phone entry may stand for: as typed when it is
    international (``+33 6 12`` or ``0033 6 12`` → ``+33612``), else national in each of
    ``countries`` (``06 12`` → ``+33612`` for FR, ``+44612``… for GB, Italy keeping its 0).
    Empty when the entry is not a phone number (letters, or fewer than 4 digits)."""
    import phonenumbers

    text = typed.strip()
    if not re.fullmatch(r"\+?[0-9 ().\-/]+", text):
        return []
    digits = re.sub(r"\D", "", text)
    if len(digits) < 4:
        return []
    if text.startswith("+"):
        return ["+" + digits]
    if digits.startswith("00"):
        return ["+" + digits[2:]]
    prefixes: list[str] = []
    for country in countries:
        code = phonenumbers.country_code_for_region(country)
        if not code:
            continue
        national = digits[1:] if digits.startswith("0") and country != "IT" else digits
        prefixes.append(f"+{code}{national}")
    if not digits.startswith("0"):
        prefixes.append("+" + digits)  # an international number typed without its +
    return sorted(set(prefixes))
