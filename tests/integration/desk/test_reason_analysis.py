"""``GET /v1/desk/reasons?month=``: the reasons customers contact us, to remove them."""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, select

from prevenance.common.clock import FrozenClock
from prevenance.common.periods import month_bounds, previous_month
from prevenance.db import read_session, unit_of_work
from prevenance.desk import config, contacts, reports, rules
from prevenance.desk.tables import Case, Contact
from tests.conftest import Api, member_body
from tests.integration.desk.contact_inputs import contact_input
from tests.integration.desk.test_contacts_contract import contact_body


def log(api: Api, contact_id: str, member: str, reason: str, day: str, **overrides: str) -> None:
    body = contact_body(
        contact_id,
        member_ref=member,
        reason=reason,
        started_at=f"{day}T09:00:00Z",
        ended_at=f"{day}T09:05:00Z",
        **overrides,
    )
    response = api.post("/v1/contacts", body, role="integrator")
    assert response.status_code == 201, response.text


def test_volume_repeats_growth_and_avoidable_contacts(api: Api) -> None:
    api.put("/v1/members/FR1", member_body())
    api.put("/v1/members/GB1", member_body(country="GB", language="en"))
    # December: one dispute.
    log(api, "D1", "FR1", "statement.dispute", "2025-12-10")
    # January: lost cards surge from nothing; FR1 asks its balance twice in three days (a repeat);
    # the last balance question's follow-up falls in February, still within the window.
    for i in range(16):
        log(
            api,
            f"L{i}",
            "FR1" if i % 2 else "GB1",
            "card.lost_stolen",
            f"2026-01-{i + 1:02d}",
            channel="chat",
        )
    log(api, "B1", "FR1", "rewards.balance", "2026-01-10")
    log(api, "B2", "FR1", "rewards.balance", "2026-01-13")
    log(api, "B3", "FR1", "rewards.balance", "2026-01-30")
    log(api, "B4", "FR1", "rewards.balance", "2026-02-02")
    log(api, "D2", "GB1", "statement.dispute", "2026-01-20")

    response = api.get("/v1/desk/reasons?month=2026-01", role="supervisor")
    assert response.status_code == 200, response.text
    report = response.json()
    assert (report["contacts"], report["previous_month"], report["previous_contacts"]) == (20, "2025-12", 1)
    rows = {r["reason"]: r for r in report["reasons"]}
    assert report["reasons"][0]["reason"] == "card.lost_stolen"
    assert rows["card.lost_stolen"]["channels"] == {"chat": 16}
    assert rows["card.lost_stolen"]["countries"] == {"FR": 8, "GB": 8}
    assert rows["card.lost_stolen"]["growing"] and report["growing"] == ["card.lost_stolen"]
    assert not rows["statement.dispute"]["growing"]
    balance = rows["rewards.balance"]
    assert balance["avoidable"] and balance["label_fr"] == "Solde de points"
    assert (balance["repeat"]["successes"], balance["repeat"]["n"]) == (2, 3)  # B1→B2 and B3→B4
    # Each member called about a lost card every other day: all but their last call were repeats.
    assert (rows["card.lost_stolen"]["repeat"]["successes"], rows["card.lost_stolen"]["repeat"]["n"]) == (
        14,
        16,
    )
    assert (report["avoidable"]["successes"], report["avoidable"]["n"]) == (3, 20)
    assert report["by_channel"] == {"chat": 16, "phone": 4}


def test_a_month_without_contacts_and_a_bad_month(api: Api) -> None:
    empty = api.get("/v1/desk/reasons?month=2030-01", role="agent").json()
    assert (empty["contacts"], empty["reasons"], empty["repeat"]["value"]) == (0, [], None)
    assert api.get("/v1/desk/reasons?month=2026-13", role="agent").json()["field"] == "month"
    assert api.get("/v1/desk/reasons", role="agent").status_code == 422
    assert api.get("/v1/desk/reasons?month=2026-01", role="marketing").status_code == 403


def test_contacts_a_proactive_notice_would_have_prevented(api: Api) -> None:
    """An incident in Lyon explains declined cards: Lyon members who called about a declined card
    while it was active and before their notice was sent were avoidable; others were not."""
    api.put("/v1/members/LY1", member_body(city="Lyon"))
    api.put("/v1/members/LY2", member_body(city=" lyon "))  # stored trimmed, matched ignoring case
    api.put("/v1/members/PA1", member_body(city="Paris"))
    incident = {
        "id": "INC-LYON",
        "title_fr": "Cartes refusées à Lyon",
        "title_en": "Cards declined in Lyon",
        "body_fr": "Des paiements sont refusés à Lyon.",
        "body_en": "Some payments are declined in Lyon.",
        "since": "2025-12-31T08:00:00Z",
        "affects": {"cities": ["LYON"], "reasons": ["card.declined"]},
    }
    declared = api.post("/v1/incidents", incident, role="supervisor")
    assert declared.status_code == 201, declared.text
    assert declared.json()["affected"] == 2  # no SMTP relay ran: nobody has been told yet
    log(api, "C1", "LY1", "card.declined", "2026-01-02")  # avoidable by a notice
    log(api, "C2", "LY2", "statement.question", "2026-01-02")  # a reason the incident does not explain
    log(api, "C3", "PA1", "card.declined", "2026-01-02")  # not affected
    report = api.get("/v1/desk/reasons?month=2026-01", role="supervisor").json()
    rows = {r["reason"]: r for r in report["reasons"]}
    assert rows["card.declined"]["avoidable_by_notice"] == 1
    assert rows["statement.question"]["avoidable_by_notice"] == 0
    assert (report["avoidable_by_notice"]["successes"], report["avoidable_by_notice"]["n"]) == (1, 3)
    # statement.question is answered in self-care: avoidable too, for another reason.
    assert report["avoidable"]["successes"] == 1 + rows["statement.question"]["contacts"] * int(
        rows["statement.question"]["avoidable"]
    )
    unknown = dict(incident, id="INC-BAD", affects={"cities": ["Lyon"], "reasons": ["card.nope"]})
    refused = api.post("/v1/incidents", unknown, role="supervisor")
    assert (refused.status_code, refused.json()["field"]) == (422, "affects.reasons")


def _report_from_every_row(session: Any, month: str) -> dict[str, Any]:
    """The reason counts as the report computed them before the database counted them: every contact
    of the two months (and the window after) read, repeats found member by member in Python
    (``rules.repeated``). The reference the database's counts must equal."""
    start, end = month_bounds(month)
    previous_start, _ = month_bounds(previous_month(month))
    window = config.current().fcr_window
    rows = session.execute(
        select(Contact.member_id, Contact.reason, Contact.channel, Contact.started_at, Case.country)
        .join(Case, Case.id == Contact.case_id)
        .where(Contact.started_at >= previous_start, Contact.started_at < end + window)
        .order_by(Contact.member_id, Contact.reason, Contact.started_at)
    ).all()
    starts: dict[tuple[int, str], list[datetime]] = defaultdict(list)
    for row in rows:
        starts[(row.member_id, row.reason)].append(row.started_at)
    repeats = {
        (member, reason, at)
        for (member, reason), times in starts.items()
        for at, again in zip(times, rules.repeated(times, window=window), strict=True)
        if again
    }
    current = [row for row in rows if start <= row.started_at < end]
    reasons: dict[str, Any] = {}
    for row in current:
        entry = reasons.setdefault(
            row.reason, {"contacts": 0, "repeats": 0, "channels": Counter(), "countries": Counter()}
        )
        entry["contacts"] += 1
        entry["repeats"] += (row.member_id, row.reason, row.started_at) in repeats
        entry["channels"][row.channel] += 1
        entry["countries"][row.country] += 1
    previous = Counter(row.reason for row in rows if row.started_at < start)
    return {"reasons": reasons, "previous": previous, "contacts": len(current)}


def test_the_databases_counts_equal_a_count_of_every_row(
    engine: Engine, clock: FrozenClock, api: Api
) -> None:
    """Random contacts over three months, with ties and follow-ups exactly one window later (the
    bound is inclusive) or a microsecond past it: the report's counts, made by the database, equal a
    count of every row in Python, on SQLite (times compared as text) and PostgreSQL."""
    rng = random.Random(20261207)
    refs = [f"RR{i}" for i in range(12)]
    for i, ref in enumerate(refs):
        assert (
            api.put(f"/v1/members/{ref}", member_body(country=("FR", "GB", "DE")[i % 3])).status_code == 201
        )
    reasons = ["card.lost_stolen", "rewards.balance", "statement.dispute"]
    window = config.current().fcr_window
    base = datetime(2025, 12, 1, tzinfo=UTC)
    moments: list[tuple[str, str, datetime]] = []
    for _ in range(260):
        at = base + timedelta(
            seconds=rng.randrange(86_400 * 90), microseconds=rng.choice((0, 0, 250_000, 999_999))
        )
        ref, reason = rng.choice(refs), rng.choice(reasons)
        moments.append((ref, reason, at))
        roll = rng.random()
        if roll < 0.15:
            moments.append((ref, reason, at + window))  # exactly at the bound: a repeat
        elif roll < 0.25:
            moments.append((ref, reason, at + window + timedelta(microseconds=1)))  # just past it
        elif roll < 0.30:
            moments.append((ref, reason, at))  # the same instant twice
    with unit_of_work(engine) as session:
        for n, (ref, reason, at) in enumerate(moments):
            contact = contact_input(
                f"RC{n}",
                ref,
                at,
                channel=rng.choice(("phone", "chat", "email")),
                reason=reason,
                outcome=rng.choice(("resolved", "escalated")),
            )
            assert contacts.log_contact(session, contact=contact, now=clock.now()).status_code == 201
    for month in ("2026-01", "2026-02"):
        with read_session(engine) as session:
            report = reports.reason_report(session, month=month)
            expected = _report_from_every_row(session, month)
        assert report["contacts"] == expected["contacts"] > 0
        assert report["previous_contacts"] == sum(expected["previous"].values())
        assert {r["reason"] for r in report["reasons"]} == set(expected["reasons"])
        for row in report["reasons"]:
            want = expected["reasons"][row["reason"]]
            assert row["contacts"] == want["contacts"]
            assert row["repeat"]["successes"] == want["repeats"]
            assert row["channels"] == dict(want["channels"]) and row["countries"] == dict(want["countries"])
            assert row["previous"] == expected["previous"][row["reason"]]
        assert report["repeat"]["successes"] == sum(w["repeats"] for w in expected["reasons"].values()) > 0
