"""Reading settlement files and the shortcuts the batch ingest takes, held equal to the originals."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from prevenance.common import money
from prevenance.loyalty import earn_rows, ingest
from prevenance.loyalty.service import TransactionInput

texts = st.text(min_size=1, max_size=30)
moments = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.none() | st.timezones()
)


@given(
    tx_id=texts,
    member_ref=texts,
    amount=st.decimals(min_value=0, max_value=10**9, places=2).map(str),
    currency=st.sampled_from(["EUR", "GBP", "JPY"]),
    merchant=texts,
    category=texts,
    occurred_at=moments,
)
def test_fingerprint_shortcut_equals_the_service_fingerprint(
    tx_id: str,
    member_ref: str,
    amount: str,
    currency: str,
    merchant: str,
    category: str,
    occurred_at: datetime,
) -> None:
    tx = TransactionInput(tx_id, member_ref, amount, currency, merchant, category, occurred_at)
    assert ingest.transaction_fingerprint(tx) == tx.fingerprint()


@given(st.dictionaries(st.text(max_size=12), st.text(max_size=30) | st.integers(-(10**18), 10**18)))
def test_json_text_equals_json_dumps(value: dict[str, object]) -> None:
    assert ingest.json_text(value) == json.dumps(value)


@given(
    tx_id=texts,
    member_ref=texts,
    merchant=texts,
    category=texts,
    unit=st.sampled_from(["points", "miles"]),
    units=st.integers(0, 10**12),
    balance=st.integers(-(10**15), 10**15),
    occurred_at=st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1)),
)
def test_earn_texts_equal_json_dumps_of_the_answer_and_the_payload(
    tx_id: str,
    member_ref: str,
    merchant: str,
    category: str,
    unit: str,
    units: int,
    balance: int,
    occurred_at: datetime,
) -> None:
    moment = occurred_at.replace(tzinfo=UTC)
    tx = TransactionInput(tx_id, member_ref, "1", "EUR", merchant, category, moment)
    body = {"id": tx_id, "member_ref": member_ref, "points_earned": units, "unit": unit, "balance": balance}
    payload = {**body, "category": category, "merchant": merchant, "occurred_at": moment.isoformat()}
    texts_ = earn_rows.earn_texts(tx, member_ref, units, json.dumps(unit), balance, moment)
    assert texts_ == (json.dumps(body), json.dumps(payload))


@given(
    text=st.text(alphabet="0123456789.+-eE_ ", min_size=1, max_size=14),
    currency=st.sampled_from(["EUR", "JPY", "KWD"]),
)
def test_plain_amounts_parse_as_the_full_checks_parse_them(text: str, currency: str) -> None:
    """The one-match path of ``parse_amount`` answers what the step-by-step checks answer."""
    outcome: object
    try:
        outcome = money.parse_amount(text, currency)
    except money.AmountError as error:
        outcome = str(error)
    expected: object
    try:
        expected = _reference_parse_amount(text, currency)
    except money.AmountError as error:
        expected = str(error)
    assert outcome == expected


def _reference_parse_amount(text: str, currency: str) -> Decimal:
    """``parse_amount`` before its one-match path (the checks one by one)."""
    stripped = text.strip()
    if not stripped or stripped != text or any(c in stripped for c in "eE_ "):
        raise money.AmountError('amount must be a plain decimal string, e.g. "12.50"')
    if not re.match(r"^[+-]?[0-9]+(\.[0-9]+)?$", stripped, re.ASCII):
        raise money.AmountError("amount is not a decimal number")
    value = Decimal(stripped)
    if value <= 0:
        raise money.AmountError("amount must be positive")
    exponent = value.as_tuple().exponent
    assert isinstance(exponent, int)
    if max(0, -exponent) > money.minor_units(currency):
        places = money.minor_units(currency)
        raise money.AmountError(f"{currency} allows at most {places} decimal digits")
    return value


def test_json_text_falls_back_for_other_values() -> None:
    value = {"a": None, "b": True, "c": 1.5, "d": [1]}
    assert ingest.json_text(value) == json.dumps(value)


def test_default_rejects_file_sits_beside_the_input() -> None:
    assert ingest.default_rejects_path(Path("/in/settlement.csv")) == Path("/in/settlement.rejects.csv")
    assert ingest.default_rejects_path(Path("day.parquet")) == Path("day.rejects.csv")


def test_format_comes_from_the_extension() -> None:
    assert ingest.file_format(Path("a.CSV")) == "csv"
    assert ingest.file_format(Path("a.parquet")) == "parquet"
    with pytest.raises(ingest.FileError, match="unknown format"):
        ingest.file_format(Path("a.xlsx"))


def _chunks(path: Path, size: int = 100) -> list[list[ingest.Record]]:
    return list(ingest.read_chunks(path, ingest.TRANSACTION_COLUMNS, chunk_size=size))


def test_csv_records_carry_the_line_they_start_on(tmp_path: Path) -> None:
    path = tmp_path / "s.csv"
    path.write_text(
        "\ufeffcategory,id,member_ref,amount,currency,merchant,occurred_at,extra\n"
        "books,T1,M1,1.00,EUR,Shop,2026-01-01T00:00:00Z,x\n"
        "\n"
        'books,T2,M1,1.00,EUR,"two\nlines",2026-01-01T00:00:00Z,x\n'
        "books,T3,M1\n"
        "books,T4,M1,1.00,EUR,Shop,2026-01-01T00:00:00Z,x\n",
        encoding="utf-8",
    )
    records = [r for chunk in _chunks(path, size=2) for r in chunk]
    assert [(line, (values or {}).get("id"), problem) for line, values, problem in records] == [
        (2, "T1", None),
        (4, "T2", None),
        (6, None, "expected 8 fields, found 3"),
        (7, "T4", None),
    ]
    assert records[1][1] == {
        "id": "T2",
        "member_ref": "M1",
        "amount": "1.00",
        "currency": "EUR",
        "merchant": "two\nlines",
        "category": "books",
        "occurred_at": "2026-01-01T00:00:00Z",
    }
    assert ingest.count_records(path) >= 4


def test_chunks_have_the_requested_size(tmp_path: Path) -> None:
    path = tmp_path / "s.csv"
    lines = ["id,member_ref,amount,currency,merchant,category,occurred_at"]
    lines += [f"T{i},M1,1.00,EUR,Shop,books,2026-01-01T00:00:00Z" for i in range(25)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert [len(c) for c in _chunks(path, size=10)] == [10, 10, 5]
    assert ingest.count_records(path) == 25


def test_a_file_without_the_columns_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.csv"
    path.write_text("id,member_ref,amount\nT1,M1,1.00\n", encoding="utf-8")
    with pytest.raises(ingest.FileError, match="currency, merchant, category, occurred_at"):
        _chunks(path)
    empty = tmp_path / "empty.csv"
    empty.write_text("", encoding="utf-8")
    with pytest.raises(ingest.FileError, match="empty"):
        _chunks(empty)
    with pytest.raises(ingest.FileError, match="no such file"):
        _chunks(tmp_path / "none.csv")


def _row(**values: object) -> ingest.Record:
    body = {
        "id": "T1",
        "member_ref": "M1",
        "amount": "12.50",
        "currency": "EUR",
        "merchant": "Shop",
        "category": "books",
        "occurred_at": "2026-01-01T10:00:00+02:00",
    }
    body.update(values)
    return (9, body, None)


def test_parse_accepts_what_the_api_accepts() -> None:
    parsed = ingest.parse_transaction(_row())
    assert parsed.reject is None and parsed.tx is not None
    assert parsed.tx.occurred_at == datetime(2026, 1, 1, 10, tzinfo=timezone(timedelta(hours=2)))
    assert parsed.tx.occurred_at.astimezone(UTC).hour == 8
    assert parsed.fingerprint == parsed.tx.fingerprint()


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"id": ""}, "id"),
        ({"id": "X" * 201}, "id"),
        ({"member_ref": None}, "member_ref"),
        ({"amount": 12.5}, "amount"),
        ({"currency": "EURO"}, "currency"),
        ({"merchant": ""}, "merchant"),
        ({"occurred_at": "yesterday"}, "occurred_at"),
    ],
)
def test_parse_refuses_what_the_api_refuses_naming_the_field(values: dict[str, object], field: str) -> None:
    parsed = ingest.parse_transaction(_row(**values))
    assert parsed.tx is None and parsed.reject is not None
    assert (parsed.reject.line, parsed.reject.status, parsed.reject.field) == (9, 422, field)
    assert parsed.reject.reason.startswith(f"{field}: ")
