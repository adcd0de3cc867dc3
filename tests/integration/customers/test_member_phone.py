"""A member's phone number: optional, read as the member writes it (international or national in
their country), stored and returned in E.164; a wrong number is refused naming the field and
writes nothing; the agent's search finds the member by it, the 360 shows it, erasure removes it."""

from __future__ import annotations

from sqlalchemy import Engine, select

from prevenance.customers.service import search_members
from prevenance.customers.tables import Member
from prevenance.db import read_session
from tests.conftest import Api, member_body


def test_a_national_number_is_stored_in_e164_and_returned(api: Api) -> None:
    created = api.put("/v1/members/P1", member_body(phone="06 12 34 56 78"))
    assert created.status_code == 201, created.text
    assert created.json()["phone"] == "+33612345678"
    assert api.get("/v1/members/P1").json()["phone"] == "+33612345678"
    british = api.put("/v1/members/P2", member_body(country="GB", phone="07400 123456"))
    assert british.json()["phone"] == "+447400123456"
    international = api.put("/v1/members/P3", member_body(phone="0049 1512 3456789"))
    assert international.json()["phone"] == "+4915123456789"
    assert api.put("/v1/members/P4", member_body()).json()["phone"] is None


def test_a_wrong_number_is_refused_naming_the_field_and_writes_nothing(api: Api, engine: Engine) -> None:
    for wrong in ("12", "not a number", "+33 6 12"):
        refused = api.put("/v1/members/P9", member_body(phone=wrong))
        assert refused.status_code == 422, refused.text
        assert refused.headers["content-type"].startswith("application/problem+json")
        assert refused.json()["field"] == "phone"
    with read_session(engine) as session:
        assert session.scalar(select(Member).where(Member.ref == "P9")) is None


def test_replacing_the_member_without_a_phone_clears_it(api: Api) -> None:
    api.put("/v1/members/P1", member_body(phone="+33 6 12 34 56 78"))
    assert api.put("/v1/members/P1", member_body()).json()["phone"] is None


def test_the_agent_finds_the_caller_by_the_number_as_typed(api: Api, engine: Engine) -> None:
    api.put("/v1/members/P1", member_body(name="Camille Martin", phone="06 12 34 56 78"))
    api.put("/v1/members/P2", member_body(name="Jane Smith", country="GB", phone="+44 7400 123456"))
    with read_session(engine) as session:
        assert [r["ref"] for r in search_members(session, q="06 12 34")] == ["P1"]
        assert [r["ref"] for r in search_members(session, q="+33 6 12 34")] == ["P1"]
        assert [r["ref"] for r in search_members(session, q="0033612")] == ["P1"]
        assert [r["ref"] for r in search_members(session, q="07400 12")] == ["P2"]
        assert search_members(session, q="06 99 99") == []
        found = search_members(session, q="+44 7400")[0]
        assert found["phone"] == "+447400123456"


def test_the_360_shows_the_phone_and_erasure_removes_it(api: Api) -> None:
    api.put("/v1/members/P1", member_body(phone="06 12 34 56 78"))
    assert api.get("/v1/members/P1/360").json()["profile"]["phone"] == "+33612345678"
    erased = api.post("/v1/members/P1/erase", {}, role="admin")
    assert erased.status_code == 200, erased.text
    alias = erased.json()["member_ref"]
    assert api.get(f"/v1/members/{alias}").json()["phone"] is None
