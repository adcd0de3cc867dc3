"""Referral codes, as a specification: computed from the member's id and a key, read back to the same
member, and nothing else reads back. No database."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from prevenance.loyalty.rules import (
    REFERRAL_CODE_ALPHABET,
    normalise_referral_code,
    referral_code,
    referral_code_key,
    referral_code_owner,
)

KEY = referral_code_key("a secret of the deployment, long enough to be one")
MEMBER_IDS = st.integers(min_value=1, max_value=(1 << 40) - 1)


@given(MEMBER_IDS)
def test_a_code_reads_back_to_its_member(member_id: int) -> None:
    code = referral_code(member_id, key=KEY)
    assert re.fullmatch(r"[A-Z2-9]{4}-[A-Z2-9]{4}-[A-Z2-9]{4}", code)
    assert referral_code_owner(code, key=KEY) == member_id
    assert referral_code(member_id, key=KEY) == code


def test_a_code_as_typed_by_hand_is_the_same_code() -> None:
    code = referral_code(42, key=KEY)
    typed = " " + code.lower().replace("-", " ") + " "
    assert normalise_referral_code(typed) == code
    assert referral_code_owner(typed, key=KEY) == 42
    assert referral_code_owner(code.replace("-", ""), key=KEY) == 42


def test_codes_do_not_show_the_members_order() -> None:
    codes = [referral_code(i, key=KEY) for i in range(1, 6)]
    assert len({c[:4] for c in codes}) == 5  # neighbours do not share a prefix


@given(MEMBER_IDS, st.integers(min_value=8, max_value=11), st.sampled_from(REFERRAL_CODE_ALPHABET))
def test_a_code_with_a_changed_check_symbol_names_no_member(member_id: int, where: int, symbol: str) -> None:
    text = referral_code(member_id, key=KEY).replace("-", "")
    if text[where] != symbol:
        assert referral_code_owner(text[:where] + symbol + text[where + 1 :], key=KEY) is None


def test_every_code_one_typo_away_names_no_member() -> None:
    text = referral_code(42, key=KEY).replace("-", "")
    typos = [
        text[:where] + symbol + text[where + 1 :]
        for where in range(len(text))
        for symbol in REFERRAL_CODE_ALPHABET
        if symbol != text[where]
    ]
    assert len(typos) == 12 * 31
    assert [t for t in typos if referral_code_owner(t, key=KEY) is not None] == []


def test_another_key_gives_other_codes_that_the_first_key_refuses() -> None:
    other = referral_code_key("another deployment's secret, long enough as well")
    code = referral_code(7, key=other)
    assert code != referral_code(7, key=KEY)
    assert referral_code_owner(code, key=KEY) is None


@pytest.mark.parametrize(
    "text", ["", "ABCD", "ABCD-EFGH-JKL0", "ABCD-EFGH-JKLM-N", "ABCD_EFGH_JKLM", "é" * 12]
)
def test_text_that_cannot_be_a_code_names_no_member(text: str) -> None:
    assert normalise_referral_code(text) is None
    assert referral_code_owner(text, key=KEY) is None


def test_an_id_outside_the_codes_range_is_refused() -> None:
    for member_id in (0, -1, 1 << 40):
        with pytest.raises(ValueError):
            referral_code(member_id, key=KEY)
