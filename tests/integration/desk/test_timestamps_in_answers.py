"""Every timestamp in an answer is written in UTC with a ``Z``: the first answer to a POST, its
replay and the GET of the same resource agree, for concierge requests and incidents as everywhere."""

from __future__ import annotations

import re
from typing import Any

from tests.conftest import Api, member_body

ISO_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}")


def timestamps(body: Any) -> list[str]:
    """Every string in a JSON body that is a date and time."""
    if isinstance(body, dict):
        return [found for value in body.values() for found in timestamps(value)]
    if isinstance(body, list):
        return [found for value in body for found in timestamps(value)]
    return [body] if isinstance(body, str) and ISO_TIME.match(body) else []


def assert_utc_z(body: Any) -> None:
    written = timestamps(body)
    assert written, "the answer carries timestamps"
    assert all(moment.endswith("Z") for moment in written), written


def test_a_concierge_request_answers_z_when_created_replayed_and_read(api: Api) -> None:
    assert api.put("/v1/members/P1", member_body(product="platinum")).status_code in (200, 201)
    body = {
        "id": "R1",
        "category": "restaurant",
        "title": "Table for two",
        "details": "Anniversary dinner",
        "city": "Paris",
        "country": "FR",
        "due_at": "2026-01-03T20:00:00+01:00",
    }
    created = api.post("/v1/members/P1/concierge-requests", body, role="concierge")
    assert created.status_code == 201, created.text
    assert_utc_z(created.json())
    assert created.json()["due_at"] == "2026-01-03T19:00:00Z"
    replayed = api.post("/v1/members/P1/concierge-requests", body, role="concierge")
    assert replayed.json() == created.json()
    read = api.get("/v1/concierge-requests/R1", role="concierge").json()
    assert_utc_z(read)
    assert {key: read[key] for key in ("due_at", "created_at", "updated_at")} == {
        key: created.json()[key] for key in ("due_at", "created_at", "updated_at")
    }


def test_an_incident_answers_z_when_declared_replayed_and_read(api: Api) -> None:
    api.put("/v1/members/M1", member_body())
    body = {
        "id": "INC1",
        "title_fr": "Paiements refusés",
        "title_en": "Payments declined",
        "body_fr": "Certains paiements sont refusés.",
        "body_en": "Some payments are declined.",
        "since": "2025-12-31T09:00:00+01:00",
        "affects": {"products": ["gold"], "countries": ["FR"]},
    }
    declared = api.post("/v1/incidents", body, role="supervisor")
    assert declared.status_code == 201, declared.text
    assert_utc_z(declared.json())
    assert declared.json()["since"] == "2025-12-31T08:00:00Z"
    assert api.post("/v1/incidents", body, role="supervisor").json() == declared.json()
    read = api.get("/v1/incidents/INC1", role="agent").json()
    assert_utc_z(read)
    assert (read["since"], read["declared_at"]) == (declared.json()["since"], declared.json()["declared_at"])
