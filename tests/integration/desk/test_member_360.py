"""``GET /v1/members/{ref}/360``: everything the front line needs, in one call."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, event

from prevenance.common.auth import create_key
from prevenance.common.clock import FrozenClock
from prevenance.db import unit_of_work
from prevenance.voice import service as voice
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
    assert mine.json()["view"] == "member"
    assert [c["id"] for c in mine.json()["last_contacts"]] == ["C1"]
    assert "notes" not in mine.json()["last_contacts"][0]
    assert api.client.get("/v1/members/M2/360", headers=headers).status_code == 403
    assert api.get("/v1/members/NOBODY/360", role="agent").status_code == 404
    assert api.client.get("/v1/members/M1/360").status_code == 401


# What only staff see on the 360, part by part: absent from a member's view, present for every staff role.
STAFF_ONLY = {
    "": {"tastes"},
    "contact_preference": {"updated_by"},
    "open_cases": {"owner", "contacts"},
    "last_contacts": {"notes", "agent"},
    "communications": {"source"},
    "incidents": {"declared_by", "affected", "affects", "declared_at"},
    "concierge_requests": {"partner", "cost", "solution", "requested_by"},
    "surveys": {"agent", "source"},
}


def _staff_only_keys(view: dict[str, Any]) -> set[str]:
    """The staff-only keys present anywhere in a 360 answer, as ``part.key``."""
    found = {f".{key}" for key in STAFF_ONLY[""] if key in view}
    for part, keys in STAFF_ONLY.items():
        if not part:
            continue
        items = view[part] if isinstance(view[part], list) else [view[part]]
        assert items, f"the world should fill {part}"
        found |= {f"{part}.{key}" for item in items for key in keys if key in item}
    return found


NOTE = "Sounded upset, VIP handling"


def premium_member_with_a_bit_of_everything(api: Api, engine: Engine, clock: FrozenClock) -> None:
    """M1 on a platinum card with tastes on file, a solved concierge request (bocuse, 120.00), a stated
    contact preference, a pending contact with a staff note (``NOTE``), a communication, an active
    incident affecting them and one imported survey answer."""
    api.put("/v1/members/M1", member_body(product="platinum"))
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
    api.post("/v1/concierge-requests/Q1/status", {"status": "in_progress"}, role="concierge")
    solved = {"status": "solved", "partner": "bocuse", "cost": "120.00", "solution": "Window table at Bocuse"}
    assert api.post("/v1/concierge-requests/Q1/status", solved, role="concierge").status_code == 200
    preference = {"mode": "has_time", "preferred_channel": "phone"}
    assert api.put("/v1/members/M1/contact-preference", preference, role="agent").status_code == 200
    assert (
        api.post("/v1/contacts", contact_body("C1", outcome="pending", notes=NOTE), role="agent").status_code
        == 201
    )
    assert api.post("/v1/communications", communication("N1"), role="integrator").status_code == 201
    incident = {
        "id": "INC1",
        "title_fr": "Paiements refusés",
        "title_en": "Payments declined",
        "body_fr": "Certains paiements sont refusés.",
        "body_en": "Some payments are declined.",
        "since": "2025-12-31T08:00:00Z",
        "affects": {"products": ["platinum"], "countries": ["FR"]},
    }
    assert api.post("/v1/incidents", incident, role="agent").status_code == 201
    with unit_of_work(engine) as session:
        voice.import_answers(
            session,
            rows=[
                {
                    "id": "S1",
                    "member_ref": "M1",
                    "answered_at": "2026-01-01T00:00:00Z",
                    "channel": "phone",
                    "agent": "alice",
                    "team": "paris-1",
                    "reason": "rewards.balance",
                    "recommend": "9",
                    "interaction": "5",
                    "comment": "Très bien",
                    "suggestion": "",
                    "language": "fr",
                }
            ],
            now=clock.now(),
        )


def test_a_member_key_sees_none_of_the_staff_only_fields_and_every_staff_role_sees_them(
    api: Api, engine: Engine, clock: FrozenClock
) -> None:
    premium_member_with_a_bit_of_everything(api, engine, clock)
    with unit_of_work(engine) as session:
        _, secret = create_key(session, role="member", name="m1", member_ref="M1", now=clock.now())
    note = NOTE

    mine = api.client.get("/v1/members/M1/360", headers={"Authorization": f"Bearer {secret}"})
    assert mine.status_code == 200, mine.text
    assert mine.json()["view"] == "member"
    assert _staff_only_keys(mine.json()) == set()
    for secret_text in ("Allergic", note, "bocuse", "Bocuse", "120.00"):
        assert secret_text not in mine.text, secret_text
    assert mine.json()["concierge_requests"][0]["title"] == "Table for two"  # their own request, all the same
    assert mine.json()["surveys"][0]["comment"] == "Très bien"  # and what they wrote themselves

    every = {f"{part}.{key}" if part else f".{key}" for part, keys in STAFF_ONLY.items() for key in keys}
    for role in ("admin", "marketing", "supervisor", "agent", "concierge", "integrator"):
        staff = api.get("/v1/members/M1/360", role=role)
        assert staff.status_code == 200, staff.text
        assert staff.json()["view"] == "staff"
        assert _staff_only_keys(staff.json()) == every, role
        assert staff.json()["tastes"]["notes"] == "Allergic to nuts"
        assert staff.json()["concierge_requests"][0]["cost"] == "120.00"


def test_the_360_looks_its_member_up_by_reference_once(api: Api, engine: Engine) -> None:
    # Every service the 360 asks resolves the member's reference: the session answers all but the
    # first from its identity map, so the view does not pay one query per service. (The access log,
    # written afterwards in its own transaction, looks up the member's id alone.)
    api.put("/v1/members/M1", member_body(product="platinum"))
    api.post("/v1/transactions", tx_body("T1", "M1", "100.00"), role="integrator")
    lookups: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        flat = " ".join(statement.lower().split())
        if flat.startswith("select members.id, members.ref,") and "where members.ref =" in flat:
            lookups.append(flat)

    event.listen(engine, "before_cursor_execute", count)
    try:
        assert api.get("/v1/members/M1/360", role="agent").status_code == 200
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert len(lookups) == 1, lookups
