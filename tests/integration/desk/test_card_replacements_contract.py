"""The REST contract of emergency card replacement: promise, clock, at-risk and breached lists."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from prevenance.common.clock import FrozenClock
from tests.conftest import Api, member_body

PROBLEM = "application/problem+json"


def order(order_id: str, city: str = "Paris", country: str = "FR", **overrides: Any) -> dict[str, Any]:
    return {"id": order_id, "city": city, "country": country, "address": "1 rue de Rivoli", **overrides}


def test_a_city_team_city_is_promised_two_hours_elsewhere_forty_eight(api: Api) -> None:
    api.put("/v1/members/M1", member_body())
    paris = api.post("/v1/members/M1/card-replacements", order("R1"), role="agent")
    assert paris.status_code == 201, paris.text
    body = paris.json()
    assert (body["city_team"], body["promise_hours"], body["status"], body["state"]) == (
        True,
        2,
        "ordered",
        "on_track",
    )
    assert body["ordered_at"] == "2026-01-01T00:00:00Z" and body["due_at"] == "2026-01-01T02:00:00Z"
    elsewhere = api.post(
        "/v1/members/M1/card-replacements", order("R2", city="Brive", country="fr"), role="agent"
    )
    assert (elsewhere.json()["promise_hours"], elsewhere.json()["country"]) == (48, "FR")
    assert elsewhere.json()["due_at"] == "2026-01-03T00:00:00Z"


def test_same_id_same_body_replays_other_body_conflicts(api: Api) -> None:
    api.put("/v1/members/M1", member_body())
    first = api.post("/v1/members/M1/card-replacements", order("R1"), role="agent")
    again = api.post("/v1/members/M1/card-replacements", order("R1"), role="agent")
    assert (again.status_code, again.json()) == (201, first.json())
    other = api.post("/v1/members/M1/card-replacements", order("R1", city="Lyon"), role="agent")
    assert other.status_code == 409 and other.headers["content-type"].startswith(PROBLEM)


def test_bad_orders_name_the_field(api: Api) -> None:
    api.put("/v1/members/M1", member_body())
    for body, field in [(order("R1", country="F1"), "country"), (order("R2", city="  "), "city")]:
        response = api.post("/v1/members/M1/card-replacements", body, role="agent")
        assert response.status_code == 422 and response.json()["field"] == field, response.text
    assert api.post("/v1/members/NOBODY/card-replacements", order("R3"), role="agent").status_code == 404
    assert api.post("/v1/members/M1/card-replacements", order("R4"), role="marketing").status_code == 403


def test_the_status_clock_moves_forward_and_repeats_are_harmless(api: Api, clock: FrozenClock) -> None:
    api.put("/v1/members/M1", member_body())
    api.post("/v1/members/M1/card-replacements", order("R1"), role="agent")
    early = api.post("/v1/card-replacements/R1/deliver", role="agent")
    assert early.status_code == 409 and early.json()["replacement_status"] == "ordered"
    clock.advance(timedelta(minutes=20))
    dispatched = api.post("/v1/card-replacements/R1/dispatch", role="integrator")
    assert dispatched.status_code == 200 and dispatched.json()["dispatched_at"] == "2026-01-01T00:20:00Z"
    assert api.post("/v1/card-replacements/R1/dispatch", role="integrator").json() == dispatched.json()
    clock.advance(timedelta(minutes=80))
    delivered = api.post("/v1/card-replacements/R1/deliver", role="integrator").json()
    assert (delivered["status"], delivered["state"]) == ("delivered", "delivered_on_time")
    assert api.post("/v1/card-replacements/R1/dispatch", role="agent").status_code == 409
    assert api.post("/v1/card-replacements/NOPE/dispatch", role="agent").status_code == 404
    assert api.get("/v1/card-replacements/R1", role="agent").json() == delivered


def test_at_risk_and_breached_lists_follow_the_clock(api: Api, clock: FrozenClock) -> None:
    api.put("/v1/members/M1", member_body())
    api.post("/v1/members/M1/card-replacements", order("PARIS"), role="agent")
    api.post("/v1/members/M1/card-replacements", order("BRIVE", city="Brive"), role="agent")

    def ids(state: str) -> list[str]:
        response = api.get(f"/v1/card-replacements?state={state}", role="supervisor")
        assert response.status_code == 200, response.text
        return [o["id"] for o in response.json()]

    assert ids("at_risk") == [] and ids("breached") == [] and ids("open") == ["PARIS", "BRIVE"]
    clock.advance(timedelta(minutes=100))
    assert ids("at_risk") == ["PARIS"] and ids("on_track") == ["BRIVE"]
    clock.advance(timedelta(minutes=30))
    assert ids("breached") == ["PARIS"] and ids("at_risk") == []
    clock.advance(timedelta(hours=40))
    assert ids("at_risk") == ["BRIVE"]
    api.post("/v1/card-replacements/BRIVE/dispatch", role="agent")
    api.post("/v1/card-replacements/BRIVE/deliver", role="agent")
    assert ids("open") == ["PARIS"]
    assert api.get("/v1/card-replacements?state=late", role="agent").status_code == 422
    mine = api.get("/v1/members/M1/card-replacements", role="agent").json()
    assert {o["id"]: o["state"] for o in mine} == {"PARIS": "breached", "BRIVE": "delivered_on_time"}


def test_share_delivered_within_promise_per_month(api: Api, clock: FrozenClock) -> None:
    api.put("/v1/members/M1", member_body())
    for order_id, minutes in (("ON-TIME", 90), ("LATE", 150)):
        api.post("/v1/members/M1/card-replacements", order(order_id), role="agent")
        clock.advance(timedelta(minutes=minutes))
        api.post(f"/v1/card-replacements/{order_id}/dispatch", role="agent")
        api.post(f"/v1/card-replacements/{order_id}/deliver", role="agent")
    api.post("/v1/members/M1/card-replacements", order("STILL-OUT"), role="agent")  # in time: not counted
    report = api.get("/v1/desk/card-replacements?month=2026-01", role="supervisor")
    assert report.status_code == 200, report.text
    body = report.json()
    assert (body["ordered"], body["open_in_time"]) == (3, 1)
    share = body["within_promise"]
    assert (share["successes"], share["n"], share["value"]) == (1, 2, 0.5)
    assert share["ci_low"] < 0.5 < share["ci_high"]
    clock.advance(timedelta(hours=3))  # STILL-OUT is now breached: a miss
    assert (
        api.get("/v1/desk/card-replacements?month=2026-01", role="agent").json()["within_promise"]["n"] == 3
    )
    empty = api.get("/v1/desk/card-replacements?month=2025-12", role="agent").json()["within_promise"]
    assert (empty["n"], empty["value"]) == (0, None)
    assert api.get("/v1/desk/card-replacements?month=2026-1", role="agent").status_code == 422
