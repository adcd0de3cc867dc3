"""``GET /v1/members/{ref}/360``: everything the front line needs, in one call."""

from __future__ import annotations

from sqlalchemy import Engine

from prevenance.common.auth import create_key
from prevenance.common.clock import FrozenClock
from prevenance.db import unit_of_work
from tests.conftest import Api, member_body, tx_body
from tests.integration.desk.test_communications_and_preferences import communication
from tests.integration.desk.test_contacts_contract import contact_body


def test_the_360_shows_the_whole_customer(api: Api) -> None:
    api.put("/v1/members/M1", member_body(product="platinum", city="Lyon"))
    api.post("/v1/transactions", tx_body("T1", "M1", "100.00"), role="integrator")
    tastes = {"notes": "Allergic to nuts", "likes": ["jazz"], "dislikes": []}
    assert api.put("/v1/members/M1/tastes", tastes, role="concierge").status_code == 200
    request = {
        "id": "Q1",
        "category": "restaurant",
        "title": "Table for two",
        "city": "Lyon",
        "country": "FR",
        "due_at": "2026-01-02T20:00:00Z",
    }
    assert api.post("/v1/members/M1/concierge-requests", request, role="concierge").status_code == 201
    api.put(
        "/v1/members/M1/contact-preference", {"mode": "has_time", "preferred_channel": "phone"}, role="agent"
    )
    api.post("/v1/contacts", contact_body("C1", outcome="pending"), role="agent")
    api.post("/v1/contacts", contact_body("C2", reason="rewards.balance"), role="agent")
    api.post("/v1/communications", communication("N1"), role="integrator")
    api.post("/v1/members/M1/card-replacements", {"id": "R1", "city": "Paris", "country": "FR"}, role="agent")
    response = api.get("/v1/members/M1/360", role="agent")
    assert response.status_code == 200, response.text
    view = response.json()
    assert view["profile"]["tier"] == "platinum" and view["profile"]["premium"] is True
    assert view["contact_preference"]["mode"] == "has_time"
    assert view["balance"]["points"] > 0 and view["last_movements"][0]["reference"] == "T1"
    assert [c["first_contact_id"] for c in view["open_cases"]] == ["C1"]
    assert {c["id"] for c in view["last_contacts"]} == {"C1", "C2"}
    assert view["last_contacts"][0]["notes"]
    assert [c["id"] for c in view["communications"]] == ["N1"]
    assert [o["id"] for o in view["open_card_replacements"]] == ["R1"]
    assert view["profile"]["city"] == "Lyon"
    assert [r["id"] for r in view["concierge_requests"]] == ["Q1"]
    assert view["tastes"]["notes"] == "Allergic to nuts"
    api.put("/v1/members/G1", member_body(product="gold"))
    gold = api.get("/v1/members/G1/360", role="agent").json()
    assert (gold["concierge_requests"], gold["tastes"]) == ([], None)


def test_a_member_reads_only_their_own_360_without_agent_notes(
    api: Api, engine: Engine, clock: FrozenClock
) -> None:
    api.put("/v1/members/M1", member_body())
    api.put("/v1/members/M2", member_body())
    api.post("/v1/contacts", contact_body("C1"), role="agent")
    with unit_of_work(engine) as session:
        _, secret = create_key(session, role="member", name="m1", member_ref="M1", now=clock.now())
    headers = {"Authorization": f"Bearer {secret}"}
    mine = api.client.get("/v1/members/M1/360", headers=headers)
    assert mine.status_code == 200, mine.text
    assert mine.json()["last_contacts"][0]["notes"] == ""
    assert api.client.get("/v1/members/M2/360", headers=headers).status_code == 403
    assert api.get("/v1/members/NOBODY/360", role="agent").status_code == 404
    assert api.client.get("/v1/members/M1/360").status_code == 401
