"""The communications log and the contact preference."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine

from prevenance.common.auth import create_key
from prevenance.common.clock import FrozenClock
from prevenance.customers import service as customers
from prevenance.db import read_session, unit_of_work
from prevenance.desk import service
from tests.conftest import Api, member_body

PROBLEM = "application/problem+json"


def communication(comm_id: str, member_ref: str = "M1", **overrides: Any) -> dict[str, Any]:
    body = {
        "id": comm_id,
        "member_ref": member_ref,
        "kind": "statement",
        "template": "monthly-statement",
        "channel": "email",
        "language": "fr",
        "sent_at": "2026-01-02T08:00:00Z",
        "subject": "Votre relevé de décembre",
        "summary": "Relevé mensuel",
    }
    body.update(overrides)
    return body


def member_key(engine: Engine, clock: FrozenClock, ref: str) -> dict[str, str]:
    with unit_of_work(engine) as session:
        _, secret = create_key(session, role="member", name=f"member-{ref}", member_ref=ref, now=clock.now())
    return {"Authorization": f"Bearer {secret}"}


def test_other_systems_log_communications_once_and_the_desk_sees_them(api: Api) -> None:
    api.put("/v1/members/M1", member_body())
    first = api.post("/v1/communications", communication("N1"), role="integrator")
    assert first.status_code == 201, first.text
    assert first.json()["source"] == "test-integrator"
    assert api.post("/v1/communications", communication("N1"), role="integrator").json() == first.json()
    reused = api.post("/v1/communications", communication("N1", template="other"), role="integrator")
    assert reused.status_code == 409
    api.post(
        "/v1/communications",
        communication("N2", kind="marketing", template="lounge-offer", sent_at="2026-01-03T08:00:00Z"),
        role="marketing",
    )
    items = api.get("/v1/members/M1/communications", role="agent").json()["items"]
    assert [i["id"] for i in items] == ["N2", "N1"]
    assert items[1]["subject"] == "Votre relevé de décembre"


def test_an_id_the_platform_already_used_is_a_conflict_not_a_second_row(
    api: Api, engine: Engine, clock: FrozenClock
) -> None:
    """Offers record their own messages without an idempotency key (the earn that made the offer is
    the idempotent write): another system posting that id gets 409, and the row stays as it was."""
    api.put("/v1/members/M1", member_body())
    with unit_of_work(engine) as session:
        member_id = customers.get_member(session, ref="M1").id
        data = service.CommunicationInput(**{**communication("offer-made:X"), "sent_at": clock.now()})
        service.record_communication(
            session, member_id=member_id, communication=data, source="offers", now=clock.now()
        )
    posted = api.post(
        "/v1/communications", communication("offer-made:X", template="other"), role="integrator"
    )
    assert posted.status_code == 409 and posted.headers["content-type"] == PROBLEM, posted.text
    assert posted.json()["field"] == "id"
    items = api.get("/v1/members/M1/communications", role="agent").json()["items"]
    assert [(i["id"], i["template"], i["source"]) for i in items] == [
        ("offer-made:X", "monthly-statement", "offers")
    ]


def test_bad_communications_name_the_field(api: Api) -> None:
    api.put("/v1/members/M1", member_body())
    for body, field in [
        (communication("N1", member_ref="NOBODY"), "member_ref"),
        (communication("N2", channel="fax"), "channel"),
        (communication("N3", language="de"), "language"),
        (communication("N4", kind="spam"), "kind"),
    ]:
        response = api.post("/v1/communications", body, role="integrator")
        assert response.status_code == 422 and response.json()["field"] == field, response.text
    assert api.post("/v1/communications", communication("N5"), role="supervisor").status_code == 403


def test_a_member_reads_only_their_own_communications(api: Api, engine: Engine, clock: FrozenClock) -> None:
    api.put("/v1/members/M1", member_body())
    api.put("/v1/members/M2", member_body())
    api.post("/v1/communications", communication("N1"), role="integrator")
    headers = member_key(engine, clock, "M1")
    assert api.client.get("/v1/members/M1/communications", headers=headers).status_code == 200
    assert api.client.get("/v1/members/M2/communications", headers=headers).status_code == 403


def test_contact_preference_set_by_agent_or_member_and_leave_me_alone_stops_marketing(
    api: Api, engine: Engine, clock: FrozenClock
) -> None:
    api.put("/v1/members/M1", member_body())
    api.put("/v1/members/M2", member_body())
    unset = api.get("/v1/members/M1/contact-preference", role="agent").json()
    assert (unset["mode"], unset["may_send_marketing"]) == (None, True)
    set_by_agent = api.put(
        "/v1/members/M1/contact-preference", {"mode": "in_a_hurry", "preferred_channel": "chat"}, role="agent"
    )
    assert set_by_agent.status_code == 200, set_by_agent.text
    assert set_by_agent.json()["updated_by"] == "test-agent"
    headers = member_key(engine, clock, "M1")
    mine = api.client.put(
        "/v1/members/M1/contact-preference", json={"mode": "leave_me_alone"}, headers=headers
    )
    assert mine.status_code == 200 and mine.json()["may_send_marketing"] is False
    assert api.get("/v1/members/M1/contact-preference", role="marketing").json()["mode"] == "leave_me_alone"
    other = api.client.put("/v1/members/M2/contact-preference", json={"mode": "has_time"}, headers=headers)
    assert other.status_code == 403
    bad = api.put("/v1/members/M1/contact-preference", {"mode": "whenever"}, role="agent")
    assert bad.status_code == 422 and bad.json()["field"] == "mode"
    assert (
        api.put("/v1/members/NOBODY/contact-preference", {"mode": "has_time"}, role="agent").status_code
        == 404
    )
    with read_session(engine) as session:
        m1 = service.get_contact_preference(session, member_ref="M1")
        assert m1["may_send_marketing"] is False


def test_a_member_key_never_reads_who_on_staff_logged_or_set_it(
    api: Api, engine: Engine, clock: FrozenClock
) -> None:
    """The communications' ``source`` and the preference's ``updated_by`` name a staff member or an
    internal system: staff-only, as in the member's 360 and GDPR export (``docs/authorization.md``).
    The member's own routes answer the same allow-list; staff keys still see both."""
    api.put("/v1/members/M1", member_body())
    api.post("/v1/communications", communication("N1"), role="agent")
    api.put("/v1/members/M1/contact-preference", {"mode": "has_time"}, role="agent")
    headers = member_key(engine, clock, "M1")
    sent = api.client.get("/v1/members/M1/communications", headers=headers)
    assert sent.status_code == 200, sent.text
    assert [sorted(item) for item in sent.json()["items"]] == [
        sorted(
            ["id", "member_ref", "kind", "template", "channel", "language", "sent_at", "subject", "summary"]
        )
    ]
    assert sent.json()["items"][0]["sent_at"] == "2026-01-02T08:00:00Z"
    preference = api.client.get("/v1/members/M1/contact-preference", headers=headers)
    assert preference.status_code == 200, preference.text
    assert "updated_by" not in preference.json() and preference.json()["mode"] == "has_time"
    changed = api.client.put(
        "/v1/members/M1/contact-preference", json={"mode": "in_a_hurry"}, headers=headers
    )
    assert changed.status_code == 200, changed.text
    assert "updated_by" not in changed.json() and changed.json()["updated_at"] == "2026-01-01T00:00:00Z"
    staff = api.get("/v1/members/M1/contact-preference", role="agent").json()
    assert staff["updated_by"] == "member-M1"
    assert api.get("/v1/members/M1/communications", role="agent").json()["items"][0]["source"] == "test-agent"
