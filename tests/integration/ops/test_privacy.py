"""GDPR: export everything about a customer; erase them while the ledger's sums stay exactly as they
were (the audit still balances, balances and movements unchanged)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from prevenance.app import create_app
from prevenance.common.auth import create_key
from prevenance.common.clock import FrozenClock
from prevenance.db import read_session, unit_of_work
from prevenance.desk.tables import Contact
from prevenance.loyalty import ledger
from prevenance.privacy import router as privacy_router
from tests.conftest import ROLES, Api, member_body, tx_body
from tests.integration.desk.test_contacts_contract import contact_body


@pytest.fixture
def papi(engine: Engine, clock: FrozenClock) -> Iterator[Api]:
    keys: dict[str, str] = {}
    with unit_of_work(engine) as session:
        for role in ROLES:
            keys[role] = create_key(session, role=role, name=f"test-{role}", now=clock.now())[1]
    app = create_app(engine=engine, clock=clock)
    if not any(getattr(r, "path", "") == "/v1/members/{ref}/erase" for r in app.routes):
        app.include_router(privacy_router)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield Api(client=client, keys=keys)


def _customer(api: Api) -> None:
    assert api.put("/v1/members/P1", member_body(product="platinum", city="Lyon")).status_code == 201
    api.put("/v1/members/P2", member_body(email="other@example.fr"))
    api.post("/v1/transactions", tx_body("T1", "P1", "250.00"), role="integrator")
    api.post("/v1/transactions", tx_body("T2", "P1", "80.00"), role="integrator")
    api.post("/v1/transactions/T2/refunds", {"id": "RF1", "amount": "20.00"}, role="integrator")
    api.post("/v1/contacts", contact_body("C1", member_ref="P1", notes="Lives at 3 rue X, calls at night"))
    api.put("/v1/members/P1/tastes", {"notes": "Allergic to nuts", "likes": ["jazz"], "dislikes": []})
    request = {
        "id": "Q1",
        "category": "restaurant",
        "title": "Anniversary dinner for Camille",
        "city": "Lyon",
        "country": "FR",
        "due_at": "2026-01-02T20:00:00Z",
    }
    api.post("/v1/members/P1/concierge-requests", request, role="concierge")
    api.post("/v1/concierge-requests/Q1/status", {"status": "in_progress"}, role="concierge")
    solved = {"status": "solved", "partner": "bocuse", "solution": "Table by the window at Bocuse"}
    assert api.post("/v1/concierge-requests/Q1/status", solved, role="concierge").status_code == 200
    replacement = {"id": "R1", "city": "Lyon", "country": "FR", "address": "3 rue X, Lyon"}
    api.post("/v1/members/P1/card-replacements", replacement, role="agent")


def test_export_holds_every_table_about_the_customer(papi: Api) -> None:
    _customer(papi)
    response = papi.get("/v1/members/P1/export", role="supervisor")
    assert response.status_code == 200, response.text
    export = response.json()
    assert export["member"]["email"] == "camille@example.fr" and export["member"]["city"] == "Lyon"
    tables = export["tables"]
    assert {"card_transactions", "accounts", "desk_contacts", "desk_member_tastes"} <= set(tables)
    assert {row["id"] for row in tables["card_transactions"]} == {"T1", "T2"}
    assert tables["desk_contacts"][0]["notes"].startswith("Lives at")
    assert papi.get("/v1/members/P1/export", role="agent").status_code == 403
    assert papi.get("/v1/members/NOBODY/export", role="admin").status_code == 404


def test_erase_keeps_the_ledger_exactly_and_removes_personal_data(
    papi: Api, engine: Engine, clock: FrozenClock
) -> None:
    _customer(papi)
    with unit_of_work(engine) as session:
        member_key = create_key(session, role="member", name="p1", member_ref="P1", now=clock.now())[1]
    balance = papi.get("/v1/members/P1/balance").json()
    movements = papi.get("/v1/members/P1/movements?limit=50").json()["items"]
    assert papi.post("/v1/members/P1/erase", role="supervisor").status_code == 403
    erased = papi.post("/v1/members/P1/erase")
    assert erased.status_code == 200, erased.text
    alias = erased.json()["member_ref"]
    assert alias.startswith("erased-") and alias != "P1"
    assert papi.get("/v1/members/P1").status_code == 404
    profile = papi.get(f"/v1/members/{alias}").json()
    assert (profile["name"], profile["city"]) == ("Erased customer", None)
    assert "camille" not in profile["email"]
    assert papi.get(f"/v1/members/{alias}/balance").json()["points"] == balance["points"]
    after = papi.get(f"/v1/members/{alias}/movements?limit=50").json()["items"]
    assert [(m["amount"], m["reference"]) for m in after] == [
        (m["amount"], m["reference"]) for m in movements
    ]
    with read_session(engine) as session:
        assert ledger.audit(session)["ok"]
        assert session.scalars(select(Contact.notes).where(Contact.id == "C1")).one() == ""
    tastes = papi.get(f"/v1/members/{alias}/tastes", role="concierge").json()
    assert tastes["notes"] == "" and tastes["likes"] == []
    found = papi.get("/v1/concierge-requests/search?q=Bocuse", role="concierge").json()
    assert found == []  # the solved request's words left the index
    dump = papi.get(f"/v1/members/{alias}/export", role="admin").text
    for secret in ("Camille", "rue X", "Allergic", "Anniversary", "camille@"):
        assert secret not in dump, secret
    revoked = papi.client.get(
        f"/v1/members/{alias}/balance", headers={"Authorization": f"Bearer {member_key}"}
    )
    assert revoked.status_code == 401  # the member's own key no longer opens anything
    again = papi.post("/v1/members/P1/erase")
    assert again.status_code == 200 and again.json()["member_ref"] == alias
    other = papi.get("/v1/members/P2").json()
    assert other["email"] == "other@example.fr"  # nobody else touched
