"""The offers demo: campaigns with control groups over the demo year, a planted uplift for treated
members only, rewards through the ledger (the audit holds), and a rerun that adds nothing."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Engine, func, select

from prevenance.db import read_session
from prevenance.demo.generator import load_demo
from prevenance.demo.offers import load_offers_demo
from prevenance.loyalty import ledger
from prevenance.loyalty.tables import CardTransaction, Posting
from prevenance.offers.tables import Offer, OfferDecision

NOW = datetime(2026, 6, 1, tzinfo=UTC)


def test_demo_offers_have_both_arms_rewards_and_an_uplift_for_the_treated_only(engine: Engine) -> None:
    loaded = load_demo(engine, members=120, seed=5, now=NOW)  # the demo loads its offers too
    assert loaded["offers_decisions_treatment"] > 0 and loaded["ok"] == 1
    summary = {k.removeprefix("offers_"): v for k, v in loaded.items() if k.startswith("offers_")}
    stages: list[str] = []
    again = load_offers_demo(engine, seed=5, now=NOW, progress=lambda s, d, t: stages.append(s))
    assert again["ok"] == 1 and stages and again.get("decisions_treatment", 0) == 0  # a rerun adds nothing
    assert summary["decisions_treatment"] > 0 and summary["decisions_control"] > 0
    assert summary["rewarded"] > 0 and summary["uplift_transactions"] > 0
    with read_session(engine) as session:
        statuses = dict(session.execute(select(Offer.id, Offer.status)).all())
        assert statuses == {
            "demo-5-books-bonus": "ended",
            "demo-5-dining-x2": "ended",
            "demo-5-fuel-ecode": "ended",
            "demo-5-welcome-back": "active",
        }
        arms = dict(
            session.execute(select(OfferDecision.arm, func.count()).group_by(OfferDecision.arm)).all()
        )
        assert arms["control"] < arms["treatment"]
        uplift = session.scalars(
            select(CardTransaction.id).where(CardTransaction.id.like("dd_%-uplift-%"))
        ).all()
        treated = set(session.scalars(select(OfferDecision.id).where(OfferDecision.arm == "treatment")).all())
        assert uplift and all(tx.rsplit("-uplift-", 1)[0] in treated for tx in uplift)
        assert not any("fuel" in tx for tx in uplift)  # the null campaign has none
        rewards = session.scalar(
            select(func.coalesce(func.sum(Posting.amount), 0)).where(Posting.reason == "offer_reward")
        )
        spent = session.scalar(select(func.sum(Offer.spent_points)).where(Offer.reward_kind != "ecode"))
        assert rewards == spent and rewards > 0
        assert ledger.audit(session)["ok"]
        before = session.scalar(select(func.count()).select_from(OfferDecision))
    again = load_offers_demo(engine, seed=5, now=NOW)
    assert again["campaigns_already_loaded"] == 3
    with read_session(engine) as session:
        assert session.scalar(select(func.count()).select_from(OfferDecision)) == before
