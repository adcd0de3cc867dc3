"""The text JSON columns store (``db.dumps_json``): orjson's where it can, the standard library's
where orjson refuses; either way the value reads back as it was written."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from prevenance.db import dumps_json

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(JSON_VALUES)
def test_every_json_value_reads_back_as_written(value: Any) -> None:
    assert json.loads(dumps_json(value)) == value


@pytest.mark.parametrize(
    ("value", "read_back"),
    [
        ({"big": 2**70}, {"big": 2**70}),  # beyond 64 bits: the standard library writes it
        ({"text": "\ud800"}, {"text": "\ud800"}),  # a lone surrogate (a JSON body may carry one)
        ({1: "one"}, {"1": "one"}),  # a key that is not a string is written as the library would
        ({"nul": "a\x00b", "accent": "é"}, {"nul": "a\x00b", "accent": "é"}),
    ],
)
def test_values_orjson_refuses_or_treats_apart_are_kept(value: Any, read_back: Any) -> None:
    assert json.loads(dumps_json(value)) == read_back


def test_a_value_json_cannot_hold_is_refused_as_before() -> None:
    with pytest.raises(TypeError):
        dumps_json({"what": object()})


def test_not_a_number_is_stored_as_null_not_as_a_token_json_does_not_have() -> None:
    # The standard library wrote NaN and Infinity, which are not JSON (PostgreSQL refuses them).
    assert dumps_json({"x": float("nan"), "y": float("inf")}) == '{"x":null,"y":null}'
