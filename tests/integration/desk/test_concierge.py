"""The concierge: premium members' requests with their tastes, the status flow, the due list and
the word search of solved requests (SQLite FTS5, PostgreSQL full text)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Engine, text

from tests.conftest import Api, member_body

PROBLEM = "application/problem+json"  # the test clock is 2026-01-01T00:00Z


@pytest.fixture(autouse=True)
def _empty_search_table(engine: Engine) -> None:
    """The FTS5 table is outside the models, so the tests' table wipe does not reach it."""
    if engine.dialect.name == "sqlite":
        with engine.begin() as connection:
            connection.execute(text("DELETE FROM desk_concierge_fts"))


def request_body(request_id: str, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": request_id,
        "category": "restaurant",
        "title": "Table for two",
        "details": "Anniversary dinner, quiet corner",
        "city": "Paris",
        "country": "FR",
        "due_at": "2026-01-03T19:00:00Z",
    }
    body.update(overrides)
    return body


def premium(api: Api, ref: str = "P1") -> None:
    assert api.put(f"/v1/members/{ref}", member_body(product="platinum")).status_code in (200, 201)


def test_request_with_tastes_replay_and_status_flow(api: Api) -> None:
    premium(api)
    tastes = {"notes": "Allergic to nuts", "likes": ["jazz", "sushi"], "dislikes": ["lilies"]}
    put = api.put("/v1/members/P1/tastes", tastes, role="concierge")
    assert put.status_code == 200, put.text
    assert api.get("/v1/members/P1/tastes", role="agent").json()["likes"] == ["jazz", "sushi"]

    first = api.post("/v1/members/P1/concierge-requests", request_body("R1"), role="concierge")
    assert first.status_code == 201, first.text
    body = first.json()
    assert (body["status"], body["member_ref"], body["requested_by"]) == ("open", "P1", "test-concierge")
    assert body["tastes"]["notes"] == "Allergic to nuts" and body["tastes"]["dislikes"] == ["lilies"]
    again = api.post("/v1/members/P1/concierge-requests", request_body("R1"), role="concierge")
    assert (again.status_code, again.json(), again.headers["Idempotent-Replayed"]) == (201, body, "true")
    other = api.post("/v1/members/P1/concierge-requests", request_body("R1", title="x"), role="concierge")
    assert other.status_code == 409

    early = api.post("/v1/concierge-requests/R1/status", {"status": "solved", "solution": "x"}, role="agent")
    assert early.status_code == 409 and early.json()["request_status"] == "open"
    started = api.post("/v1/concierge-requests/R1/status", {"status": "in_progress"}, role="concierge")
    assert started.status_code == 200 and started.json()["status"] == "in_progress"
    no_solution = api.post("/v1/concierge-requests/R1/status", {"status": "solved"}, role="concierge")
    assert no_solution.status_code == 422 and no_solution.json()["field"] == "solution"
    bad_cost = {"status": "solved", "solution": "Booked", "cost": "12.345"}
    assert api.post("/v1/concierge-requests/R1/status", bad_cost, role="concierge").status_code == 422
    solve = {
        "status": "solved",
        "partner": "Le Cinq",
        "cost": "180.5",
        "solution": "Booked at Le Cinq, 20:00",
    }
    solved = api.post("/v1/concierge-requests/R1/status", solve, role="concierge")
    assert solved.status_code == 200, solved.text
    assert (solved.json()["status"], solved.json()["cost"], solved.json()["partner"]) == (
        "solved",
        "180.50",
        "Le Cinq",
    )
    assert api.post("/v1/concierge-requests/R1/status", solve, role="concierge").json() == solved.json()
    cancel = api.post("/v1/concierge-requests/R1/status", {"status": "cancelled"}, role="concierge")
    assert cancel.status_code == 409
    assert api.get("/v1/concierge-requests/R1", role="concierge").json() == solved.json()
    assert api.get("/v1/concierge-requests/NOPE", role="concierge").status_code == 404


def test_not_premium_roles_and_unknown_member(api: Api) -> None:
    api.put("/v1/members/G1", member_body(product="gold"))
    premium(api)
    refused = api.post("/v1/members/G1/concierge-requests", request_body("R1"), role="concierge")
    assert refused.status_code == 403 and refused.headers["content-type"].startswith(PROBLEM)
    assert refused.json()["type"].endswith("/concierge-not-entitled")
    tastes = api.put("/v1/members/G1/tastes", {"notes": "", "likes": [], "dislikes": []}, role="concierge")
    assert tastes.json()["type"].endswith("/concierge-not-entitled")
    assert (
        api.post("/v1/members/NOPE/concierge-requests", request_body("R2"), role="agent").status_code == 404
    )
    for role in ("supervisor", "marketing", "integrator"):
        response = api.post("/v1/members/P1/concierge-requests", request_body("R3"), role=role)
        assert response.status_code == 403, role
    ok = api.post("/v1/members/P1/concierge-requests", request_body("R4"), role="agent")
    assert ok.status_code == 201 and ok.json()["tastes"] == {
        "notes": "",
        "likes": [],
        "dislikes": [],
        "updated_at": None,
        "updated_by": None,
    }
    bad = api.post("/v1/members/P1/concierge-requests", request_body("R5", category="yachts"), role="agent")
    assert bad.status_code == 422


def test_list_by_status_and_due_time(api: Api) -> None:
    premium(api)
    for request_id, due in [
        ("R1", "2026-01-05T10:00:00Z"),
        ("R2", "2026-01-02T10:00:00Z"),
        ("R3", "2026-01-03T10:00:00Z"),
    ]:
        api.post("/v1/members/P1/concierge-requests", request_body(request_id, due_at=due), role="concierge")
    api.post("/v1/concierge-requests/R3/status", {"status": "in_progress"}, role="concierge")
    assert [r["id"] for r in api.get("/v1/concierge-requests", role="concierge").json()] == ["R2", "R3", "R1"]
    assert [r["id"] for r in api.get("/v1/concierge-requests?status=open", role="concierge").json()] == [
        "R2",
        "R1",
    ]
    due = api.get("/v1/concierge-requests?due_before=2026-01-04T00:00:00Z", role="concierge").json()
    assert [r["id"] for r in due] == ["R2", "R3"]


def _solve(api: Api, request_id: str, solution: str) -> None:
    api.post("/v1/concierge-requests/" + request_id + "/status", {"status": "in_progress"}, role="concierge")
    body = {"status": "solved", "solution": solution}
    assert api.post(f"/v1/concierge-requests/{request_id}/status", body, role="concierge").status_code == 200


def test_search_solved_requests_by_words_category_and_city(api: Api) -> None:
    premium(api)
    seeds = [
        ("R1", "tickets", "Paris", "Sold-out concert tickets", "Two seats for the Philharmonie"),
        ("R2", "tickets", "Lyon", "Concert tickets", "Opera evening"),
        ("R3", "flowers", "Paris", "Roses for a birthday", "Deliver to the office"),
        ("R4", "tickets", "Paris", "Concert tickets again", "Still open"),
    ]
    for request_id, category, city, title, details in seeds:
        body = request_body(request_id, category=category, city=city, title=title, details=details)
        assert api.post("/v1/members/P1/concierge-requests", body, role="concierge").status_code == 201
    _solve(api, "R1", "Bought through the Fnac resale desk")
    _solve(api, "R2", "Box office hold, Fnac resale was empty")
    _solve(api, "R3", "Florist rue Cler")

    def ids(query: str) -> list[str]:
        response = api.get("/v1/concierge-requests/search?" + query, role="concierge")
        assert response.status_code == 200, response.text
        return sorted(r["id"] for r in response.json())

    assert ids("q=concert") == ["R1", "R2"]  # R4 is not solved
    assert ids("q=fnac+resale") == ["R1", "R2"]  # words of the solution
    assert ids("q=concert+philharmonie") == ["R1"]  # every word must match
    assert ids("q=concert&city=paris") == ["R1"]
    assert ids("q=roses&category=tickets") == []
    assert ids("q=roses&category=flowers") == ["R3"]
    assert ids("q=submarine") == []
    assert ids('q="concert*"') == ["R1", "R2"]  # query syntax is taken as plain words
    assert api.get("/v1/concierge-requests/search?q=%20-", role="concierge").status_code == 422


def test_partner_network_by_place_and_category(api: Api) -> None:
    partner = {"name": "Le Cinq", "country": "fr", "city": "Paris", "category": "restaurant", "rating": 5}
    created = api.put("/v1/concierge-partners/LECINQ", partner, role="concierge")
    assert created.status_code == 201, created.text
    assert (created.json()["country"], created.json()["updated_by"]) == ("FR", "test-concierge")
    replaced = api.put("/v1/concierge-partners/LECINQ", {**partner, "rating": 4}, role="agent")
    assert (replaced.status_code, replaced.json()["rating"]) == (200, 4)
    others = [
        ("BISTROT", {**partner, "name": "Bistrot", "rating": 3}),
        ("FLEURS", {**partner, "name": "Fleurs", "category": "flowers", "rating": 5}),
        ("LYON1", {**partner, "name": "Bouchon", "city": "Lyon"}),
    ]
    for code, body in others:
        assert api.put(f"/v1/concierge-partners/{code}", body, role="concierge").status_code == 201
    assert (
        api.put("/v1/concierge-partners/BAD", {**partner, "rating": 6}, role="concierge").status_code == 422
    )
    assert api.put("/v1/concierge-partners/X", partner, role="marketing").status_code == 403

    def codes(query: str) -> list[str]:
        return [p["code"] for p in api.get("/v1/concierge-partners?" + query, role="concierge").json()]

    assert codes("country=FR&city=paris&category=restaurant") == ["LECINQ", "BISTROT"]
    assert codes("city=Lyon") == ["LYON1"]
    assert codes("category=flowers") == ["FLEURS"]
    assert codes("country=BE") == []


@pytest.mark.parametrize("cost", ["1E+100", "1e28", "123456789012345678901234567890", "-1E+50", "1E+999999"])
def test_a_cost_too_large_to_be_an_amount_is_refused_naming_the_field(api: Api, cost: str) -> None:
    """A cost in exponent form passes the length limit but is no amount in cents: it is refused as a
    422 naming ``cost`` (its rounding to cents overflowed the decimal context and answered 500)."""
    premium(api)
    api.post("/v1/members/P1/concierge-requests", request_body("R1"), role="concierge")
    refused = api.post(
        "/v1/concierge-requests/R1/status", {"status": "in_progress", "cost": cost}, role="agent"
    )
    assert refused.status_code == 422, refused.text
    assert refused.headers["content-type"].startswith(PROBLEM)
    assert refused.json()["field"] == "cost"
    assert api.get("/v1/concierge-requests/R1", role="agent").json()["status"] == "open"
