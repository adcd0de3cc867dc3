"""An erased member (GDPR) is kept under its pseudonym for the ledger's sums, and is never written to
again: no route may lay new personal data on the pseudonym (a name, an address, a phone number, a
contact's notes, a concierge's file), or the erasure would be undone by the next careless call.
Every write that names the pseudonym answers 409 ``member-erased`` and writes nothing; reads still
answer. A ref with the pseudonyms' prefix is reserved: no member is created with one."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from prevenance.common.clock import FrozenClock
from prevenance.customers.tables import Member
from prevenance.db import read_session
from prevenance.desk.tables import (
    BenefitExplanation,
    BenefitUsage,
    Callback,
    CardReplacement,
    Communication,
    ConciergeRequest,
    Contact,
    ContactPreference,
    MemberTastes,
    RecoveryCase,
)
from prevenance.loyalty import ingest, ledger
from prevenance.loyalty.tables import CardTransaction
from tests.conftest import Api, contact_body, member_body, tx_body


def _erased(api: Api) -> str:
    """A premium member with a contact on record, then erased: their pseudonym."""
    assert (
        api.put("/v1/members/P1", member_body(product="platinum", phone="06 12 34 56 78")).status_code == 201
    )
    assert api.post("/v1/contacts", contact_body("P1", contact_id="before"), role="agent").status_code == 201
    erased = api.post("/v1/members/P1/erase", {})
    assert erased.status_code == 200, erased.text
    return str(erased.json()["member_ref"])


def _refused(response: Any) -> None:
    assert response.status_code == 409, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["type"].endswith("/member-erased")


def test_the_record_of_an_erased_member_is_not_filled_in_again(api: Api) -> None:
    alias = _erased(api)
    _refused(
        api.put(
            f"/v1/members/{alias}", member_body(name="Camille Martin", phone="06 12 34 56 78"), role="agent"
        )
    )
    profile = api.get(f"/v1/members/{alias}").json()
    assert profile["name"] != "Camille Martin" and profile["phone"] is None
    assert api.get(f"/v1/members/{alias}/360", role="agent").status_code == 200


def test_a_ref_with_the_pseudonyms_prefix_is_reserved(api: Api) -> None:
    refused = api.put("/v1/members/erased-0123456789abcdef01234567", member_body(), role="agent")
    assert refused.status_code == 422, refused.text
    assert refused.json()["field"] == "ref"
    assert api.get("/v1/members/erased-0123456789abcdef01234567").status_code == 404


@pytest.mark.parametrize(
    ("role", "method", "path", "body", "table"),
    [
        ("agent", "post", "/v1/contacts", contact_body("{alias}", contact_id="after"), Contact),
        (
            "agent",
            "post",
            "/v1/members/{alias}/callbacks",
            {
                "id": "cb1",
                "reason": "statement.question",
                "scheduled_for": "2027-01-01T10:00:00Z",
                "phone": "+33612345678",
            },
            Callback,
        ),
        (
            "agent",
            "post",
            "/v1/members/{alias}/card-replacements",
            {"id": "cr1", "city": "Paris", "country": "FR", "address": "1 rue de la Paix"},
            CardReplacement,
        ),
        ("agent", "put", "/v1/members/{alias}/contact-preference", {"mode": "has_time"}, ContactPreference),
        (
            "agent",
            "post",
            "/v1/communications",
            {
                "id": "co1",
                "member_ref": "{alias}",
                "template": "welcome",
                "channel": "email",
                "language": "fr",
                "sent_at": "2026-01-01T00:00:00Z",
                "summary": "Bonjour Camille",
            },
            Communication,
        ),
        (
            "agent",
            "post",
            "/v1/members/{alias}/benefit-usages",
            {"id": "bu1", "benefit": "lounge_access", "used_at": "2026-01-01T00:00:00Z"},
            BenefitUsage,
        ),
        (
            "agent",
            "post",
            "/v1/contacts/before/benefits-explained",
            {"benefits": ["lounge_access"]},
            BenefitExplanation,
        ),
        (
            "concierge",
            "put",
            "/v1/members/{alias}/tastes",
            {"likes": ["jazz"], "dislikes": [], "notes": "anniversary 12 May"},
            MemberTastes,
        ),
        (
            "concierge",
            "post",
            "/v1/members/{alias}/concierge-requests",
            {
                "id": "q1",
                "category": "flowers",
                "title": "Roses",
                "details": "for Camille",
                "city": "Paris",
                "country": "FR",
                "due_at": "2026-06-01T10:00:00Z",
            },
            ConciergeRequest,
        ),
        (
            "agent",
            "post",
            "/v1/recovery-cases",
            {"id": "r1", "member_ref": "{alias}", "team": "t1", "note": "Camille called, upset"},
            RecoveryCase,
        ),
    ],
)
def test_no_desk_write_lands_on_an_erased_member(
    api: Api, engine: Engine, role: str, method: str, path: str, body: dict[str, Any], table: Any
) -> None:
    alias = _erased(api)
    filled = {
        key: value.replace("{alias}", alias) if isinstance(value, str) else value
        for key, value in body.items()
    }
    with read_session(engine) as session:
        before = session.scalar(select(func.count()).select_from(table))
    _refused(getattr(api, method)(path.replace("{alias}", alias), filled, role=role))
    with read_session(engine) as session:
        assert session.scalar(select(func.count()).select_from(table)) == before


def test_work_left_open_for_an_erased_member_closes_without_new_text_about_them(api: Api) -> None:
    """The erasure blanked the concierge's solution and the recovery note: moving the member's open
    request or case on is still possible (the queues must empty), but not with new text about them
    (a solution, a partner, a note), which would undo the erasure."""
    assert api.put("/v1/members/P1", member_body(product="platinum")).status_code == 201
    request = {
        "id": "q1",
        "category": "flowers",
        "title": "Roses for Camille",
        "city": "Paris",
        "country": "FR",
        "due_at": "2026-06-01T10:00:00Z",
    }
    assert api.post("/v1/members/P1/concierge-requests", request, role="concierge").status_code == 201
    assert (
        api.post("/v1/concierge-requests/q1/status", {"status": "in_progress"}, role="concierge").status_code
        == 200
    )
    assert api.post("/v1/recovery-cases", {"id": "r1", "member_ref": "P1", "team": "t1"}).status_code == 201
    assert api.post("/v1/members/P1/erase", {}).status_code == 200

    solved = {"status": "solved", "solution": "Red roses delivered to Camille", "partner": "fleuriste"}
    _refused(api.post("/v1/concierge-requests/q1/status", solved, role="concierge"))
    _refused(
        api.client.patch(
            "/v1/recovery-cases/r1",
            json={"outcome": "resolved", "note": "Camille ok"},
            headers=api.headers("agent"),
        )
    )
    cancelled = api.post("/v1/concierge-requests/q1/status", {"status": "cancelled"}, role="concierge")
    assert cancelled.status_code == 200, cancelled.text
    assert (cancelled.json()["solution"], cancelled.json()["partner"]) in ((None, None), ("", None), ("", ""))
    closed = api.client.patch(
        "/v1/recovery-cases/r1", json={"outcome": "customer_declined"}, headers=api.headers("agent")
    )
    assert closed.status_code == 200, closed.text
    assert closed.json()["note"] in (None, "")


# --- the ledger's doors, the survey consent, the member file -----------------------------------------


def test_no_earn_is_recorded_for_an_erased_member_but_an_earlier_one_still_replays(
    api: Api, engine: Engine
) -> None:
    """A card transaction naming the member's old ref finds no one (422); one naming the pseudonym is
    refused (409) by the API's engine, as by every door that uses it (stream, settlement file); the
    ledger keeps what was earned before, and a retry of an earn answered before the erasure replays."""
    assert api.put("/v1/members/E1", member_body()).status_code == 201
    before = api.post("/v1/transactions", tx_body("TX-before", "E1"), role="integrator")
    assert before.status_code == 201, before.text
    erased = api.post("/v1/members/E1/erase", {})
    assert erased.status_code == 200, erased.text
    pseudonym = str(erased.json()["member_ref"])
    _refused(api.post("/v1/transactions", tx_body("TX-after", pseudonym), role="integrator"))
    assert api.post("/v1/transactions", tx_body("TX-old-ref", "E1"), role="integrator").status_code == 422
    with read_session(engine) as session:
        assert session.scalar(select(func.count()).select_from(CardTransaction)) == 1
        assert ledger.audit(session)["ok"]
    again = api.post("/v1/transactions", tx_body("TX-before", "E1"), role="integrator")
    assert again.status_code == 201 and again.headers.get("idempotent-replayed") == "true", again.text


def test_an_erased_members_survey_consent_is_not_written(api: Api) -> None:
    pseudonym = _erased(api)
    _refused(api.put(f"/v1/members/{pseudonym}/survey-consent", {"opted_out": True}))


def test_a_member_file_never_writes_an_erased_members_pseudonym(
    api: Api, engine: Engine, clock: FrozenClock, tmp_path: Path
) -> None:
    pseudonym = _erased(api)
    path = tmp_path / "members.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        out = csv.writer(handle)
        out.writerow(ingest.MEMBER_COLUMNS)
        for ref in ("N1", pseudonym, "erased-unused"):
            out.writerow((ref, "Nouveau Nom", "n@example.fr", "fr", "FR", "gold"))
    report = ingest.ingest_members(engine, path, clock=clock, rejects_path=tmp_path / "rejects.csv")
    assert report.counts["created"] == 1
    with (tmp_path / "rejects.csv").open(newline="", encoding="utf-8") as handle:
        rejects = list(csv.DictReader(handle))
    assert [(r["line"], r["status"]) for r in rejects] == [("3", "409"), ("4", "409")], rejects
    with read_session(engine) as session:
        names = {ref: name for ref, name in session.execute(select(Member.ref, Member.name)).all()}
    assert names[pseudonym] != "Nouveau Nom" and "erased-unused" not in names
