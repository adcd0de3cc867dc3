"""``GET /v1/offers/{id}/roi`` and ``prevenance offers roi`` over a real database (both backends):
members and card transactions through the customers and loyalty services, decisions in the offers
tables, and a planted uplift whose difference in differences the report must reproduce."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np
import pytest
import typer
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from typer.testing import CliRunner

from prevenance.app import create_app
from prevenance.common.auth import create_key
from prevenance.common.clock import FrozenClock
from prevenance.customers import service as customers
from prevenance.db import unit_of_work
from prevenance.loyalty import service as loyalty
from prevenance.offers.roi import api as roi_api
from prevenance.offers.roi import cli as roi_cli
from prevenance.offers.tables import Offer, OfferDecision
from prevenance.settings import get_settings
from tests.conftest import ROLES, Api, member_body

PROBLEM = "application/problem+json"
NOW = datetime(2026, 9, 1, tzinfo=UTC)
CAMPAIGN_START = datetime(2026, 3, 1, tzinfo=UTC)
UNIT_COST = Decimal("3.50")
MARGIN = Decimal("0.30")


@dataclass(frozen=True)
class Planted:
    """What the test put in the database, to compute the expected answer independently."""

    deltas: dict[str, dict[str, list[float]]]  # country → arm → per-member (after − before) spend
    rewarded: dict[str, int]  # country → rewards posted
    treated: dict[str, int]


def _offer(offer_id: str) -> Offer:
    return Offer(
        id=offer_id,
        partner_merchant="Maison Laurent",
        partner_category="dining",
        reward_kind="bonus_points",
        reward={"points": 500},
        eligibility={},
        cap_per_member=1,
        budget_points=None,
        spent_points=0,
        unit_cost_eur=str(UNIT_COST),
        margin_rate=str(MARGIN),
        expected_spend_eur="100",
        holdout_share="0.30",
        decision_days=30,
        valid_from=CAMPAIGN_START,
        valid_until=CAMPAIGN_START + timedelta(days=60),
        title_fr="Dîner offert",
        title_en="Dinner on us",
        text_fr="500 points chez Maison Laurent",
        text_en="500 points at Maison Laurent",
        status="active",
        fingerprint="f" * 64,
        created_at=CAMPAIGN_START,
        updated_at=CAMPAIGN_START,
    )


def _decision(
    decision_id: str, offer_id: str, member_id: int, arm: str, at: datetime, status: str
) -> OfferDecision:
    return OfferDecision(
        id=decision_id,
        offer_id=offer_id,
        member_id=member_id,
        transaction_id=f"trigger-{decision_id}",
        arm=arm,
        decided_at=at,
        expires_at=at + timedelta(days=30),
        propensity=0.2,
        expected_value=1.0,
        model_version=None,
        status=status,
        rewarded_at=at + timedelta(days=3) if status == "rewarded" else None,
        reward_points=500 if status == "rewarded" else None,
    )


def _tx(tx_id: str, ref: str, amount: Decimal, at: datetime) -> loyalty.TransactionInput:
    return loyalty.TransactionInput(
        id=tx_id,
        member_ref=ref,
        amount=str(amount),
        currency="EUR",
        merchant="Maison Laurent",
        category="dining",
        occurred_at=at,
    )


def seed_campaign(engine: Engine, offer_id: str = "CAMP-1") -> Planted:
    """FR: 36 treated, 20 control; DE: 30 treated, 6 control (too few for its own interval).
    Each member spends about the same before and after t0, plus a common +5 EUR drift; the treated
    spend 25 EUR more after. Transactions outside the windows and a partial refund check the edges."""
    rng = np.random.default_rng(2026)
    deltas: dict[str, dict[str, list[float]]] = {}
    rewarded: dict[str, int] = {}
    treated: dict[str, int] = {}
    layout = {"FR": (36, 20), "DE": (30, 6)}
    with unit_of_work(engine) as session:
        session.add(_offer(offer_id))
        session.add(_offer("CAMP-EMPTY"))
        session.flush()
        for country, (n_treatment, n_control) in layout.items():
            deltas[country] = {"treatment": [], "control": []}
            rewarded[country] = 0
            treated[country] = n_treatment
            for i in range(n_treatment + n_control):
                arm = "treatment" if i < n_treatment else "control"
                ref = f"{country}-{arm[0]}-{i}"
                member, _ = customers.upsert(
                    session,
                    ref=ref,
                    data=customers.MemberData(**member_body(country=country, product="gold")),
                    now=CAMPAIGN_START - timedelta(days=400),
                )
                t0 = CAMPAIGN_START + timedelta(days=int(rng.integers(0, 40)), hours=int(rng.integers(0, 24)))
                base = Decimal(int(rng.integers(40, 160)))
                after = base + Decimal(5) + (Decimal(25) if arm == "treatment" else Decimal(0))
                after += Decimal(int(rng.integers(-8, 9)))
                before_at = t0 - timedelta(days=30)
                after_at = t0 + timedelta(days=20)
                loyalty.record_transaction(session, tx=_tx(f"{ref}-b", ref, base, before_at), now=NOW)
                loyalty.record_transaction(session, tx=_tx(f"{ref}-a", ref, after, after_at), now=NOW)
                # Outside both 90-day windows: must not count.
                loyalty.record_transaction(
                    session, tx=_tx(f"{ref}-old", ref, Decimal(900), t0 - timedelta(days=120)), now=NOW
                )
                spend_after = after
                if i == 0:  # a partial refund of the after-transaction: spend is net of it
                    loyalty.refund_transaction(
                        session, transaction_id=f"{ref}-a", refund_id=f"{ref}-r", amount="10.00", now=NOW
                    )
                    spend_after -= Decimal(10)
                deltas[country][arm].append(float(spend_after - base))
                status = "would_have_received" if arm == "control" else ("rewarded" if i % 3 == 0 else "made")
                rewarded[country] += status == "rewarded"
                session.add(_decision(f"{offer_id}-{ref}", offer_id, member.id, arm, t0, status))
                if arm == "control" and i % 5 == 0:  # a later decision does not move the anchor
                    later = t0 + timedelta(days=25)
                    session.add(_decision(f"{offer_id}-{ref}-2", offer_id, member.id, arm, later, status))
        session.flush()
    return Planted(deltas, rewarded, treated)


def expected_did(planted: Planted, countries: list[str]) -> float:
    t = [d for c in countries for d in planted.deltas[c]["treatment"]]
    c = [d for c in countries for d in planted.deltas[c]["control"]]
    return float(np.mean(t) - np.mean(c))


@pytest.fixture
def roi_api_client(engine: Engine) -> Iterator[Api]:
    clock = FrozenClock(NOW)
    keys: dict[str, str] = {}
    with unit_of_work(engine) as session:
        for role in ROLES:
            _, keys[role] = create_key(session, role=role, name=f"test-{role}", now=NOW)
    app = create_app(engine=engine, clock=clock)
    app.include_router(roi_api.router)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield Api(client=client, keys=keys)


def test_the_report_recovers_the_planted_uplift_and_prices_it(engine: Engine, roi_api_client: Api) -> None:
    planted = seed_campaign(engine)
    response = roi_api_client.get("/v1/offers/CAMP-1/roi?min_arm=5", role="marketing")
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["offer_id"] == "CAMP-1" and report["country"] is None
    assert report["window"] == {"before_days": 90, "after_days": 90, "after_still_open": 0}
    assert report["treatment"]["n"] == 66 and report["control"]["n"] == 26
    spend = report["spend"]
    assert spend["did"] == pytest.approx(expected_did(planted, ["FR", "DE"]), abs=1e-6)
    assert spend["ci_low"] <= 25 <= spend["ci_high"] and spend["ci_low"] > 0
    assert (spend["n_treatment"], spend["n_control"]) == (66, 26)
    # One visit before and one after for everyone: no change in transactions, nobody lapsed.
    assert report["transactions"]["did"] == 0 and report["attrition"]["did"] == 0
    rewards = planted.rewarded["FR"] + planted.rewarded["DE"]
    assert report["rewarded"] == rewards
    # The cost is the points rewarded at what a point costs the programme (its liability), not a
    # hand-typed unit cost: with no redemption yet, a point is worth its travel value (EUR 0.01),
    # less the share expected never to be redeemed.
    liability = report["liability"]
    assert liability["point_cost"]["basis"].startswith("no redemption yet")
    per_point = 0.01 * (1 - liability["point_cost"]["breakage"])
    assert liability["eur_per_point"] == pytest.approx(per_point)
    cost = (Decimal(str(per_point)) * liability["points"]).quantize(Decimal("0.01"))
    assert liability["points"] > 0 and Decimal(report["cost_eur"]) == cost
    # The spend effect states what it could detect and a verdict against the effect it was sized for.
    assert spend["mde"] == pytest.approx(2.8016 * (spend["ci_high"] - spend["ci_low"]) / 3.92, rel=1e-3)
    assert report["verdict"]["label"] in ("uplift", "inconclusive")
    margin = report["incremental_margin_eur"]
    assert margin["value"] == pytest.approx(spend["did"] * 66 * float(MARGIN))
    assert report["roi"]["value"] == pytest.approx((margin["value"] - float(cost)) / float(cost))
    assert report["roi"]["ci_low"] < report["roi"]["value"] < report["roi"]["ci_high"]
    assert report["method"] == "docs/offers-methods.md#roi"
    cuts = {cut["country"]: cut for cut in report["by_country"]}
    assert set(cuts) == {"DE", "FR"}
    assert cuts["FR"]["spend"]["did"] == pytest.approx(expected_did(planted, ["FR"]), abs=1e-6)
    assert cuts["FR"]["treatment"]["n"] == 36


def test_every_figure_can_be_cut_by_country(engine: Engine, roi_api_client: Api) -> None:
    planted = seed_campaign(engine)
    fr = roi_api_client.get("/v1/offers/CAMP-1/roi?min_arm=5&country=fr", role="supervisor")
    assert fr.status_code == 200, fr.text
    body = fr.json()
    assert body["country"] == "FR" and body["treatment"]["n"] == 36 and body["control"]["n"] == 20
    assert body["spend"]["did"] == pytest.approx(expected_did(planted, ["FR"]), abs=1e-6)
    assert body["rewarded"] == planted.rewarded["FR"]
    assert [cut["country"] for cut in body["by_country"]] == ["FR"]
    # DE has 6 control members: below a minimum of 10 its own cut is refused, with the reason.
    default = roi_api_client.get("/v1/offers/CAMP-1/roi?min_arm=10").json()
    de = next(cut for cut in default["by_country"] if cut["country"] == "DE")
    assert "control" in de["refused"] and de["control"]["n"] == 6
    refused = roi_api_client.get("/v1/offers/CAMP-1/roi?min_arm=10&country=DE")
    assert refused.status_code == 422 and refused.headers["content-type"].startswith(PROBLEM)
    assert refused.json()["field"] == "country" and refused.json()["n"] == 6


def test_unknown_offer_small_groups_bad_parameters_and_roles_are_refused(
    engine: Engine, roi_api_client: Api
) -> None:
    seed_campaign(engine)
    unknown = roi_api_client.get("/v1/offers/NOPE/roi")
    assert unknown.status_code == 404 and unknown.headers["content-type"].startswith(PROBLEM)
    assert unknown.json()["type"].endswith("unknown-offer")
    empty = roi_api_client.get("/v1/offers/CAMP-EMPTY/roi")
    assert empty.status_code == 422 and empty.json()["field"] == "treatment"
    assert empty.json()["type"].endswith("arm-too-small") and empty.json()["n"] == 0
    small = roi_api_client.get("/v1/offers/CAMP-1/roi?min_arm=30")
    assert small.status_code == 422 and small.json()["field"] == "control"
    assert small.json()["minimum"] == 30
    for query in ("before_days=0", "ci=magic", "country=FRA"):
        bad = roi_api_client.get(f"/v1/offers/CAMP-1/roi?{query}")
        assert bad.status_code == 422 and bad.headers["content-type"].startswith(PROBLEM), query
    assert roi_api_client.get("/v1/offers/CAMP-1/roi", role="agent").status_code == 403
    assert roi_api_client.get("/v1/offers/CAMP-1/roi", role="integrator").status_code == 403
    assert roi_api_client.client.get("/v1/offers/CAMP-1/roi").status_code == 401


def test_shorter_windows_and_the_bootstrap(engine: Engine, roi_api_client: Api) -> None:
    planted = seed_campaign(engine)
    # Windows of 45 days before and 25 after: the before spend is rescaled by 25/45 so both sides
    # cover the same length, i.e. DiD = DiD(after − before) − (25/45 − 1) × (difference of before means).
    short = roi_api_client.get("/v1/offers/CAMP-1/roi?min_arm=5&after_days=25&before_days=45").json()
    assert short["window"]["before_days"] == 45 and short["spend"]["did"] == pytest.approx(
        expected_did(planted, ["FR", "DE"])
        - (25 / 45 - 1)
        * float(
            np.mean([b for c in ("FR", "DE") for b in _before(engine, c, "t")])
            - np.mean([b for c in ("FR", "DE") for b in _before(engine, c, "c")])
        ),
        abs=1e-6,
    )
    boot = roi_api_client.get("/v1/offers/CAMP-1/roi?min_arm=5&ci=bootstrap&seed=3&replicates=500").json()
    again = roi_api_client.get("/v1/offers/CAMP-1/roi?min_arm=5&ci=bootstrap&seed=3&replicates=500").json()
    assert boot["ci_method"] == "bootstrap" and boot["spend"] == again["spend"]
    assert boot["spend"]["ci_low"] <= 25 <= boot["spend"]["ci_high"]


def _before(engine: Engine, country: str, arm: str) -> list[float]:
    """The members' before-window spend, read back through the loyalty tables."""
    from sqlalchemy import select

    from prevenance.loyalty.tables import CardTransaction

    with unit_of_work(engine) as session:
        rows = session.execute(
            select(CardTransaction.amount_eur).where(CardTransaction.id.like(f"{country}-{arm}-%-b"))
        ).all()
    return [float(amount) for (amount,) in rows]


def test_the_cli_prints_the_same_report(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, roi_api_client: Api
) -> None:
    planted = seed_campaign(engine)
    monkeypatch.setenv("PREVENANCE_DATABASE_URL", engine.url.render_as_string(hide_password=False))
    get_settings.cache_clear()
    try:
        app = typer.Typer(no_args_is_help=True)
        app.command("noop")(lambda: None)
        roi_cli.register(app)
        runner = CliRunner()
        as_json = runner.invoke(app, ["roi", "CAMP-1", "--min-arm", "5", "--json"])
        assert as_json.exit_code == 0, as_json.output
        report = json.loads(as_json.output)
        assert report["spend"]["did"] == pytest.approx(expected_did(planted, ["FR", "DE"]), abs=1e-6)
        api_report = roi_api_client.get("/v1/offers/CAMP-1/roi?min_arm=5").json()
        assert report["spend"] == api_report["spend"] and report["roi"] == api_report["roi"]
        table = runner.invoke(app, ["roi", "CAMP-1", "--min-arm", "10", "--country", "FR"])
        assert table.exit_code == 0, table.output
        assert "36 treated, 20 control" in table.output and "ROI" in table.output
        refused = runner.invoke(app, ["roi", "CAMP-1", "--min-arm", "30"])
        assert refused.exit_code == 2 and "control group has 26" in refused.output
        assert runner.invoke(app, ["roi", "NOPE"]).exit_code == 1
    finally:
        get_settings.cache_clear()


def test_window_edges_belong_where_the_method_says(engine: Engine, roi_api_client: Api) -> None:
    """``[t0 − before, t0)`` and ``[t0, t0 + after)``: a payment at ``t0`` is "after", one exactly
    ``before`` days earlier is "before", one exactly ``after`` days later is outside."""
    t0 = datetime(2026, 3, 10, 9, 30, 15, 250_000, tzinfo=UTC)
    with unit_of_work(engine) as session:
        session.add(_offer("EDGES"))
        session.flush()
        for i, arm in enumerate(["treatment", "treatment", "control", "control"]):
            ref = f"E{i}"
            member, _ = customers.upsert(
                session, ref=ref, data=customers.MemberData(**member_body()), now=t0 - timedelta(days=400)
            )
            status = "would_have_received" if arm == "control" else "made"
            session.add(_decision(f"edge-{i}", "EDGES", member.id, arm, t0, status))
            for label, moment, amount in [
                ("start", t0 - timedelta(days=90), 10 + i),  # first instant of the before window
                ("last", t0 - timedelta(microseconds=250_000), 20),  # last moment before t0
                ("t0", t0, 40 + i),  # t0 itself: after
                ("end", t0 + timedelta(days=90), 1000),  # the first instant past the after window
                ("early", t0 - timedelta(days=90, seconds=1), 1000),  # just before the before window
            ]:
                tx = _tx(f"{ref}-{label}", ref, Decimal(amount), moment)
                loyalty.record_transaction(session, tx=tx, now=NOW)
    report = roi_api_client.get("/v1/offers/EDGES/roi?min_arm=2").json()
    assert report["treatment"]["spend_before_mean"] == pytest.approx(30.5)  # (10 + 20 + 11 + 20) / 2
    assert report["treatment"]["spend_after_mean"] == pytest.approx(40.5)
    assert report["control"]["spend_before_mean"] == pytest.approx(32.5)
    assert report["treatment"]["transactions_before_mean"] == 2
    assert report["treatment"]["transactions_after_mean"] == 1
    assert report["spend"]["did"] == pytest.approx((40.5 - 30.5) - (42.5 - 32.5))
