"""Call-back booking: ``POST /v1/members/{ref}/callbacks``, the agents' list of call-backs due and
``POST /v1/callbacks/{id}/complete`` linking the contact that made the call."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, select

from prevenance.common.outbox import OutboxEvent
from prevenance.db import read_session
from tests.conftest import Api, member_body
from tests.integration.desk.test_contacts_contract import contact_body

PROBLEM = "application/problem+json"  # the test clock is 2026-01-01T00:00Z


def booking(callback_id: str, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": callback_id,
        "reason": "statement.question",
        "scheduled_for": "2026-01-02T10:00:00Z",
        "phone": "+33 6 12 34 56 78",
    }
    body.update(overrides)
    return body


def test_book_replay_list_and_complete(api: Api, engine: Engine) -> None:
    api.put("/v1/members/M1", member_body())
    first = api.post("/v1/members/M1/callbacks", booking("CB1"), role="agent")
    assert first.status_code == 201, first.text
    body = first.json()
    assert (body["status"], body["member_ref"], body["booked_by"]) == ("scheduled", "M1", "test-agent")
    assert body["scheduled_for"].startswith("2026-01-02T10:00:00")
    again = api.post("/v1/members/M1/callbacks", booking("CB1"), role="agent")
    assert (again.status_code, again.json()) == (201, body)
    assert again.headers["Idempotent-Replayed"] == "true"
    other = api.post("/v1/members/M1/callbacks", booking("CB1", phone="+33 1"), role="agent")
    assert other.status_code == 409 and other.headers["content-type"].startswith(PROBLEM)

    api.post("/v1/members/M1/callbacks", booking("CB2", scheduled_for="2026-01-03T10:00:00Z"), role="agent")
    due = api.get("/v1/callbacks?due_before=2026-01-02T12:00:00Z", role="agent").json()
    assert [c["id"] for c in due] == ["CB1"]
    assert [c["id"] for c in api.get("/v1/callbacks", role="agent").json()] == ["CB1", "CB2"]

    contact = contact_body(
        "C1",
        channel="phone",
        direction="outbound",
        reason="statement.question",
        started_at="2026-01-02T10:00:00Z",
        ended_at="2026-01-02T10:06:00Z",
    )
    assert api.post("/v1/contacts", contact, role="agent").status_code == 201
    done = api.post("/v1/callbacks/CB1/complete", {"contact_id": "C1"}, role="agent")
    assert done.status_code == 200, done.text
    assert (done.json()["status"], done.json()["contact_id"]) == ("completed", "C1")
    repeat = api.post("/v1/callbacks/CB1/complete", {"contact_id": "C1"}, role="agent")
    assert repeat.json() == done.json()
    assert [c["id"] for c in api.get("/v1/callbacks", role="agent").json()] == ["CB2"]
    assert [c["id"] for c in api.get("/v1/callbacks?status=completed", role="agent").json()] == ["CB1"]
    assert api.get("/v1/callbacks/CB1", role="supervisor").json() == done.json()
    with read_session(engine) as session:
        types = session.scalars(select(OutboxEvent.type).where(OutboxEvent.type.like("callback.%"))).all()
    assert sorted(types) == ["callback.booked", "callback.booked", "callback.completed"]


def test_bad_bookings_and_completions(api: Api) -> None:
    api.put("/v1/members/M1", member_body())
    api.put("/v1/members/M2", member_body())
    cases = [
        (booking("B1", scheduled_for="2025-12-31T23:00:00Z"), "scheduled_for"),
        (booking("B2", scheduled_for="2026-01-01T00:00:00Z"), "scheduled_for"),
        (booking("B3", reason="card.teleported"), "reason"),
    ]
    for body, field in cases:
        response = api.post("/v1/members/M1/callbacks", body, role="agent")
        assert response.status_code == 422, response.text
        assert response.headers["content-type"].startswith(PROBLEM)
        assert response.json()["field"] == field
    assert api.post("/v1/members/NOBODY/callbacks", booking("B4"), role="agent").status_code == 404
    assert api.post("/v1/members/M1/callbacks", booking("B5"), role="marketing").status_code == 403
    assert api.get("/v1/callbacks", role="agent").json() == []

    assert api.post("/v1/members/M1/callbacks", booking("CB1"), role="agent").status_code == 201
    api.post("/v1/contacts", contact_body("C1", member_ref="M1"), role="agent")
    api.post("/v1/contacts", contact_body("C2", member_ref="M1"), role="agent")
    api.post("/v1/contacts", contact_body("C3", member_ref="M2"), role="agent")
    unknown = api.post("/v1/callbacks/CB1/complete", {"contact_id": "nope"}, role="agent")
    assert (unknown.status_code, unknown.json()["field"]) == (422, "contact_id")
    foreign = api.post("/v1/callbacks/CB1/complete", {"contact_id": "C3"}, role="agent")
    assert (foreign.status_code, foreign.json()["field"]) == (422, "contact_id")
    assert api.post("/v1/callbacks/NOPE/complete", {"contact_id": "C1"}, role="agent").status_code == 404
    assert api.post("/v1/callbacks/CB1/complete", {"contact_id": "C1"}, role="agent").status_code == 200
    clash = api.post("/v1/callbacks/CB1/complete", {"contact_id": "C2"}, role="agent")
    assert clash.status_code == 409 and clash.headers["content-type"].startswith(PROBLEM)
