"""Following referrals: a member's own (as referrer and referee, the other party hidden from a member
key), the staff list by status and month, and the monthly report (made, converted, conversion rate
with its Wilson interval, bonuses paid) in the API, the CLI and the marketing screen."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
from sqlalchemy import Engine
from typer.testing import CliRunner, Result

from prevenance.cli import app as cli_app
from prevenance.common.auth import create_key
from prevenance.common.clock import FrozenClock
from prevenance.common.stats import wilson_bounds
from prevenance.db import unit_of_work
from prevenance.settings import get_settings
from tests.conftest import Api, member_body, tx_body


def member_key(engine: Engine, clock: FrozenClock, ref: str) -> str:
    with unit_of_work(engine) as session:
        _, secret = create_key(session, role="member", member_ref=ref, name=f"app-{ref}", now=clock.now())
    return secret


def setup(api: Api, clock: FrozenClock) -> None:
    """January: A refers B, C and D; B and C buy (B in January, C in February). February: A refers E."""
    for ref in "ABCDE":
        assert api.put(f"/v1/members/{ref}", member_body()).status_code == 201
    for referee in "BCD":
        made = api.post("/v1/referrals", {"referrer_ref": "A", "referee_ref": referee}, role="agent")
        assert made.status_code == 201, made.text
    assert api.post("/v1/transactions", tx_body("T1", "B", "20.00"), role="integrator").status_code == 201
    clock.advance(timedelta(days=40))  # 2026-02-10
    assert api.post("/v1/transactions", tx_body("T2", "C", "20.00"), role="integrator").status_code == 201
    made = api.post("/v1/referrals", {"referrer_ref": "A", "referee_ref": "E"}, role="agent")
    assert made.status_code == 201, made.text


def test_staff_see_a_members_referrals_both_ways(api: Api, clock: FrozenClock) -> None:
    setup(api, clock)
    mine = api.get("/v1/members/A/referrals", role="agent").json()
    assert {r["referee_ref"]: r["status"] for r in mine["as_referrer"]} == {
        "B": "rewarded", "C": "rewarded", "D": "pending", "E": "pending"
    }  # fmt: skip
    assert mine["as_referrer"][0]["referee_ref"] == "E"  # newest first
    assert mine["as_referee"] is None and mine["points_earned"] == 10_000
    referred = api.get("/v1/members/B/referrals", role="supervisor").json()
    assert referred["as_referrer"] == []
    assert referred["as_referee"]["referrer_ref"] == "A" and referred["as_referee"]["status"] == "rewarded"
    assert api.get("/v1/members/nobody/referrals", role="agent").status_code == 404


def test_a_member_sees_its_own_side_and_never_the_other_party(
    api: Api, engine: Engine, clock: FrozenClock
) -> None:
    setup(api, clock)
    key_a, key_b = member_key(engine, clock, "A"), member_key(engine, clock, "B")
    own = api.client.get("/v1/members/A/referrals", headers={"Authorization": f"Bearer {key_a}"})
    assert own.status_code == 200, own.text
    rows = own.json()["as_referrer"]
    assert len(rows) == 4 and {r["referee_ref"] for r in rows} == {None}
    assert {r["referrer_ref"] for r in rows} == {"A"}
    assert sorted(r["status"] for r in rows) == ["pending", "pending", "rewarded", "rewarded"]
    referee = api.client.get("/v1/members/B/referrals", headers={"Authorization": f"Bearer {key_b}"}).json()
    assert referee["as_referee"]["referrer_ref"] is None and referee["as_referee"]["referee_ref"] == "B"
    other = api.client.get("/v1/members/B/referrals", headers={"Authorization": f"Bearer {key_a}"})
    assert other.status_code == 403
    for path in ("/v1/referrals", "/v1/referrals/report?month=2026-01"):
        assert api.client.get(path, headers={"Authorization": f"Bearer {key_a}"}).status_code == 403


def test_the_staff_list_filters_by_status_and_month(api: Api, clock: FrozenClock) -> None:
    setup(api, clock)
    every = api.get("/v1/referrals", role="marketing").json()
    assert len(every["referrals"]) == 4 and every["truncated"] is False
    january = api.get("/v1/referrals", role="marketing", params={"month": "2026-01"}).json()["referrals"]
    assert sorted(r["referee_ref"] for r in january) == ["B", "C", "D"]
    pending = api.get("/v1/referrals", role="agent", params={"status": "pending"}).json()["referrals"]
    assert sorted(r["referee_ref"] for r in pending) == ["D", "E"]
    limited = api.get("/v1/referrals", role="agent", params={"limit": 1}).json()
    assert len(limited["referrals"]) == 1 and limited["truncated"] is True
    assert api.get("/v1/referrals", role="agent", params={"month": "1999-12"}).status_code == 422
    assert api.get("/v1/referrals", role="agent", params={"status": "paid"}).status_code == 422
    assert api.get("/v1/referrals", role="integrator").status_code == 403


def test_the_monthly_report_counts_the_cohort_and_what_was_paid(api: Api, clock: FrozenClock) -> None:
    setup(api, clock)
    january = api.get("/v1/referrals/report", role="marketing", params={"month": "2026-01"}).json()
    low, high = wilson_bounds(2, 3)
    assert january["made"] == 3 and january["converted"] == 2
    assert january["conversion_rate"] == round(2 / 3, 4)
    assert january["conversion_interval"] == {
        "low": round(low, 4), "high": round(high, 4), "level": 0.95, "method": "wilson"
    }  # fmt: skip
    assert january["rewarded_in_month"] == 1 and january["points_paid"] == 5000
    february = api.get("/v1/referrals/report", role="supervisor", params={"month": "2026-02"}).json()
    assert (february["made"], february["converted"], february["points_paid"]) == (1, 0, 5000)
    empty = api.get("/v1/referrals/report", role="agent", params={"month": "2025-06"}).json()
    assert empty["made"] == 0 and empty["conversion_rate"] is None and empty["conversion_interval"] is None
    assert api.get("/v1/referrals/report", role="agent").status_code == 422
    assert api.get("/v1/referrals/report", role="agent", params={"month": "2026-13"}).status_code == 422


@pytest.fixture
def cli(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Result]]:
    monkeypatch.setenv("PREVENANCE_DATABASE_URL", engine.url.render_as_string(hide_password=False))
    get_settings.cache_clear()
    runner = CliRunner()
    yield lambda *args: runner.invoke(cli_app, [str(a) for a in args])
    get_settings.cache_clear()


def test_the_command_prints_the_report(api: Api, clock: FrozenClock, cli: Callable[..., Result]) -> None:
    setup(api, clock)
    result = cli("loyalty", "referrals", "report", "--month", "2026-01")
    assert result.exit_code == 0, result.output
    assert "made=3 converted=2" in result.output and "points_paid=5000" in result.output
    assert "66.7%" in result.output
    as_json = cli("loyalty", "referrals", "report", "--month", "2026-01", "--json")
    assert json.loads(as_json.stdout)["converted"] == 2
    assert cli("loyalty", "referrals", "report", "--month", "2026-1").exit_code == 2
