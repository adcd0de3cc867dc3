"""The REST contract of the benefits catalogue, usages, "benefit explained" and its attribution."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select
from typer.testing import CliRunner

from prevenance.cli import app as cli
from prevenance.common.clock import FrozenClock
from prevenance.common.idempotency import Outcome
from prevenance.common.outbox import OutboxEvent
from prevenance.customers import service as customers
from prevenance.db import make_engine, run_in_transaction, unit_of_work
from prevenance.desk import rules, service
from prevenance.desk.tables import BenefitExplanation, BenefitUsage
from prevenance.settings import get_settings
from tests.conftest import Api, member_body
from tests.integration.desk.test_communications_and_preferences import member_key
from tests.integration.desk.test_contacts_contract import contact_body
from tests.integration.desk.test_desk_concurrency import THREADS, count, log, race, setup_member

PROBLEM = "application/problem+json"
PREMIUM = {"travel_desk", "concierge", "lounge_access"}


def usage(
    usage_id: str, benefit: str = "lounge_access", used_at: str = "2025-12-01T10:00:00Z", **more: Any
) -> dict[str, Any]:
    return {"id": usage_id, "benefit": benefit, "used_at": used_at, **more}


def at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def test_the_catalogue_says_which_cards_are_entitled_to_what(api: Api) -> None:
    catalogue = {b["code"]: b for b in api.get("/v1/benefits", role="agent").json()}
    assert set(catalogue) >= PREMIUM
    assert catalogue["lounge_access"]["products"] == ["centurion", "platinum"]
    assert catalogue["travel_insurance"]["label_fr"] == "Assurance voyage"
    api.put("/v1/members/P1", member_body(product="platinum"))
    api.put("/v1/members/G1", member_body(product="gold"))
    platinum = api.get("/v1/members/P1/benefits", role="agent").json()
    assert platinum["product"] == "platinum" and {b["code"] for b in platinum["items"]} >= PREMIUM
    gold = {b["code"] for b in api.get("/v1/members/G1/benefits", role="agent").json()["items"]}
    assert "travel_insurance" in gold and not PREMIUM & gold
    assert api.get("/v1/members/NOBODY/benefits", role="agent").status_code == 404


def test_a_usage_is_recorded_once_per_id(api: Api) -> None:
    api.put("/v1/members/P1", member_body(product="platinum"))
    first = api.post("/v1/members/P1/benefit-usages", usage("U1"), role="integrator")
    assert first.status_code == 201, first.text
    assert first.json()["source"] == "test-integrator" and first.json()["label_en"] == "Airport lounge access"
    again = api.post("/v1/members/P1/benefit-usages", usage("U1"), role="integrator")
    assert again.status_code == 201 and again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    other = api.post("/v1/members/P1/benefit-usages", usage("U1", benefit="concierge"), role="integrator")
    assert other.status_code == 409 and other.headers["content-type"].startswith(PROBLEM)
    named = api.post("/v1/members/P1/benefit-usages", usage("U2", source="lounge-partner"), role="agent")
    assert named.json()["source"] == "lounge-partner"


def test_a_usage_the_card_is_not_entitled_to_is_refused_naming_the_benefit(api: Api) -> None:
    api.put("/v1/members/G1", member_body(product="gold"))
    for benefit, slug in [("lounge_access", "benefit-not-entitled"), ("yacht", "unknown-benefit")]:
        response = api.post("/v1/members/G1/benefit-usages", usage("U1", benefit=benefit), role="agent")
        assert response.status_code == 422, response.text
        assert response.json()["field"] == "benefit" and response.json()["type"].endswith(slug)
    future = api.post(
        "/v1/members/G1/benefit-usages", usage("U2", "travel_insurance", "2026-02-01T00:00:00Z")
    )
    assert future.status_code == 422 and future.json()["field"] == "used_at"
    assert api.post("/v1/members/NOBODY/benefit-usages", usage("U3"), role="agent").status_code == 404
    # the refused usages left no key behind: the id is still free
    assert api.post("/v1/members/G1/benefit-usages", usage("U1", "travel_insurance")).status_code == 201
    assert (
        api.post(
            "/v1/members/G1/benefit-usages", usage("U4", "travel_insurance"), role="marketing"
        ).status_code
        == 403
    )


def test_benefits_unused_for_twelve_months_show_on_the_member_and_the_360(
    api: Api, engine: Engine, clock: FrozenClock
) -> None:
    api.put("/v1/members/P1", member_body(product="platinum"))
    api.post("/v1/members/P1/benefit-usages", usage("U1", "lounge_access", "2025-06-01T10:00:00Z"))
    api.post("/v1/members/P1/benefit-usages", usage("U2", "travel_insurance", "2024-12-01T10:00:00Z"))
    items = {b["code"]: b for b in api.get("/v1/members/P1/benefits", role="agent").json()["items"]}
    assert items["lounge_access"]["unused_12m"] is False
    assert at(items["lounge_access"]["last_used_at"]) == at("2025-06-01T10:00:00Z")
    assert items["travel_insurance"]["unused_12m"] is True and items["concierge"]["last_used_at"] is None
    unused = {b["code"] for b in api.get("/v1/members/P1/360", role="agent").json()["unused_benefits"]}
    assert unused == {code for code, b in items.items() if b["unused_12m"]}
    assert "lounge_access" not in unused and {"travel_insurance", "concierge"} <= unused
    clock.current = datetime(2026, 7, 1, tzinfo=UTC)  # a year after the lounge visit
    later = {b["code"] for b in api.get("/v1/members/P1/360", role="agent").json()["unused_benefits"]}
    assert "lounge_access" in later
    headers = member_key(engine, clock, "P1")
    assert api.client.get("/v1/members/P1/benefits", headers=headers).status_code == 200
    api.put("/v1/members/P2", member_body(product="platinum"))
    assert api.client.get("/v1/members/P2/benefits", headers=headers).status_code == 403


def test_benefits_explained_at_a_contact_are_recorded_once(api: Api) -> None:
    api.put("/v1/members/P1", member_body(product="platinum"))
    api.post("/v1/contacts", contact_body("C1", member_ref="P1"), role="agent")
    path = "/v1/contacts/C1/benefits-explained"
    first = api.post(path, {"benefits": ["lounge_access", "concierge", "lounge_access"]}, role="agent")
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["benefits"] == ["concierge", "lounge_access"] and body["agent"] == "alice"
    assert at(body["explained_at"]) == at("2026-01-05T09:00:00Z") and body["member_ref"] == "P1"
    assert api.post(path, {"benefits": ["concierge"]}, role="agent").json() == body
    more = api.post(path, {"benefits": ["travel_desk"]}, role="agent").json()
    assert more["benefits"] == ["concierge", "lounge_access", "travel_desk"]
    explained = {b["code"]: b for b in api.get("/v1/members/P1/benefits", role="agent").json()["items"]}
    assert explained["travel_desk"]["last_explained_at"] is not None
    assert explained["travel_insurance"]["last_explained_at"] is None


def test_explaining_a_benefit_the_card_lacks_names_benefits(api: Api) -> None:
    api.put("/v1/members/G1", member_body(product="gold"))
    api.post("/v1/contacts", contact_body("C1", member_ref="G1"), role="agent")
    for benefits in (["travel_insurance", "lounge_access"], ["yacht"]):
        response = api.post("/v1/contacts/C1/benefits-explained", {"benefits": benefits}, role="agent")
        assert response.status_code == 422 and response.json()["field"] == "benefits", response.text
    # nothing of a refused call is kept
    items = {b["code"]: b for b in api.get("/v1/members/G1/benefits", role="agent").json()["items"]}
    assert items["travel_insurance"]["last_explained_at"] is None
    assert api.post("/v1/contacts/C1/benefits-explained", {"benefits": []}, role="agent").status_code == 422
    missing = api.post(
        "/v1/contacts/NOPE/benefits-explained", {"benefits": ["travel_insurance"]}, role="agent"
    )
    assert missing.status_code == 404


def explain(api: Api, contact_id: str, member_ref: str, agent: str, started: str, *benefits: str) -> None:
    ended = started.replace(":00:00Z", ":05:00Z")
    body = contact_body(contact_id, member_ref=member_ref, agent=agent, started_at=started, ended_at=ended)
    assert api.post("/v1/contacts", body, role="agent").status_code == 201
    response = api.post(
        f"/v1/contacts/{contact_id}/benefits-explained", {"benefits": list(benefits)}, role="agent"
    )
    assert response.status_code == 200, response.text


def test_later_usage_is_credited_to_the_last_explanation_within_the_window(
    api: Api, clock: FrozenClock
) -> None:
    api.put("/v1/members/M1", member_body(product="platinum"))
    api.put("/v1/members/M2", member_body(product="centurion"))
    explain(api, "C1", "M1", "alice", "2026-01-05T09:00:00Z", "lounge_access")
    explain(api, "C2", "M1", "bob", "2026-01-10T09:00:00Z", "concierge")
    explain(api, "C3", "M2", "alice", "2026-01-06T09:00:00Z", "travel_desk")
    explain(api, "C4", "M2", "dave", "2026-01-15T09:00:00Z", "travel_desk")
    explain(api, "C5", "M2", "alice", "2026-02-02T09:00:00Z", "lounge_access")  # February: not reported
    clock.current = datetime(2026, 2, 15, tzinfo=UTC)
    api.post("/v1/members/M1/benefit-usages", usage("U1", "lounge_access", "2026-02-01T10:00:00Z"))
    api.post("/v1/members/M1/benefit-usages", usage("U2", "concierge", "2026-01-08T10:00:00Z"))  # before C2
    api.post("/v1/members/M2/benefit-usages", usage("U3", "travel_desk", "2026-01-20T10:00:00Z"))

    report = api.get("/v1/desk/benefits/attribution?month=2026-01", role="supervisor")
    assert report.status_code == 200, report.text
    body = report.json()
    rows = {(r["agent"], r["benefit"]): r for r in body["rows"]}
    assert set(rows) == {
        ("alice", "lounge_access"),
        ("bob", "concierge"),
        ("alice", "travel_desk"),
        ("dave", "travel_desk"),
    }
    assert (body["window_days"], body["explained"], body["used"], body["pending"]) == (90, 4, 2, 2)
    assert (
        rows[("alice", "lounge_access")]["used"] == 1
        and rows[("alice", "lounge_access")]["rate"]["value"] == 1.0
    )
    assert rows[("dave", "travel_desk")]["used"] == 1  # last touch: dave explained it after alice
    assert (rows[("alice", "travel_desk")]["used"], rows[("alice", "travel_desk")]["pending"]) == (0, 1)
    assert rows[("bob", "concierge")]["pending"] == 1 and rows[("bob", "concierge")]["rate"]["n"] == 0
    assert rows[("alice", "lounge_access")]["label_fr"] == "Accès aux salons d'aéroport"

    clock.current = datetime(2026, 6, 1, tzinfo=UTC)  # every January window has closed
    closed = api.get("/v1/desk/benefits/attribution?month=2026-01", role="agent").json()
    assert (closed["explained"], closed["used"], closed["pending"]) == (4, 2, 0)
    expected = rules.wilson(2, 4)
    overall = closed["overall"]
    assert (overall["value"], overall["n"], overall["successes"]) == (0.5, 4, 2)
    assert overall["ci_low"] == expected.ci_low and overall["ci_high"] == expected.ci_high
    late = {(r["agent"], r["benefit"]): r for r in closed["rows"]}
    assert late[("bob", "concierge")]["rate"]["value"] == 0.0
    assert late[("alice", "travel_desk")]["rate"]["value"] == 0.0


def test_the_attribution_report_needs_a_month_and_desk_staff(api: Api) -> None:
    assert api.get("/v1/desk/benefits/attribution?month=2026-13", role="agent").status_code == 422
    assert api.get("/v1/desk/benefits/attribution", role="agent").status_code == 422
    assert api.get("/v1/desk/benefits/attribution?month=2026-01", role="marketing").status_code == 403
    empty = api.get("/v1/desk/benefits/attribution?month=2026-01", role="agent").json()
    assert (empty["explained"], empty["rows"], empty["overall"]["value"]) == (0, [], None)


def test_the_attribution_report_from_the_command_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("PREVENANCE_DATABASE_URL", url)
    get_settings.cache_clear()
    try:
        runner = CliRunner()
        assert runner.invoke(cli, ["db", "upgrade"]).exit_code == 0
        engine = make_engine(url)
        past = datetime(2026, 1, 5, 9, tzinfo=UTC)
        with unit_of_work(engine) as session:
            customers.upsert(
                session, ref="M1", data=customers.MemberData(**member_body(product="platinum")), now=past
            )
            contact = service.ContactInput(**{**contact_body("C1"), "started_at": past, "ended_at": past})
            service.log_contact(session, contact=contact, now=past)
            service.explain_benefits(session, contact_id="C1", benefits=["concierge"], now=past)
            used = service.BenefitUsageInput(id="U1", member_ref="M1", benefit="concierge", used_at=past)
            service.record_benefit_usage(session, usage=used, by="test", now=past)
        engine.dispose()
        text = runner.invoke(cli, ["desk", "benefits", "--month", "2026-01"])
        assert text.exit_code == 0, text.output
        assert "alice" in text.output and "concierge" in text.output
        as_json = runner.invoke(cli, ["desk", "benefits", "--month", "2026-01", "--json"])
        assert json.loads(as_json.output)["used"] == 1
        assert runner.invoke(cli, ["desk", "benefits", "--month", "2026-13"]).exit_code == 2
    finally:
        get_settings.cache_clear()


@pytest.mark.slow
def test_one_benefit_explained_or_used_by_many_at_once_is_recorded_once(
    engine: Engine, clock: FrozenClock
) -> None:
    setup_member(engine, clock)  # a gold card
    log(engine, clock, "C1")
    explained = race(
        THREADS,
        lambda _: run_in_transaction(
            engine,
            lambda s: service.explain_benefits(
                s, contact_id="C1", benefits=["travel_insurance", "purchase_protection"], now=clock.now()
            ),
        ),
    )
    assert all(isinstance(r, dict) and len(r["benefits"]) == 2 for r in explained), explained
    assert count(engine, select(func.count()).select_from(BenefitExplanation)) == 2
    events = select(func.count()).select_from(OutboxEvent).where(OutboxEvent.type == "benefit.explained")
    assert count(engine, events) == 1
    used = service.BenefitUsageInput(
        id="U1", member_ref="M1", benefit="travel_insurance", used_at=clock.now()
    )
    results = race(
        THREADS,
        lambda _: run_in_transaction(
            engine, lambda s: service.record_benefit_usage(s, usage=used, by="test", now=clock.now())
        ),
    )
    assert all(isinstance(r, Outcome) and r.status_code == 201 for r in results), results
    assert sum(isinstance(r, Outcome) and not r.replayed for r in results) == 1
    assert count(engine, select(func.count()).select_from(BenefitUsage)) == 1
