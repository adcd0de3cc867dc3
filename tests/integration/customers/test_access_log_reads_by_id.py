"""A read of one member's record through a route keyed by the record's own id (a contact and its
notes, a case, a call-back and its phone number, a card order and its address, a concierge request,
a recovery case) is an access to that member's record like a read of ``/v1/members/{ref}…``: it is
appended to the member's access log. Before, only ``{ref}`` routes were logged, so a keyed caller
could read a member's contact notes or phone number by id and leave no trace. An id that names
nothing (404) leaves no entry."""

from __future__ import annotations

from tests.conftest import Api, contact_body, member_body


def _reads_logged(api: Api) -> list[tuple[str, str, str]]:
    entries = api.get("/v1/members/P1/access-log?limit=500", role="supervisor").json()
    return [(e["actor_role"], e["method"], e["route"]) for e in entries if e["action"] == "read"]


def test_a_record_read_by_its_id_is_in_its_members_access_log(api: Api) -> None:
    assert api.put("/v1/members/P1", member_body(product="platinum")).status_code == 201
    api.put("/v1/members/P2", member_body(product="platinum"))
    contact = api.post(
        "/v1/contacts", contact_body(contact_id="c1", notes="lost the card in Lyon"), role="agent"
    ).json()
    callback = {"id": "cb1", "reason": "statement.question", "scheduled_for": "2026-06-01T10:00:00Z"}
    assert api.post("/v1/members/P1/callbacks", {**callback, "phone": "+33612345678"}).status_code == 201
    card = {"id": "cr1", "city": "Paris", "country": "FR", "address": "1 rue de la Paix"}
    assert api.post("/v1/members/P1/card-replacements", card).status_code == 201
    request = {
        "id": "q1",
        "category": "flowers",
        "title": "Roses",
        "details": "",
        "city": "Paris",
        "country": "FR",
        "due_at": "2026-06-01T10:00:00Z",
    }
    assert api.post("/v1/members/P1/concierge-requests", request, role="concierge").status_code == 201
    assert api.post("/v1/recovery-cases", {"id": "r1", "member_ref": "P1", "team": "t1"}).status_code == 201
    assert _reads_logged(api) == []

    reads = [
        ("agent", f"/v1/contacts/{contact['id']}", "/v1/contacts/{id}"),
        ("agent", f"/v1/cases/{contact['case_id']}", "/v1/cases/{id}"),
        ("integrator", "/v1/callbacks/cb1", "/v1/callbacks/{id}"),
        ("concierge", "/v1/card-replacements/cr1", "/v1/card-replacements/{id}"),
        ("concierge", "/v1/concierge-requests/q1", "/v1/concierge-requests/{id}"),
        ("supervisor", "/v1/recovery-cases/r1", "/v1/recovery-cases/{id}"),
        ("agent", "/v1/recovery-cases?member_ref=P1", "/v1/recovery-cases"),
    ]
    for role, path, _ in reads:
        answered = api.get(path, role=role)
        assert answered.status_code == 200, (path, answered.text)
    assert api.get("/v1/contacts/nothing", role="agent").status_code == 404
    logged = _reads_logged(api)  # the last read of the log is written after its answer
    assert logged == [
        *((role, "GET", route) for role, _, route in reversed(reads)),
        ("supervisor", "GET", "/v1/members/{ref}/access-log"),
    ]
    other = api.get("/v1/members/P2/access-log", role="supervisor").json()
    assert [e["route"] for e in other] == ["/v1/members/{ref}"]  # its creation only
