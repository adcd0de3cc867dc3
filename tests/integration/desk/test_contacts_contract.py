"""The REST contract of contacts, cases and first-contact resolution."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import Engine, select

from prevenance.common.clock import FrozenClock
from prevenance.common.outbox import OutboxEvent
from prevenance.db import read_session
from tests.conftest import Api, member_body

PROBLEM = "application/problem+json"


def contact_body(contact_id: str, member_ref: str = "M1", **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": contact_id,
        "member_ref": member_ref,
        "channel": "phone",
        "direction": "inbound",
        "agent": "alice",
        "team": "paris-1",
        "reason": "card.lost_stolen",
        "started_at": "2026-01-05T09:00:00Z",
        "ended_at": "2026-01-05T09:07:00Z",
        "notes": "card lost in the metro; blocked and reordered",
        "outcome": "resolved",
    }
    body.update(overrides)
    return body


def test_a_contact_opens_a_case_and_reads_back(api: Api) -> None:
    api.put("/v1/members/M1", member_body())
    response = api.post("/v1/contacts", contact_body("C1"), role="agent")
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["reason_label_en"] == "Lost or stolen card"
    assert body["reason_label_fr"] == "Carte perdue ou volée"
    assert api.get("/v1/contacts/C1", role="agent").json() == body
    case = api.get(f"/v1/cases/{body['case_id']}", role="supervisor").json()
    assert case["status"] == "resolved" and case["owner"] == "alice" and case["country"] == "FR"
    assert case["resolved_at"].startswith("2026-01-05T09:07")
    assert [c["id"] for c in case["contacts"]] == ["C1"]


def test_same_id_same_body_replays_other_body_conflicts(api: Api, engine: Engine) -> None:
    api.put("/v1/members/M1", member_body())
    first = api.post("/v1/contacts", contact_body("C1"), role="agent")
    again = api.post("/v1/contacts", contact_body("C1"), role="agent")
    assert (again.status_code, again.json()) == (201, first.json())
    assert again.headers["Idempotent-Replayed"] == "true"
    other = api.post("/v1/contacts", contact_body("C1", notes="something else"), role="agent")
    assert other.status_code == 409 and other.headers["content-type"].startswith(PROBLEM)
    assert len(api.get("/v1/members/M1/contacts", role="agent").json()["items"]) == 1
    with read_session(engine) as session:
        events = session.scalars(select(OutboxEvent).where(OutboxEvent.type == "contact.closed")).all()
    assert len(events) == 1 and events[0].payload["id"] == "C1"


def test_bad_contacts_are_422_naming_the_field_and_write_nothing(api: Api) -> None:
    api.put("/v1/members/M1", member_body())
    cases = [
        (contact_body("C1", reason="card.teleported"), "reason"),
        (contact_body("C2", reason="card"), "reason"),
        (contact_body("C3", channel="pigeon"), "channel"),
        (contact_body("C4", direction="sideways"), "direction"),
        (contact_body("C5", outcome="maybe"), "outcome"),
        (contact_body("C6", member_ref="NOBODY"), "member_ref"),
        (contact_body("C7", ended_at="2026-01-05T08:00:00Z"), "ended_at"),
        (contact_body("C8", case_id="case_nope"), "case_id"),
    ]
    for body, field in cases:
        response = api.post("/v1/contacts", body, role="agent")
        assert response.status_code == 422, (body, response.text)
        assert response.headers["content-type"].startswith(PROBLEM)
        assert response.json()["field"] == field, response.json()
    assert api.get("/v1/members/M1/contacts", role="agent").json()["items"] == []


def test_a_follow_up_contact_joins_its_case_and_a_case_of_another_member_is_refused(api: Api) -> None:
    api.put("/v1/members/M1", member_body())
    api.put("/v1/members/M2", member_body())
    first = api.post("/v1/contacts", contact_body("C1", outcome="pending"), role="agent").json()
    case_id = first["case_id"]
    assert api.get(f"/v1/cases/{case_id}", role="agent").json()["status"] == "open"
    follow = contact_body(
        "C2", case_id=case_id, started_at="2026-01-06T10:00:00Z", ended_at="2026-01-06T10:05:00Z"
    )
    assert api.post("/v1/contacts", follow, role="agent").status_code == 201
    case = api.get(f"/v1/cases/{case_id}", role="agent").json()
    assert case["status"] == "resolved" and case["contact_count"] == 2
    assert [c["id"] for c in case["contacts"]] == ["C1", "C2"]
    stranger = api.post("/v1/contacts", contact_body("C3", member_ref="M2", case_id=case_id), role="agent")
    assert stranger.status_code == 422 and stranger.json()["field"] == "case_id"
    reopened = contact_body("C4", case_id=case_id, outcome="pending", started_at="2026-01-07T10:00:00Z")
    api.post("/v1/contacts", {**reopened, "ended_at": "2026-01-07T10:01:00Z"}, role="agent")
    assert api.get(f"/v1/cases/{case_id}", role="agent").json()["status"] == "open"


def test_resolving_a_case_is_idempotent_and_unknown_cases_are_404(api: Api) -> None:
    api.put("/v1/members/M1", member_body())
    case_id = api.post("/v1/contacts", contact_body("C1", outcome="transferred"), role="agent").json()[
        "case_id"
    ]
    first = api.post(f"/v1/cases/{case_id}/resolve", {"owner": "bob"}, role="supervisor")
    assert first.status_code == 200, first.text
    assert first.json()["status"] == "resolved" and first.json()["owner"] == "bob"
    again = api.post(f"/v1/cases/{case_id}/resolve", role="agent")
    assert again.json() == first.json()
    assert api.post("/v1/cases/nope/resolve", role="agent").status_code == 404
    assert api.get("/v1/cases/nope", role="agent").status_code == 404
    assert api.get("/v1/contacts/nope", role="agent").status_code == 404
    open_cases = api.get("/v1/members/M1/cases?status=open", role="agent").json()
    assert open_cases == []


def test_member_contacts_newest_first_and_unknown_member_404(api: Api) -> None:
    api.put("/v1/members/M1", member_body())
    for day in (3, 9, 6):
        body = contact_body(
            f"C{day}", started_at=f"2026-01-0{day}T09:00:00Z", ended_at=f"2026-01-0{day}T09:05:00Z"
        )
        api.post("/v1/contacts", body, role="integrator")
    items = api.get("/v1/members/M1/contacts", role="agent").json()["items"]
    assert [i["id"] for i in items] == ["C9", "C6", "C3"]
    assert api.get("/v1/members/NOBODY/contacts", role="agent").status_code == 404


def test_roles_members_and_marketing_may_not_touch_contacts(api: Api) -> None:
    api.put("/v1/members/M1", member_body())
    assert api.post("/v1/contacts", contact_body("C1"), role="marketing").status_code == 403
    for role in ("agent", "concierge", "supervisor", "integrator"):
        assert api.post("/v1/contacts", contact_body(f"C-{role}"), role=role).status_code == 201
    assert api.get("/v1/members/M1/contacts", role="marketing").status_code == 403


def test_reasons_taxonomy_is_served_in_both_languages(api: Api) -> None:
    reasons = {r["code"]: r for r in api.get("/v1/contact-reasons", role="agent").json()}
    assert reasons["statement.dispute"]["group_label_fr"] == "Relevé"
    assert reasons["statement.dispute"]["label_en"] == "Transaction dispute"


def test_fcr_is_computed_by_agent_with_a_wilson_interval(api: Api, clock: FrozenClock) -> None:
    """alice resolves two cases at once, one of which comes back within the week; bob needs two contacts."""
    api.put("/v1/members/M1", member_body())
    api.put("/v1/members/M2", member_body(country="GB", language="en"))
    api.post("/v1/contacts", contact_body("A1"), role="agent")  # M1, resolved, no repeat
    api.post(
        "/v1/contacts",
        contact_body("A2", member_ref="M2", reason="statement.question"),
        role="agent",
    )
    # M2 calls again on the same reason three days later: A2 was not really resolved.
    api.post(
        "/v1/contacts",
        contact_body(
            "B1",
            member_ref="M2",
            agent="bob",
            reason="statement.question",
            started_at="2026-01-08T09:00:00Z",
            ended_at="2026-01-08T09:10:00Z",
            outcome="pending",
        ),
        role="agent",
    )
    b_case = api.get("/v1/contacts/B1", role="agent").json()["case_id"]
    api.post(
        "/v1/contacts",
        contact_body(
            "B2",
            member_ref="M2",
            agent="bob",
            reason="statement.question",
            case_id=b_case,
            started_at="2026-01-09T09:00:00Z",
            ended_at="2026-01-09T09:10:00Z",
        ),
        role="agent",
    )
    # A contact on another reason does not make A1 a repeat.
    api.post(
        "/v1/contacts",
        contact_body(
            "A3", reason="rewards.balance", started_at="2026-01-06T09:00:00Z", ended_at="2026-01-06T09:01:00Z"
        ),
        role="agent",
    )
    clock.current = clock.current.replace(year=2026, month=2, day=1)
    report = api.get("/v1/desk/fcr?by=agent&month=2026-01", role="supervisor")
    assert report.status_code == 200, report.text
    rows = {r["key"]: r for r in report.json()["rows"]}
    assert (rows["alice"]["successes"], rows["alice"]["n"]) == (2, 3)  # A1 and A3 yes, A2 no
    assert (rows["bob"]["successes"], rows["bob"]["n"]) == (0, 1)
    overall = report.json()["overall"]
    assert overall["n"] == 4 and overall["value"] == 0.5
    assert 0 < overall["ci_low"] < 0.5 < overall["ci_high"] < 1
    by_country = {
        r["key"]: r for r in api.get("/v1/desk/fcr?by=country&month=2026-01", role="agent").json()["rows"]
    }
    assert (by_country["FR"]["successes"], by_country["FR"]["n"]) == (2, 2)
    assert (by_country["GB"]["successes"], by_country["GB"]["n"]) == (0, 2)
    by_month = api.get("/v1/desk/fcr?by=month", role="agent").json()
    assert [r["key"] for r in by_month["rows"]] == ["2026-01"]
    assert api.get("/v1/desk/fcr?by=month&month=2026-02", role="agent").json()["overall"]["n"] == 0


def test_fcr_leaves_out_cases_whose_window_is_still_open(api: Api, clock: FrozenClock) -> None:
    api.put("/v1/members/M1", member_body())
    api.post("/v1/contacts", contact_body("C1"), role="agent")
    clock.current = clock.current.replace(year=2026, month=1, day=7)
    early = api.get("/v1/desk/fcr?by=channel&month=2026-01", role="supervisor").json()
    assert early["undetermined"] == 1 and early["overall"]["n"] == 0 and early["overall"]["value"] is None
    clock.advance(timedelta(days=7))
    late = api.get("/v1/desk/fcr?by=channel&month=2026-01", role="supervisor").json()
    assert late["undetermined"] == 0 and late["rows"][0]["key"] == "phone" and late["rows"][0]["value"] == 1.0


def test_fcr_refuses_a_bad_dimension_or_month(api: Api) -> None:
    bad_by = api.get("/v1/desk/fcr?by=mood", role="supervisor")
    assert bad_by.status_code == 422 and bad_by.json()["field"] == "by"
    bad_month = api.get("/v1/desk/fcr?by=agent&month=2026-13", role="supervisor")
    assert bad_month.status_code == 422 and bad_month.json()["field"] == "month"
