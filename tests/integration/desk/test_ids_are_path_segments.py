"""A desk record's id is its address: ``/v1/contacts/{id}``, ``/v1/callbacks/{id}/complete``,
``/v1/card-replacements/{id}/dispatch``… An id holding ``/`` can be stored but never reached again
(the server decodes ``%2F`` before routing, so no URL names it): a card order could never be
dispatched nor delivered, and would breach its promise for ever. Such an id is refused with a 422
naming ``id``; any other one-line id is read back at its address."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest

from tests.conftest import Api, contact_body, member_body

CONTACT = contact_body()
CASES: list[tuple[str, str, dict[str, Any], str]] = [
    ("/v1/contacts", "agent", CONTACT, "/v1/contacts/{id}"),
    (
        "/v1/members/P1/callbacks",
        "agent",
        {"reason": "statement.question", "scheduled_for": "2026-06-01T10:00:00Z"},
        "/v1/callbacks/{id}",
    ),
    (
        "/v1/members/P1/card-replacements",
        "agent",
        {"city": "Paris", "country": "FR"},
        "/v1/card-replacements/{id}",
    ),
    (
        "/v1/members/P1/concierge-requests",
        "concierge",
        {
            "category": "flowers",
            "title": "Roses",
            "city": "Paris",
            "country": "FR",
            "due_at": "2026-06-01T10:00:00Z",
        },
        "/v1/concierge-requests/{id}",
    ),
    (
        "/v1/incidents",
        "agent",
        {
            "title_fr": "Panne",
            "title_en": "Outage",
            "body_fr": "b",
            "body_en": "b",
            "since": "2026-01-01T00:00:00Z",
            "affects": {"products": ["platinum"]},
        },
        "/v1/incidents/{id}",
    ),
]


@pytest.mark.parametrize(("path", "role", "body", "address"), CASES)
def test_an_id_no_url_can_name_is_refused(
    api: Api, path: str, role: str, body: dict[str, Any], address: str
) -> None:
    api.put("/v1/members/P1", member_body(product="platinum"))
    for bad in ("A/1", "/", "a/"):
        refused = api.post(path, {**body, "id": bad}, role=role)
        assert refused.status_code == 422, refused.text
        assert refused.json()["field"] == "id"


@pytest.mark.parametrize(("path", "role", "body", "address"), CASES)
def test_any_other_id_is_read_back_at_its_address(
    api: Api, path: str, role: str, body: dict[str, Any], address: str
) -> None:
    api.put("/v1/members/P1", member_body(product="platinum"))
    for good in ("A-1.b_c:2", "réf 7", "a?b#c"):
        created = api.post(path, {**body, "id": good}, role=role)
        assert created.status_code == 201, created.text
        read = api.get(address.replace("{id}", quote(good, safe="")), role=role)
        assert read.status_code == 200 and read.json()["id"] == good, read.text
