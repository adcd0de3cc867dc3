"""A movements cursor is opaque but not trusted: whatever a caller makes of it, the answer is a 422
naming ``cursor`` or a page of the caller's own member, never a 500 and never another member's
postings."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from sqlalchemy import Engine

from prevenance.common.clock import FrozenClock
from tests.conftest import Api, member_body, tx_body
from tests.integration.offers.conftest import member_headers

PROBLEM = "application/problem+json"


def _cursor(text: str) -> str:
    """A cursor as the API writes one (URL-safe base64 without padding) around any text."""
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _member_with_movements(api: Api, ref: str, count: int) -> None:
    assert api.put(f"/v1/members/{ref}", member_body()).status_code in (200, 201)
    for i in range(count):
        earned = api.post("/v1/transactions", tx_body(f"{ref}-t{i}", ref, f"{10 + i}.00"), role="integrator")
        assert earned.status_code == 201, earned.text


@pytest.mark.parametrize(
    "text",
    [
        "p:9223372036854775808",  # one past the largest BIGINT: an overflow in the database
        "p:" + "9" * 30,
        "p:-9223372036854775809",
        "p:1_0",  # what int() accepts but the API never writes
        "p: 3",
        "p:+3",
        "p:\u0663",  # an Arabic-Indic digit three
        "p:",
        "q:3",
    ],
)
def test_a_forged_cursor_is_422_naming_it_never_a_500(api: Api, text: str) -> None:
    _member_with_movements(api, "M1", 3)
    response = api.get("/v1/members/M1/movements", params={"cursor": _cursor(text)})
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    assert response.json()["field"] == "cursor"


def test_another_members_cursor_pages_only_the_callers_own_movements(
    api: Api, engine: Engine, clock: FrozenClock
) -> None:
    """The cursor names a posting id, not a member: used by another member's key, it is only a
    bound on that member's own postings."""
    _member_with_movements(api, "M1", 3)
    _member_with_movements(api, "M2", 3)
    theirs = api.get("/v1/members/M2/movements", params={"limit": 1}).json()
    assert theirs["next_cursor"] is not None
    headers = member_headers(engine, clock, "M1")
    page: Any = api.client.get(
        "/v1/members/M1/movements", params={"cursor": theirs["next_cursor"]}, headers=headers
    )
    assert page.status_code == 200, page.text
    assert page.json()["items"] and {m["reference"][:2] for m in page.json()["items"]} == {"M1"}
    refused = api.client.get(
        "/v1/members/M2/movements", params={"cursor": theirs["next_cursor"]}, headers=headers
    )
    assert refused.status_code == 403
