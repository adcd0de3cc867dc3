"""Monthly benefit usage over a real database (both backends): a planted drop in lounge usage by
French platinum members raises an alert; stable usage elsewhere does not."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from typer.testing import CliRunner

from prevenance.app import create_app
from prevenance.common.auth import create_key
from prevenance.common.clock import FrozenClock
from prevenance.customers import service as customers
from prevenance.db import unit_of_work
from prevenance.desk import service as desk
from prevenance.settings import get_settings
from prevenance.views import benefit_usage_api, benefit_usage_cli
from tests.conftest import ROLES, Api, member_body

PROBLEM = "application/problem+json"
NOW = datetime(2026, 5, 3, tzinfo=UTC)
MONTHS = ["2026-01", "2026-02", "2026-03", "2026-04"]
# (product, country, members, benefit, share using it per month Jan..Apr)
PLAN = [
    ("platinum", "FR", 60, "lounge_access", [0.5, 0.5, 0.5, 0.1]),  # planted drop
    ("gold", "FR", 50, "travel_insurance", [0.4, 0.4, 0.4, 0.4]),  # stable
    ("platinum", "DE", 40, "lounge_access", [0.5, 0.5, 0.5, 0.5]),  # stable
]


def seed_usage(engine: Engine) -> None:
    """Members a year old, plus one French platinum member who joined mid-April (entitled in April
    only); each month the planned share of each group uses its benefit, some of them twice."""
    with unit_of_work(engine) as session:
        for product, country, n, benefit, shares in PLAN:
            for i in range(n):
                ref = f"{product}-{country}-{i}"
                data = customers.MemberData(**member_body(country=country, product=product))
                customers.upsert(session, ref=ref, data=data, now=datetime(2025, 4, 1, tzinfo=UTC))
                for month, share in zip(MONTHS, shares, strict=True):
                    if i >= round(share * n):
                        continue
                    start = datetime.strptime(month, "%Y-%m").replace(tzinfo=UTC)
                    for visit in range(1 + (i % 4 == 0)):  # a second use counts the member once
                        usage = desk.BenefitUsageInput(
                            id=f"{ref}-{month}-{visit}",
                            member_ref=ref,
                            benefit=benefit,
                            used_at=start + timedelta(days=3 + i % 20, hours=visit),
                        )
                        desk.record_benefit_usage(session, usage=usage, by="test", now=NOW)
        late = customers.MemberData(**member_body(country="FR", product="platinum"))
        customers.upsert(session, ref="late", data=late, now=datetime(2026, 4, 15, tzinfo=UTC))


@pytest.fixture
def usage_api(engine: Engine) -> Iterator[Api]:
    keys: dict[str, str] = {}
    with unit_of_work(engine) as session:
        for role in ROLES:
            _, keys[role] = create_key(session, role=role, name=f"test-{role}", now=NOW)
    app = create_app(engine=engine, clock=FrozenClock(NOW))
    app.include_router(benefit_usage_api.router)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield Api(client=client, keys=keys)


def row_of(report: dict[str, Any], benefit: str, product: str, country: str) -> dict[str, Any]:
    return next(
        r for r in report["rows"] if (r["benefit"], r["product"], r["country"]) == (benefit, product, country)
    )


def test_a_planted_drop_is_alerted_and_stable_usage_is_not(engine: Engine, usage_api: Api) -> None:
    seed_usage(engine)
    response = usage_api.get("/v1/benefits/usage?month=2026-04", role="marketing")
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["baseline_months"] == ["2026-03", "2026-02", "2026-01"]
    lounge_fr = row_of(report, "lounge_access", "platinum", "FR")
    assert (lounge_fr["entitled"], lounge_fr["users"]) == (61, 6)  # the April joiner is entitled
    assert lounge_fr["rate"]["value"] == pytest.approx(6 / 61)
    assert lounge_fr["rate"]["ci_low"] < 6 / 61 < lounge_fr["rate"]["ci_high"]
    assert [t["rate"] for t in lounge_fr["trend"]] == [0.5, 0.5, 0.5]
    assert lounge_fr["baseline"]["entitled"] == 180 and lounge_fr["baseline"]["users"] == 90
    assert lounge_fr["alert"] is True and lounge_fr["p_value"] < 0.01
    assert lounge_fr["label_fr"] == "Accès aux salons d'aéroport"
    insurance = row_of(report, "travel_insurance", "gold", "FR")
    assert (insurance["users"], insurance["entitled"], insurance["alert"]) == (20, 50, False)
    assert row_of(report, "lounge_access", "platinum", "DE")["alert"] is False
    # Platinum members are entitled to travel insurance too, and none used it: a rate of zero.
    unused = row_of(report, "travel_insurance", "platinum", "FR")
    assert unused["users"] == 0 and unused["rate"]["value"] == 0 and unused["alert"] is False
    # Gold is not entitled to the lounge: no such row.
    assert not [r for r in report["rows"] if r["benefit"] == "lounge_access" and r["product"] == "gold"]
    lounge_total = next(t for t in report["totals"] if t["benefit"] == "lounge_access")
    assert (lounge_total["users"], lounge_total["entitled"]) == (26, 101)
    assert report["method"] == "docs/offers-methods.md#benefit-usage"

    alerts = usage_api.get("/v1/benefits/usage/alerts?month=2026-04", role="supervisor").json()["alerts"]
    flagged = {(a["level"], a["benefit"], a["product"], a["country"]) for a in alerts}
    assert ("segment", "lounge_access", "platinum", "FR") in flagged
    assert not [a for a in alerts if a["benefit"] == "travel_insurance"]
    assert not [a for a in alerts if a["country"] == "DE"]
    segment = next(a for a in alerts if a["level"] == "segment")
    assert "9.8 %" in segment["message_fr"] and "50.0%" in segment["message_en"]
    # March against Dec–Feb: no drop, nothing alerted.
    march = usage_api.get("/v1/benefits/usage/alerts?month=2026-03").json()
    assert march["alerts"] == []


def test_the_country_cut_and_refusals(engine: Engine, usage_api: Api) -> None:
    seed_usage(engine)
    germany = usage_api.get("/v1/benefits/usage?month=2026-04&country=de").json()
    assert germany["country"] == "DE" and {r["country"] for r in germany["rows"]} == {"DE"}
    lounge = next(t for t in germany["totals"] if t["benefit"] == "lounge_access")
    assert (lounge["users"], lounge["entitled"], lounge["alert"]) == (20, 40, False)
    assert usage_api.get("/v1/benefits/usage/alerts?month=2026-04&country=DE").json()["alerts"] == []
    # A stricter material drop threshold silences the French alert.
    strict = usage_api.get("/v1/benefits/usage/alerts?month=2026-04&country=FR&min_drop=0.5").json()
    assert strict["alerts"] == [] and strict["policy"]["min_drop"] == 0.5
    for query in ("month=2026-13", "month=April-26", "month=2026-04&alpha=0.7", "month=2026-04&country=F1"):
        bad = usage_api.get(f"/v1/benefits/usage?{query}")
        assert bad.status_code == 422 and bad.headers["content-type"].startswith(PROBLEM), query
    assert usage_api.get("/v1/benefits/usage?month=2026-13").json()["field"] == "month"
    assert usage_api.get("/v1/benefits/usage").status_code == 422
    assert usage_api.get("/v1/benefits/usage?month=2026-04", role="agent").status_code == 403
    assert usage_api.get("/v1/benefits/usage/alerts?month=2026-04", role="integrator").status_code == 403


def test_the_cli_reports_and_exits_1_on_an_alert(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    seed_usage(engine)
    monkeypatch.setenv("PREVENANCE_DATABASE_URL", engine.url.render_as_string(hide_password=False))
    get_settings.cache_clear()
    try:
        runner = CliRunner()
        table = runner.invoke(benefit_usage_cli.app, ["usage", "--month", "2026-04", "--country", "FR"])
        assert table.exit_code == 0, table.output
        lounge = next(line for line in table.output.splitlines() if line.startswith("lounge_access"))
        assert "platinum" in lounge and "ALERT" in lounge and "9.8" in lounge
        as_json = runner.invoke(benefit_usage_cli.app, ["usage", "--month", "2026-04", "--json"])
        assert row_of(json.loads(as_json.output), "lounge_access", "platinum", "FR")["users"] == 6
        alerts = runner.invoke(benefit_usage_cli.app, ["alerts", "--month", "2026-04", "--language", "fr"])
        assert alerts.exit_code == 1 and "Accès aux salons d'aéroport (platinum / FR)" in alerts.output
        calm = runner.invoke(benefit_usage_cli.app, ["alerts", "--month", "2026-04", "--country", "DE"])
        assert calm.exit_code == 0 and "no alert" in calm.output
        bad = runner.invoke(benefit_usage_cli.app, ["usage", "--month", "2026-4x"])
        assert bad.exit_code == 2 and "YYYY-MM" in bad.output
    finally:
        get_settings.cache_clear()
