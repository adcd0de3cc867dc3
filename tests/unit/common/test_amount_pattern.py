"""The amount pattern published in the OpenAPI document says exactly what the API accepts for a
currency with three decimal digits (the most any allows): a client that follows it is never refused
for the shape of an amount, and one the pattern refuses is refused by the API too."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from prevenance.common.money import AMOUNT_PATTERN, AmountError, parse_amount

PATTERN = re.compile(AMOUNT_PATTERN)
CEILING = Decimal(10) ** 12  # loyalty.service.MAX_AMOUNT


def _accepted(text: str) -> bool:
    try:
        return parse_amount(text, "KWD") < CEILING
    except AmountError:
        return False


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ("42.50", True),
        ("+5", True),
        ("0.001", True),
        ("007.5", True),
        ("999999999999.999", True),
        ("1000000000000", False),
        ("0", False),
        ("0.000", False),
        ("-1", False),
        (".5", False),
        ("5.", False),
        ("1e3", False),
        ("1.2345", False),
        (" 1", False),
        ("١٢", False),
    ],
)
def test_examples_agree_with_the_parser(text: str, ok: bool) -> None:
    assert bool(PATTERN.match(text)) is ok
    assert _accepted(text) is ok


@given(st.from_regex(PATTERN, fullmatch=True))
def test_every_amount_the_pattern_allows_is_accepted(text: str) -> None:
    assert _accepted(text), text


@given(st.text(alphabet="0123456789.+-e ", max_size=18))
def test_the_pattern_allows_every_amount_accepted(text: str) -> None:
    assert bool(PATTERN.match(text)) is _accepted(text), text
