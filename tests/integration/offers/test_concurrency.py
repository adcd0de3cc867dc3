"""Offers under concurrent payments (threads released together, each in its own transaction as the
API runs it): caps, budget and the reward hold whatever the interleaving. Meaningful on PostgreSQL
(row locks); on SQLite writers are serialised, and the same assertions must hold too."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from prevenance.common.clock import FrozenClock
from prevenance.common.idempotency import Outcome
from prevenance.db import read_session, run_in_transaction
from prevenance.loyalty import ledger, service
from prevenance.loyalty.tables import Posting
from prevenance.offers import service as offers
from prevenance.offers.tables import Offer, OfferDecision
from prevenance.wiring import install_offer_hook
from tests.conftest import Api
from tests.integration.offers.conftest import add_member, offer_def, pay
from tests.races import race

pytestmark = pytest.mark.slow


def earn(engine: Engine, clock: FrozenClock, tx_id: str, ref: str, merchant: str = "Librairie") -> Outcome:
    tx = service.TransactionInput(
        id=tx_id,
        member_ref=ref,
        amount="42.00",
        currency="EUR",
        merchant=merchant,
        category="books",
        occurred_at=clock.now() + timedelta(hours=1),
    )
    return run_in_transaction(engine, lambda s: service.record_transaction(s, tx=tx, now=clock.now()))


def _all_outcomes(results: list[Any]) -> list[Outcome]:
    errors = [r for r in results if not isinstance(r, Outcome)]
    assert not errors, errors[:3]
    return results


def test_parallel_payments_of_one_member_decide_the_offer_once(
    api: Api, engine: Engine, clock: FrozenClock
) -> None:
    install_offer_hook()
    api.put("/v1/offers/books", offer_def(holdout_share="0", cap_per_member=1), role="marketing")
    add_member(api, "M1")
    outcomes = _all_outcomes(race(8, lambda i: earn(engine, clock, f"p{i}", "M1")))
    assert sum(1 for o in outcomes if "offer" in o.body) == 1
    with read_session(engine) as session:
        assert session.scalar(select(func.count()).select_from(OfferDecision)) == 1


def test_parallel_qualifying_payments_reward_an_activation_once(
    api: Api, engine: Engine, clock: FrozenClock
) -> None:
    install_offer_hook()
    api.put("/v1/offers/books", offer_def(holdout_share="0"), role="marketing")
    add_member(api, "M1")
    pay(api, "first", "M1")
    assert api.post("/v1/members/M1/offers/books/activate", role="agent").status_code == 200
    outcomes = _all_outcomes(race(8, lambda i: earn(engine, clock, f"q{i}", "M1")))
    assert sum(len(o.body.get("offer_rewards", [])) for o in outcomes) == 1
    # Redelivery of every one of them: replays, nothing more is paid.
    replays = _all_outcomes(race(8, lambda i: earn(engine, clock, f"q{i}", "M1")))
    assert all(r.replayed for r in replays)
    assert [r.body for r in replays] == [o.body for o in outcomes]
    with read_session(engine) as session:
        rewards = session.scalars(select(Posting.amount).where(Posting.reason == "offer_reward")).all()
        assert rewards == [100]
        assert session.get(Offer, "books").spent_points == 100  # type: ignore[union-attr]
        assert ledger.audit(session)["ok"]


def test_parallel_rewards_of_many_members_stay_within_the_budget(
    api: Api, engine: Engine, clock: FrozenClock
) -> None:
    install_offer_hook()
    api.put("/v1/offers/books", offer_def(holdout_share="0", budget_points=300), role="marketing")
    refs = [f"B{i}" for i in range(8)]
    for ref in refs:
        add_member(api, ref)
        pay(api, f"{ref}-a", ref)
        assert api.post(f"/v1/members/{ref}/offers/books/activate", role="agent").status_code == 200
    outcomes = _all_outcomes(race(8, lambda i: earn(engine, clock, f"{refs[i]}-b", refs[i])))
    assert sum(len(o.body.get("offer_rewards", [])) for o in outcomes) == 3
    with read_session(engine) as session:
        assert session.get(Offer, "books").spent_points == 300  # type: ignore[union-attr]
        statuses = session.scalars(select(OfferDecision.status)).all()
        assert sorted(statuses) == ["activated"] * 5 + ["rewarded"] * 3
        assert ledger.audit(session)["ok"]
    offers.invalidate_caches()
