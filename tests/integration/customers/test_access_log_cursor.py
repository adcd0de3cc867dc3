"""The access log's cursor (``before_id``) is an id of the log: a forged one larger than any id the
database can hold is refused as a 422 problem naming the field, not a 500 (SQLite cannot bind an
integer above 2^63-1, PostgreSQL refuses it as out of BIGINT range)."""

from __future__ import annotations

import pytest

from tests.conftest import Api, member_body


@pytest.mark.parametrize("cursor", [str(2**63), "99999999999999999999", "1" + "0" * 400])
def test_a_cursor_beyond_any_id_is_refused_naming_the_field(api: Api, cursor: str) -> None:
    api.put("/v1/members/M1", member_body(), role="agent")
    refused = api.get(f"/v1/members/M1/access-log?before_id={cursor}", role="supervisor")
    assert refused.status_code == 422, refused.text
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert refused.json()["field"] == "before_id"


def test_the_largest_cursor_still_pages_from_the_newest(api: Api) -> None:
    api.put("/v1/members/M1", member_body(), role="agent")
    page = api.get(f"/v1/members/M1/access-log?before_id={2**63 - 1}", role="supervisor")
    assert page.status_code == 200, page.text
    assert [entry["route"] for entry in page.json()] == ["/v1/members/{ref}"]
