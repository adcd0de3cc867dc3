"""Phone rules of the customer record: E.164 normalisation and the agent's search prefixes."""

from __future__ import annotations

import pytest

from prevenance.customers.rules import normalise_phone, phone_search_prefixes


@pytest.mark.parametrize(
    ("raw", "country", "expected"),
    [
        ("06 12 34 56 78", "FR", "+33612345678"),
        ("+33 (0)6 12 34 56 78", "GB", "+33612345678"),
        ("0033612345678", "DE", "+33612345678"),
        ("07400 123456", "GB", "+447400123456"),
        ("312 345 6789", "IT", "+393123456789"),
        ("612 34 56 78", "ES", "+34612345678"),
        ("12", "FR", None),
        ("06 12", "FR", None),
        ("hello", "FR", None),
        ("+999 123456", "FR", None),
    ],
)
def test_numbers_are_read_as_written_and_stored_in_e164(raw: str, country: str, expected: str | None) -> None:
    assert normalise_phone(raw, country=country) == expected


def test_an_international_entry_is_one_prefix() -> None:
    assert phone_search_prefixes("+33 6 12", countries=("FR", "GB")) == ["+33612"]
    assert phone_search_prefixes("0044 7400", countries=("FR",)) == ["+447400"]


def test_a_national_entry_is_tried_in_each_country_italy_keeping_its_zero() -> None:
    assert phone_search_prefixes("06 12", countries=("FR", "GB", "IT")) == ["+33612", "+390612", "+44612"]


def test_a_name_or_a_too_short_entry_is_no_phone() -> None:
    assert phone_search_prefixes("Martin", countries=("FR",)) == []
    assert phone_search_prefixes("061", countries=("FR",)) == []
    assert phone_search_prefixes("m3", countries=("FR",)) == []
