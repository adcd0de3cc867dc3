"""A message whose date lies outside the accepted window, or with a NUL character in a field, is
rejected alone, naming the field, as ``POST /v1/transactions`` refuses the body: its neighbours in
the batch commit, and nothing of it is written (on PostgreSQL a NUL used to fail the statement)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from sqlalchemy import Engine, select

from prevenance.common.clock import FrozenClock
from prevenance.db import read_session
from prevenance.loyalty.tables import CardTransaction
from prevenance.stream.consumer import ACCEPTED, REJECTED, apply_batch
from tests.conftest import tx_body
from tests.integration.stream.conftest import add_members


def _stored(engine: Engine) -> set[str]:
    with read_session(engine) as session:
        return set(session.scalars(select(CardTransaction.id)))


BAD: list[tuple[str, dict[str, Any], str]] = [
    ("year-1", {"occurred_at": "0001-01-01T00:00:00Z"}, "occurred_at"),
    ("year-9999", {"occurred_at": "9999-12-31T23:59:59-05:00"}, "occurred_at"),
    ("before-2000", {"occurred_at": "1999-12-31T23:59:59Z"}, "occurred_at"),
    ("nul-merchant", {"merchant": "Libr\x00airie"}, "merchant"),
    ("nul-ref", {"member_ref": "M\x001"}, "member_ref"),
]


@pytest.mark.parametrize(("name", "change", "field"), BAD, ids=[b[0] for b in BAD])
def test_a_bad_message_is_rejected_alone_naming_the_field(
    engine: Engine, clock: FrozenClock, name: str, change: dict[str, Any], field: str
) -> None:
    add_members(engine, clock, ["M1"])
    batch = [
        orjson.dumps(tx_body("T1", "M1", "10.00")),
        orjson.dumps({**tx_body("BAD", "M1", "5.00"), **change}),
        orjson.dumps(tx_body("T2", "M1", "20.00")),
    ]
    results = apply_batch(engine, clock, batch)
    assert [r.status for r in results] == [ACCEPTED, REJECTED, ACCEPTED]
    problem = results[1].body
    assert problem["status"] == 422 and problem["field"] == field, problem
    assert problem["type"].endswith("/invalid-input")
    assert _stored(engine) == {"T1", "T2"}


def test_a_nul_in_the_id_is_rejected_not_stored(engine: Engine, clock: FrozenClock) -> None:
    add_members(engine, clock, ["M1"])
    results = apply_batch(engine, clock, [orjson.dumps(tx_body("T\x001", "M1", "10.00"))])
    assert results[0].status == REJECTED and results[0].body["field"] == "id"
    assert "\x00" not in orjson.dumps(results[0].body).decode()  # the problem itself is printable
    assert _stored(engine) == set()


def test_an_escaped_backslash_is_no_nul(engine: Engine, clock: FrozenClock) -> None:
    """``"\\\\u0000"`` in JSON is a backslash followed by ``u0000``: a legitimate merchant name."""
    add_members(engine, clock, ["M1"])
    results = apply_batch(engine, clock, [orjson.dumps(tx_body("T1", "M1", "10.00", merchant="a\\u0000b"))])
    assert results[0].status == ACCEPTED, results[0].body


def test_a_deeply_nested_message_is_rejected_alone_not_retried_for_ever(
    engine: Engine, clock: FrozenClock
) -> None:
    """The NUL search walks the decoded message recursively: a NUL nested a thousand arrays deep (a
    1 KiB message) raised ``RecursionError``, which the consumer takes for a transient failure, so
    the message was nakked and redelivered for ever and failed each batch it arrived in. Such a
    message is rejected alone, like any other that can never be accepted."""
    add_members(engine, clock, ["M1"])
    deep_nul = b'{"id": "DEEP", "x": ' + b"[" * 1000 + b'"\\u0000"' + b"]" * 1000 + b"}"
    deep = b'{"id": "DEEP2", "x": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    batch = [
        orjson.dumps(tx_body("T1", "M1", "10.00")),
        deep_nul,
        deep,
        orjson.dumps(tx_body("T2", "M1", "20.00")),
    ]
    results = apply_batch(engine, clock, batch)
    assert [r.status for r in results] == [ACCEPTED, REJECTED, REJECTED, ACCEPTED]
    assert results[1].body["status"] == 422 and results[1].body["field"] == "body", results[1].body
    assert results[2].body["status"] == 422, results[2].body
    assert _stored(engine) == {"T1", "T2"}
