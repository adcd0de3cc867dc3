"""Names, labels and ids that lists, reports and the command line print on one line (an agent, a
team, a city, a phone number, a template, a title, a partner, a taste, an id) hold no line break or
other control character: a line break would forge a line of ``prevenance desk fcr --by agent`` or of
a card-order list, an escape sequence would drive the operator's terminal. Each is refused with a
422 naming the field, on every route that takes it, as key names already are; free text (notes,
details, addresses, summaries) keeps its lines."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Api, contact_body, member_body

CONTACT = contact_body(contact_id="c1", notes="line one\nline two")
CALLBACK = {
    "id": "cb1",
    "reason": "statement.question",
    "scheduled_for": "2026-06-01T10:00:00Z",
    "phone": "+33612345678",
}
CARD = {"id": "cr1", "city": "Paris", "country": "FR", "address": "1 rue de la Paix\n75002 Paris"}
COMMUNICATION = {
    "id": "co1",
    "member_ref": "P1",
    "template": "welcome",
    "channel": "email",
    "language": "fr",
    "sent_at": "2026-01-01T00:00:00Z",
    "summary": "two\nlines",
}
REQUEST = {
    "id": "q1",
    "category": "flowers",
    "title": "Roses",
    "details": "for the anniversary\nred ones",
    "city": "Paris",
    "country": "FR",
    "due_at": "2026-06-01T10:00:00Z",
}
INCIDENT = {
    "id": "i1",
    "title_fr": "Panne",
    "title_en": "Outage",
    "body_fr": "b",
    "body_en": "b",
    "since": "2026-01-01T00:00:00Z",
    "affects": {"cities": ["Paris"]},
}

CASES: list[tuple[str, str, str, dict[str, Any], tuple[str, ...]]] = [
    ("post", "/v1/contacts", "agent", CONTACT, ("agent",)),
    ("post", "/v1/contacts", "agent", CONTACT, ("team",)),
    ("post", "/v1/contacts", "agent", CONTACT, ("id",)),
    ("post", "/v1/members/P1/callbacks", "agent", CALLBACK, ("phone",)),
    ("post", "/v1/members/P1/card-replacements", "agent", CARD, ("city",)),
    ("post", "/v1/communications", "agent", COMMUNICATION, ("template",)),
    (
        "post",
        "/v1/members/P1/benefit-usages",
        "agent",
        {"id": "bu1", "benefit": "lounge_access", "used_at": "2026-01-01T00:00:00Z", "source": "lounge"},
        ("source",),
    ),
    ("post", "/v1/members/P1/concierge-requests", "concierge", REQUEST, ("title",)),
    ("post", "/v1/members/P1/concierge-requests", "concierge", REQUEST, ("city",)),
    (
        "put",
        "/v1/members/P1/tastes",
        "concierge",
        {"likes": ["jazz"], "dislikes": [], "notes": "a\nb"},
        ("likes", "0"),
    ),
    (
        "put",
        "/v1/concierge-partners/bocuse",
        "concierge",
        {"name": "Bocuse", "country": "FR", "city": "Lyon", "category": "restaurant", "rating": 5},
        ("name",),
    ),
    (
        "post",
        "/v1/recovery-cases",
        "agent",
        {"id": "r1", "member_ref": "P1", "team": "t1", "note": "a\nb"},
        ("team",),
    ),
    ("post", "/v1/incidents", "agent", INCIDENT, ("affects", "cities", "0")),
    ("put", "/v1/members/P2", "agent", member_body(city="Lyon"), ("city",)),
]


def _with(body: Any, path: tuple[str, ...], bad: str) -> Any:
    """``body`` with the value at ``path`` (keys and list indexes) made ``bad`` around it."""
    if not path:
        return f"a{bad}b"
    key = int(path[0]) if isinstance(body, list) else path[0]
    copy = list(body) if isinstance(body, list) else dict(body)
    copy[key] = _with(body[key], path[1:], bad)
    return copy


@pytest.mark.parametrize("bad", ["\r\n", "\n", "\x1b[2J", "\u2028"])
@pytest.mark.parametrize(("method", "path", "role", "body", "field"), CASES)
def test_a_line_break_or_control_character_is_refused_naming_the_field(
    api: Api, method: str, path: str, role: str, body: dict[str, Any], field: tuple[str, ...], bad: str
) -> None:
    api.put("/v1/members/P1", member_body(product="platinum"))
    refused = getattr(api, method)(path, _with(body, field, bad), role=role)
    assert refused.status_code == 422, refused.text
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert refused.json()["field"] == ".".join(field)


@pytest.mark.parametrize(("method", "path", "role", "body", "field"), CASES)
def test_the_same_bodies_with_one_line_values_are_accepted(
    api: Api, method: str, path: str, role: str, body: dict[str, Any], field: tuple[str, ...]
) -> None:
    api.put("/v1/members/P1", member_body(product="platinum"))
    accepted = getattr(api, method)(path, body, role=role)
    assert accepted.status_code in (200, 201), accepted.text
